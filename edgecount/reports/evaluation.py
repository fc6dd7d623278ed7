"""Count accuracy of TFLite and Keras models on labelled images: RMSE, MAE, bias and worst error.

Images are decoded and preprocessed once per input size, then fed to every model, so all models of a
comparison see the same pixels. Counts are clipped below at 0 as ``CountModel.predict`` does; the
difference between two models is measured on their raw outputs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecount.runs import Sample
from edgecount.runtime import CountModel, ImageDecodeError, load_image, preprocess, quantize

_log = logging.getLogger(__name__)

StepCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class CountMetrics:
    """Accuracy of predicted counts against true counts.

    ``bias`` is the mean of ``count - true_count`` (positive: the model overcounts); ``worst_error`` is
    the largest absolute error and ``worst_image`` the image it occurs on.
    """

    images: int
    rmse: float
    mae: float
    bias: float
    worst_error: float
    worst_image: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "rmse": self.rmse,
            "mae": self.mae,
            "bias": self.bias,
            "worst_error": self.worst_error,
            "worst_image": self.worst_image,
        }


def count_metrics(counts: np.ndarray, true_counts: np.ndarray, paths: Sequence[str | Path]) -> CountMetrics:
    """Compute RMSE, MAE, bias and the worst error of predicted counts.

    Raises:
        ValueError: if the arrays are empty or their lengths differ.
    """
    counts = np.asarray(counts, dtype=np.float64)
    true_counts = np.asarray(true_counts, dtype=np.float64)
    if counts.size == 0 or counts.shape != true_counts.shape or len(paths) != counts.size:
        raise ValueError(
            f"count_metrics needs equally long non-empty arrays, got {counts.size} counts, "
            f"{true_counts.size} true counts and {len(paths)} paths"
        )
    errors = counts - true_counts
    worst = int(np.argmax(np.abs(errors)))
    return CountMetrics(
        images=int(counts.size),
        rmse=float(math.sqrt(np.mean(errors**2))),
        mae=float(np.mean(np.abs(errors))),
        bias=float(np.mean(errors)),
        worst_error=float(abs(errors[worst])),
        worst_image=str(paths[worst]),
    )


@dataclass
class EvaluationImages:
    """Labelled images decoded once, with their preprocessed RGB inputs cached per input size.

    Attributes:
        frames: HxWx3 uint8 BGR frames of the images that decoded, in sample order.
        true_counts: their true counts.
        paths: their paths.
        failures: one message per image that failed to decode.
    """

    frames: list[np.ndarray]
    true_counts: np.ndarray
    paths: list[Path]
    failures: list[str] = field(default_factory=list)
    _inputs: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.frames)

    def inputs(self, input_size: tuple[int, int]) -> np.ndarray:
        """Return the ``(N, height, width, 3)`` uint8 RGB inputs for one model input size."""
        key = (int(input_size[0]), int(input_size[1]))
        if key not in self._inputs:
            self._inputs[key] = np.stack([preprocess(frame, key) for frame in self.frames])
        return self._inputs[key]


def load_evaluation_images(samples: Sequence[Sample], on_step: StepCallback | None = None) -> EvaluationImages:
    """Decode labelled images, keeping the ones that fail as messages.

    Args:
        samples: the labelled images, for example a run's validation split.
        on_step: called as ``on_step(done, total)`` after each image.

    Raises:
        ValueError: if no sample is given or none of the images decodes.
    """
    if not samples:
        raise ValueError("there are no labelled images to evaluate on; check the run's split.csv or --data")
    frames, counts, paths, failures = [], [], [], []
    for position, sample in enumerate(samples, start=1):
        try:
            frames.append(load_image(sample.path))
            counts.append(float(sample.count))
            paths.append(Path(sample.path))
        except ImageDecodeError as error:
            failures.append(str(error))
            _log.warning("skipping an evaluation image: %s", error)
        if on_step:
            on_step(position, len(samples))
    if not frames:
        raise ImageDecodeError(
            f"none of the {len(samples)} evaluation images decodes; first failure: {failures[0]}. "
            "If the dataset folder moved, pass its new place with --data"
        )
    return EvaluationImages(frames, np.asarray(counts, dtype=np.float64), paths, failures)


def predict_tflite(model: CountModel, images: EvaluationImages, on_step: StepCallback | None = None) -> np.ndarray:
    """Return the raw (unclipped) outputs of a TFLite model on every image."""
    inputs = images.inputs(model.input_size)
    outputs = np.empty(len(inputs), dtype=np.float64)
    for position, rgb in enumerate(inputs):
        outputs[position] = model.invoke(quantize(rgb, model.input)[np.newaxis])
        if on_step:
            on_step(position + 1, len(inputs))
    return outputs


def predict_keras(keras_model: Any, images: EvaluationImages, batch_size: int = 32) -> np.ndarray:
    """Return the raw outputs of the Keras model on every image (float32 RGB pixels 0..255)."""
    height, width = (int(d) for d in keras_model.input_shape[1:3])
    inputs = images.inputs((height, width))
    outputs = []
    for start in range(0, len(inputs), batch_size):
        batch = inputs[start : start + batch_size].astype(np.float32)
        outputs.append(np.asarray(keras_model(batch, training=False)).reshape(-1))
    return np.concatenate(outputs).astype(np.float64)


def clip_counts(outputs: np.ndarray) -> np.ndarray:
    """Clip raw outputs below at 0, as ``CountModel.predict`` does."""
    return np.maximum(outputs, 0.0)


def output_difference(outputs: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Return the max and mean absolute difference between two models' raw outputs."""
    difference = np.abs(np.asarray(outputs) - np.asarray(reference))
    return {"max_abs_difference": float(difference.max()), "mean_abs_difference": float(difference.mean())}
