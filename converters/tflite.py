"""Converting a Keras counting model to TFLite in each quantization mode."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgecount.converters.bias_correction import CORRECTION_SAMPLES, correct_int8_bias, spread_samples
from edgecount.converters.compact import compact_model
from edgecount.converters.op_versions import lower_single_scale_fully_connected
from edgecount.converters.ops import float_ops
from edgecount.converters.output_range import widen_count_range
from edgecount.converters.quant_mode import QuantMode
from edgecount.converters.representative import CalibrationError
from edgecount.runtime.errors import EdgecountError
from edgecount.tensorflow_import import import_tensorflow

_log = logging.getLogger(__name__)

RepresentativeDataset = Callable[[], Iterator[list[np.ndarray]]]


class ConversionError(EdgecountError, RuntimeError):
    """The TFLite converter failed, for example on an op that has no int8 kernel."""


def convert_keras_model(
    model: Any,
    mode: QuantMode | str,
    representative_dataset: RepresentativeDataset | None = None,
    bias_correction: bool = True,
    float_reference: bytes | None = None,
) -> bytes:
    """Convert a Keras model to a TFLite FlatBuffer.

    Args:
        model: a ``keras.Model`` taking float32 RGB pixels in 0..255.
        mode: the quantization mode (see ``QuantMode``).
        representative_dataset: required for ``int8``: a function returning a generator of
            ``[float32 (1, height, width, 3) array]`` lists, from ``representative_samples``.
        bias_correction: for ``int8``, correct each layer's bias towards the float32 model on the
            ``CORRECTION_SAMPLES`` calibration images spread over the dataset (``bias_correction``).
        float_reference: the float32 model already converted from ``model``, which bias correction
            compares with; converted here when None.

    Returns:
        The ``.tflite`` bytes, compacted (``compact.compact_model``). An ``int8`` model takes uint8
        pixels (scale and zero point set by calibration, normally 1 and 0) and returns a float32 count,
        with twice the calibrated count range (``output_range.widen_count_range``).

    Raises:
        CalibrationError: for ``int8`` without a representative dataset.
        ConversionError: if TensorFlow cannot convert the model, naming the op when it reports one.
    """
    mode = QuantMode(mode)
    tf = import_tensorflow("converting to TFLite")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)

    if mode is QuantMode.FLOAT16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode is QuantMode.DYNAMIC:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        # Per-channel int8 weights in a float FULLY_CONNECTED make it version 12 (TensorFlow's
        # op_version.cc), which tflite-runtime 2.14, the last release for Raspberry Pi OS, cannot load.
        # One scale per dense layer gives version 9; the convolutions stay per-channel. A dense layer with
        # one output unit still gets 12, which lower_single_scale_fully_connected fixes after conversion.
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    elif mode is QuantMode.INT8:
        if representative_dataset is None:
            raise CalibrationError(
                "int8 conversion needs a representative dataset of training images for calibration; "
                "pass one, or use --quantize dynamic, which needs none"
            )
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        # Full-integer: every op must have an int8 kernel. TensorFlow 2.21 still keeps an op without one
        # in float, so float_ops below checks the result.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.float32

    # Keras' export step prints the traced signature to stdout, which carries only results here.
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            data = bytes(converter.convert())
    except CalibrationError:
        raise
    except Exception as error:  # noqa: BLE001 - the converter raises ConverterError, ValueError or RuntimeError
        raise ConversionError(_describe_conversion_failure(mode, error)) from error
    finally:
        _log.debug("TFLite converter output for %s:\n%s", mode.value, printed.getvalue())

    if mode is QuantMode.INT8:
        left_in_float = float_ops(data)
        if left_in_float:
            listed = ", ".join(f"{name} ({count}x)" for name, count in sorted(left_in_float.items()))
            raise ConversionError(
                f"int8 conversion failed because an op cannot be quantized: {listed} has no int8 kernel, so the "
                "converter left it in float. Convert with --quantize dynamic or float16 instead, or replace that "
                "layer with one that has an int8 kernel"
            )
        data = widen_count_range(data)
        if bias_correction:
            float_model = float_reference or convert_keras_model(model, QuantMode.FLOAT32)
            data, _ = correct_int8_bias(data, float_model, spread_samples(representative_dataset, CORRECTION_SAMPLES))
    if mode is QuantMode.DYNAMIC:
        data = lower_single_scale_fully_connected(data)
    return compact_model(data)


def _describe_conversion_failure(mode: QuantMode, error: BaseException) -> str:
    text = str(error).strip()
    first_lines = " ".join(text.splitlines()[:6])
    if mode is QuantMode.INT8 and ("quantiz" in text.lower() or "not supported" in text.lower()):
        return (
            f"int8 conversion failed because an op cannot be quantized: {first_lines}. "
            "Convert with --quantize dynamic or float16 instead, or keep that layer in float"
        )
    return f"{mode.value} conversion failed: {type(error).__name__}: {first_lines}"


def write_model_file(path: Path, data: bytes, force: bool = False) -> None:
    """Write a model file atomically: a reader never sees a half-written file.

    Args:
        path: the destination.
        data: the file content.
        force: whether an existing file is replaced. Default False.

    Raises:
        FileExistsError: if the file exists and ``force`` is False.
    """
    path = Path(path)
    if path.exists() and not force:
        raise ModelExistsError(f"{path} already exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            # mkstemp creates the file as 0600; give it the permissions a plain open() would.
            os.fchmod(handle.fileno(), 0o666 & ~_current_umask())
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _current_umask() -> int:
    # The umask can only be read by setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class ModelExistsError(EdgecountError, FileExistsError):
    """A model file already exists and overwriting was not requested."""
