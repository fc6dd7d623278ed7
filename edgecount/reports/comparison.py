"""Comparing converted models on the same labelled images: accuracy, latency, size and the Haar baseline.

A model that fails to load or run becomes a row with ``status="failed"`` and its reason, and the
others are still measured. The Keras column needs TensorFlow and ``model.keras``; without them it is
"n/a" with the reason.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgecount.reports.evaluation import (
    CountMetrics,
    EvaluationImages,
    clip_counts,
    count_metrics,
    output_difference,
    predict_tflite,
)
from edgecount.reports.haar import HaarFaceCounter, HaarUnavailableError
from edgecount.reports.latency import DEFAULT_RUNS, DEFAULT_WARMUP, ModelLatency, measure_latency, summarize_times, time_calls
from edgecount.runtime import CountModel, EdgecountError

_log = logging.getLogger(__name__)

HAAR_NAME = "haar-cascade"
# Frames cycled through by the pipeline timing; a few real photos of different sizes and contents.
PIPELINE_FRAMES = 8


@dataclass
class ModelRow:
    """One row of the comparison: a TFLite model or the Haar baseline.

    ``status`` is ``ok``, ``failed`` (the model did not load or run; see ``reason``) or ``unavailable``
    (the baseline cannot run in this install). ``rmse_change_vs_keras`` is this model's RMSE minus the
    Keras model's, None with ``keras_note`` saying why when there is no Keras reference.
    ``speedup`` maps a thread count to float32's median invoke time divided by this model's.
    ``tta`` is ``flip`` for the row of a model run with test-time flip averaging (named ``<mode>+flip``),
    whose latency includes both inferences, ``tiles`` for the row of a model run on the frame and its 4
    quadrants (named ``<mode>+tiles``), whose latency includes all 5 inferences, and ``none`` otherwise.
    """

    name: str
    kind: str
    path: str | None = None
    status: str = "ok"
    reason: str = ""
    size_bytes: int | None = None
    quantization: str | None = None
    metrics: CountMetrics | None = None
    rmse_change_vs_keras: float | None = None
    keras_note: str = ""
    output_difference: dict[str, float] | None = None
    latency: dict[int, ModelLatency] = field(default_factory=dict)
    speedup: dict[int, float] = field(default_factory=dict)
    tta: str = "none"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "path": self.path,
            "status": self.status,
            "reason": self.reason,
            "size_bytes": self.size_bytes,
            "quantization": self.quantization,
            "tta": self.tta,
            "metrics": self.metrics.to_dict() if self.metrics else None,
            "rmse_change_vs_keras": self.rmse_change_vs_keras,
            "keras_note": self.keras_note,
            "output_difference_vs_keras": self.output_difference,
            "latency": {str(threads): latency.to_dict() for threads, latency in self.latency.items()},
            "speedup_vs_float32": {str(threads): value for threads, value in self.speedup.items()},
        }


@dataclass
class KerasReference:
    """The Keras model's outputs on the evaluation images, or the reason there are none."""

    outputs: np.ndarray | None
    note: str = ""
    metrics: CountMetrics | None = None


@dataclass
class Comparison:
    """Everything a comparison report shows."""

    rows: list[ModelRow]
    system: dict[str, Any]
    images: int
    failed_images: list[str]
    keras: KerasReference
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "settings": self.settings,
            "images": self.images,
            "failed_images": self.failed_images,
            "keras": {
                "metrics": self.keras.metrics.to_dict() if self.keras.metrics else None,
                "note": self.keras.note,
            },
            "rows": [row.to_dict() for row in self.rows],
        }


def model_name(path: Path, model: CountModel | None = None) -> str:
    """Name a model for the report: ``model_int8.tflite`` becomes ``int8``, other files keep their stem."""
    stem = path.stem
    return stem[len("model_") :] if stem.startswith("model_") else stem


def evaluate_model(
    path: Path,
    images: EvaluationImages,
    threads: Sequence[int],
    keras: KerasReference,
    runs: int = DEFAULT_RUNS,
    warmup: int = DEFAULT_WARMUP,
    backend: str = "auto",
    tta: str = "none",
) -> ModelRow:
    """Measure one TFLite model: accuracy on the images, then latency at each thread count.

    Errors from loading or running the model are caught and turned into a ``failed`` row. With
    ``tta="flip"`` the row is named ``<mode>+flip``, its outputs average each frame and its mirror
    image as ``CountModel(..., tta="flip")`` does, and its latency covers both inferences. With
    ``tta="tiles"`` the row is named ``<mode>+tiles``, its outputs are ``CountModel(..., tta="tiles")``
    counts, and its latency covers all 5 inferences.
    """
    suffix = "" if tta == "none" else f"+{tta}"
    row = ModelRow(name=model_name(path) + suffix, kind="tflite", path=str(path), tta=tta)
    try:
        row.size_bytes = path.stat().st_size
    except OSError as error:
        row.status, row.reason = "failed", f"{path}: {error.strerror or error}"
        return row

    try:
        model = CountModel(path, num_threads=max(threads), backend=backend, tta=tta)
        # The metadata's own name, so that int8_mixed is not reported as the mode inferred from its float input.
        row.quantization = str((model.metadata or {}).get("quantization") or model.quantization)
        if model.tta == "tiles":
            outputs = np.array([model.predict(frame) for frame in images.frames])
        else:
            outputs = predict_tflite(model, images)
            if model.tta == "flip":
                mirrored = np.array([model.invoke(model.prepare(np.ascontiguousarray(frame[:, ::-1]))) for frame in images.frames])
                outputs = (outputs + mirrored) / 2.0
        row.metrics = count_metrics(clip_counts(outputs), images.true_counts, images.paths)
        if keras.outputs is not None and keras.metrics is not None:
            row.rmse_change_vs_keras = row.metrics.rmse - keras.metrics.rmse
            row.output_difference = output_difference(outputs, keras.outputs)
        else:
            row.keras_note = keras.note

        frames = images.frames[:PIPELINE_FRAMES]
        for num_threads in threads:
            row.latency[num_threads] = measure_latency(path, num_threads, frames, runs, warmup, backend, tta)
    except (EdgecountError, ValueError, RuntimeError) as error:
        # ModelError/BackendError on load; ValueError/RuntimeError from the interpreter on invoke.
        row.status, row.reason = "failed", f"{type(error).__name__}: {error}"
        _log.warning("%s (%s) failed: %s", row.name, path, error)
    return row


