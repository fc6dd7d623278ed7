"""The counting network: MobileNetV2 on raw RGB pixels with a one-unit regression head.

With a transformed training target (``sqrt`` or ``log``), the head's unit predicts the transformed
count and the model ends in the inverse transform, built from stock Keras layers. So every saved model
outputs the count itself, and the converters and the runtime need to know nothing about the target.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgecount.runtime.errors import EdgecountError
from edgecount.tensorflow_import import import_tensorflow

ALPHAS = (0.35, 0.5, 0.75, 1.0)
# Training targets: the count itself, its square root, or log(1 + count).
TARGETS = ("count", "sqrt", "log")
# The head's output unit when the target is transformed; with the plain count target it is ``count``.
TRANSFORMED_OUTPUT = "transformed_count"
# Keras ships ImageNet weights for these input sizes; other sizes still load them by file path.
KERAS_WEIGHT_SIZES = (96, 128, 160, 192, 224)


class WeightsError(EdgecountError, RuntimeError):
    """ImageNet weights could not be loaded or downloaded."""


def keras_cache_dir() -> Path:
    """Return the folder where Keras keeps downloaded weights (``$KERAS_HOME/models``, else ``~/.keras/models``)."""
    import os

    home = os.environ.get("KERAS_HOME") or str(Path.home() / ".keras")
    return Path(home) / "models"


def weights_file_name(alpha: float, image_size: int) -> str:
    """Return the file name Keras uses for the no-top ImageNet weights of this alpha and input size."""
    rows = image_size if image_size in KERAS_WEIGHT_SIZES else 224
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}_no_top.h5"


def build_count_model(
    alpha: float = 0.35,
    image_size: int = 224,
    weights: str | Path | None = "imagenet",
    dropout: float = 0.2,
    head_units: int = 0,
    target: str = "count",
) -> Any:
    """Build the counting model.

    The model takes raw RGB pixels in 0..255 (float32, shape ``(None, image_size, image_size, 3)``) and
    scales them to MobileNetV2's -1..1 range in a ``Rescaling`` layer, so the runtime feeds plain pixels
    and an int8 model can take uint8 pixels directly. The output is one linear unit: the count, not
    clamped, because a ReLU would stop gradients for images the model undercounts to zero.

    Args:
        alpha: MobileNetV2 width multiplier, one of 0.35, 0.5, 0.75, 1.0. Default 0.35.
        image_size: square input size in pixels, at least 32. Default 224.
        weights: ``"imagenet"`` (Keras downloads them into its cache), None or ``"none"`` for random
            initialisation, or the path of a no-top ``.h5`` file. Default ``"imagenet"``.
        dropout: dropout rate before the head. Default 0.2.
        head_units: width of an optional hidden ReLU layer in the head; 0 (default) means none.
        target: what the head's unit predicts: ``count`` (default), ``sqrt`` (the square root of the
            count; the model ends in ``max(y, 0) ** 2``) or ``log`` (``log(1 + count)``; the model ends
            in ``exp(y) - 1``). The model's output is the count in every case.

    Returns:
        An uncompiled ``keras.Model``; ``find_base`` returns its MobileNetV2 part.

    Raises:
        ValueError: for an unsupported alpha, image size or target.
        WeightsError: if the weights file is missing, does not match the alpha, or cannot be downloaded.
    """
    if alpha not in ALPHAS:
        raise ValueError(f"alpha must be one of {', '.join(map(str, ALPHAS))}, got {alpha}")
    if image_size < 32:
        raise ValueError(f"image_size must be at least 32 pixels, got {image_size}")
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    tf = import_tensorflow("building the counting model")
    keras = tf.keras

    weights_arg = _resolve_weights(weights, alpha, image_size)
    # NOTE: crowded photos are undercounted. In 5-fold cross-validation on 2,800 group photos, the
    # bias on the 21 photos with 15 or more faces was -4.6 faces with alpha 0.35 and -3.9 with alpha
    # 0.5, at 448 pixels with the default phase 2. Neither a density head fitted to per-cell counts,
    # --count-weighting sqrt-inverse, larger inputs, --mosaic nor --quadrants removed it, and a
    # correction of the high counts removed it only by raising the 15+ RMSE (docs/training.md).
    try:
        base = keras.applications.MobileNetV2(
            input_shape=(image_size, image_size, 3),
            alpha=alpha,
            include_top=False,
            weights=weights_arg,
            pooling="avg",
        )
    except ValueError as error:
        raise WeightsError(f"the weights {weights_arg} do not fit MobileNetV2 alpha {alpha}: {error}") from error
    except Exception as error:  # noqa: BLE001 - Keras raises URLError, HTTPError or plain Exception on download
        if weights_arg != "imagenet":
            raise
        raise WeightsError(
            f"could not download the ImageNet weights for alpha {alpha} ({type(error).__name__}: {error}). "
            f"Pass a local file with --weights PATH, or copy {weights_file_name(alpha, image_size)} into "
            f"Keras' cache folder {keras_cache_dir()}; or train from scratch with --weights none"
        ) from error

    inputs = keras.Input(shape=(image_size, image_size, 3), dtype="float32", name="image")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="mobilenetv2_scaling")(inputs)
    x = base(x)
    if head_units:
        x = keras.layers.Dense(head_units, activation="relu", name="head_hidden")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    if target == "count":
        outputs = keras.layers.Dense(1, activation=None, name="count")(x)
    else:
        outputs = _inverse_target(keras, keras.layers.Dense(1, activation=None, name=TRANSFORMED_OUTPUT)(x), target)
    return keras.Model(inputs, outputs, name=f"edgecount_mobilenetv2_{alpha}_{image_size}")


def _inverse_target(keras: Any, transformed: Any, target: str) -> Any:
    # Stock layers only, so a saved model loads without custom objects. All of them (RELU, MUL, EXP,
    # and Rescaling's MUL and ADD) have int8 TFLite kernels, so an int8 model stays fully integer.
    if target == "sqrt":
        positive = keras.layers.ReLU(name="count_from_sqrt_relu")(transformed)
        return keras.layers.Multiply(name="count")([positive, positive])
    exponential = keras.layers.Activation("exponential", name="count_from_log_exp")(transformed)
    return keras.layers.Rescaling(1.0, offset=-1.0, name="count")(exponential)


def transform_counts(counts: np.ndarray, target: str) -> np.ndarray:
    """Map counts to the training target: unchanged, ``sqrt(count)`` or ``log(1 + count)`` (float32)."""
    counts = np.asarray(counts, np.float32)
    if target == "sqrt":
        return np.sqrt(np.maximum(counts, 0.0))
    if target == "log":
        return np.log1p(np.maximum(counts, 0.0))
    return counts


def inverse_target(values: np.ndarray, target: str) -> np.ndarray:
    """Map head outputs back to counts, as the model's last layers do."""
    values = np.asarray(values, np.float32)
    if target == "sqrt":
        return np.square(np.maximum(values, 0.0))
    if target == "log":
        return np.expm1(values)
    return values