def evaluate_haar(
    images: EvaluationImages, threads: Sequence[int], runs: int, warmup: int, cascade_path: str | os.PathLike[str] | None = None
) -> ModelRow:
    """Measure the Haar cascade baseline on the same images; ``unavailable`` when OpenCV lacks it."""
    row = ModelRow(name=HAAR_NAME, kind="baseline", keras_note="not a Keras model")
    try:
        counter = HaarFaceCounter(cascade_path)
    except HaarUnavailableError as error:
        row.status, row.reason = "unavailable", str(error)
        return row
    row.path = str(counter.cascade_path)
    row.size_bytes = counter.cascade_path.stat().st_size
    row.quantization = counter.describe()

    counts = np.asarray([counter.count(frame) for frame in images.frames], dtype=np.float64)
    row.metrics = count_metrics(counts, images.true_counts, images.paths)

    frames = images.frames[:PIPELINE_FRAMES]
    previous_threads = cv2.getNumThreads()
    try:
        for num_threads in threads:
            cv2.setNumThreads(num_threads)
            times = time_calls(lambda i: counter.count(frames[i % len(frames)]), runs, warmup)
            stats = summarize_times(times)
            # The detector has no separate model call: its whole pipeline is the detection.
            row.latency[num_threads] = ModelLatency(num_threads, 0.0, stats, stats)
    finally:
        cv2.setNumThreads(previous_threads)
    return row


def add_speedups(rows: Sequence[ModelRow]) -> None:
    """Fill each row's ``speedup`` against the float32 model's median invoke time, thread count by thread count."""
    reference = next((row for row in rows if row.status == "ok" and row.kind == "tflite" and row.quantization == "float32"), None)
    if reference is None:
        return
    for row in rows:
        if row.status != "ok":
            continue
        for num_threads, latency in row.latency.items():
            base = reference.latency.get(num_threads)
            if base is not None and latency.invoke.median_ms > 0:
                row.speedup[num_threads] = base.invoke.median_ms / latency.invoke.median_ms


def compare_models(
    paths: Sequence[Path],
    images: EvaluationImages,
    threads: Sequence[int],
    keras: KerasReference,
    system: dict[str, Any],
    runs: int = DEFAULT_RUNS,
    warmup: int = DEFAULT_WARMUP,
    backend: str = "auto",
    haar: bool = True,
    cascade_path: str | os.PathLike[str] | None = None,
    on_model: Callable[[str], None] | None = None,
    tta: str = "none",
) -> Comparison:
    """Evaluate every model and the baseline on the same images.

    Args:
        paths: the ``.tflite`` files.
        images: the labelled evaluation images.
        threads: thread counts to time, for example ``[1, 2, 4]``.
        keras: the Keras model's outputs, or why there are none.
        system: the report header from ``system_info``.
        runs: timed calls per latency measurement. Default 50.
        warmup: untimed calls before each measurement. Default 5.
        backend: the interpreter backend. Default ``auto``.
        haar: whether to add the Haar cascade row. Default True.
        cascade_path: the cascade XML; default None searches OpenCV's data folder.
        on_model: called with each model's name before it is measured.
        tta: ``flip`` or ``tiles`` adds a ``<mode>+flip`` or ``<mode>+tiles`` row after each model
            that loaded, measured with that test-time augmentation, so the report shows its RMSE change
            and latency cost. Default ``none``.

    Raises:
        ValueError: if no thread count is given or one is below 1.
    """
    if not threads or min(threads) < 1:
        raise ValueError(f"thread counts must be 1 or more, got {list(threads)}")
    started = time.perf_counter()
    rows = []
    for path in paths:
        if on_model:
            on_model(model_name(Path(path)))
        rows.append(evaluate_model(Path(path), images, threads, keras, runs, warmup, backend))
        if tta != "none" and rows[-1].status == "ok":
            if on_model:
                on_model(f"{rows[-1].name}+{tta}")
            rows.append(evaluate_model(Path(path), images, threads, keras, runs, warmup, backend, tta))
    if haar:
        if on_model:
            on_model(HAAR_NAME)
        rows.append(evaluate_haar(images, threads, runs, warmup, cascade_path))
    add_speedups(rows)

    settings = {"threads": list(threads), "runs": runs, "warmup": warmup, "tta": tta, "seconds": round(time.perf_counter() - started, 1)}
    return Comparison(rows, system, len(images), list(images.failures), keras, settings)