def model_target(model: Any) -> str:
    """Return the training target of a model from ``build_count_model``, read from its layer names."""
    names = {layer.name for layer in model.layers}
    if "count_from_sqrt_relu" in names:
        return "sqrt"
    if "count_from_log_exp" in names:
        return "log"
    return "count"


def create_fit_model(model: Any) -> Any:
    """Return the model that training fits: the counting model without its inverse target layers.

    For the ``count`` target it is the model itself. For a transformed target it is a model that shares
    every layer and ends at the head's unit, which is fitted to transformed counts.
    """
    if model_target(model) == "count":
        return model
    import keras

    return keras.Model(model.input, model.get_layer(TRANSFORMED_OUTPUT).output, name=f"{model.name}_fit")


def _resolve_weights(weights: str | Path | None, alpha: float, image_size: int) -> str | None:
    if weights is None or str(weights).lower() == "none":
        return None
    if str(weights) == "imagenet":
        return "imagenet"
    path = Path(weights)
    if not path.is_file():
        raise WeightsError(
            f"weights file {path} not found; pass the no-top MobileNetV2 .h5 for alpha {alpha} "
            f"(Keras names it {weights_file_name(alpha, image_size)}), 'imagenet' or 'none'"
        )
    return str(path)


def find_base(model: Any) -> Any:
    """Return the MobileNetV2 sub-model of a counting model built by ``build_count_model``."""
    for layer in model.layers:
        if layer.name.startswith("mobilenetv2"):
            if hasattr(layer, "layers"):
                return layer
    raise ValueError(f"model {model.name!r} has no MobileNetV2 sub-model; build it with build_count_model")
