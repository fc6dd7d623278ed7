"""Converting a training run to TFLite and checking each converted model against the Keras model.

For each quantization mode: convert, evaluate the ``.tflite`` with the TFLite interpreter on the
evaluation images, embed metadata (with the measured RMSE), and write ``model_<mode>.tflite``
atomically. When int8 RMSE exceeds float32's by more than ``max_drift``, the quantization debugger
ranks the layers, and ``keep_float`` writes ``model_int8_mixed.tflite`` with chosen layers in float.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgecount import __version__
from edgecount.converters import (
    CalibrationError,
    ModelExistsError,
    QuantMode,
    convert_keras_model,
    embed_metadata,
    load_calibration_frames,
    representative_samples,
    select_calibration_images,
    validate_representative_dataset,
    write_model_file,
)
from edgecount.converters.bias_correction import CORRECTION_SAMPLES
from edgecount.converters.debugger import ROUNDING_RMSE_PER_SCALE, choose_keep_float, convert_int8_mixed, rank_layer_errors
from edgecount.converters.streams import stdout_to_stderr
from edgecount.datasets import RunSplit, load_dataset, locate_split
from edgecount.reports.evaluation import (
    EvaluationImages,
    clip_counts,
    count_metrics,
    load_evaluation_images,
    output_difference,
    predict_keras,
    predict_tflite,
)
from edgecount.runs import RunDir, Sample
from edgecount.runtime import CountModel, EdgecountError

_log = logging.getLogger(__name__)

# The int8 model with its worst layers kept in float; the runtime accepts this name (runtime/model.py).
MIXED_NAME = "int8_mixed"
MIXED_FILE = f"model_{MIXED_NAME}.tflite"
CALIBRATION_METHOD = "sorted by count, cut into equal strata, one image drawn per stratum (numpy default_rng)"
METADATA_FORMAT = 1


class ConvertError(EdgecountError, ValueError):
    """A conversion request cannot be carried out as given (no images, unknown layers)."""


@dataclass
class ConvertSettings:
    """The options of one ``edgecount convert`` call; the command's help describes each field."""

    modes: list[QuantMode]
    out_dir: Path
    calibration_size: int = 200
    seed: int = 0
    data_dir: Path | None = None
    force: bool = False
    max_drift: float = 0.03
    warn_drift: float = 0.05
    keep_float: list[str] = field(default_factory=list)
    bias_correction: bool = True
    debug_samples: int = 32
    backend: str = "auto"
    # Called with a short description before each long step (decoding, converting, evaluating).
    on_phase: Callable[[str], None] | None = None

    def phase(self, message: str) -> None:
        _log.info("%s", message)
        if self.on_phase is not None:
            self.on_phase(message)


def _destinations(settings: ConvertSettings) -> dict[str, Path]:
    names = {mode.value: settings.out_dir / mode.file_name for mode in settings.modes}
    if settings.keep_float:
        names[MIXED_NAME] = settings.out_dir / MIXED_FILE
    return names


def _check_destinations(destinations: dict[str, Path], force: bool) -> None:
    # Checked before any work, so a run that would stop at the last file does not convert the others first.
    existing = [path for path in destinations.values() if path.exists()]
    if existing and not force:
        names = ", ".join(str(path) for path in existing)
        raise ModelExistsError(f"{names} already exist{'s' if len(existing) == 1 else ''}; pass --force to overwrite")


def _evaluation_samples(run: RunDir, split: RunSplit, data_dir: Path | None) -> tuple[list[Sample], str]:
    if data_dir is None:
        return split.samples("validation"), f"validation split of {run.path}"
    if split.relocated:
        return split.samples("validation"), f"validation split of {run.path}, images read from {data_dir}"
    # load_dataset logs each skipped row itself.
    return list(load_dataset(data_dir).samples), f"labelled dataset {data_dir}"


def build_calibration(
    run: RunDir, input_size: tuple[int, int], size: int, seed: int, split: RunSplit | None = None
) -> tuple[Any, dict[str, Any]]:
    """Choose and load the calibration images from the run's training split.

    Args:
        run: the run folder.
        input_size: the model's ``(height, width)``.
        size: how many images to choose.
        seed: the seed of the stratified draw.
        split: the run's split from ``locate_split``, whose paths may point at a moved dataset folder.
            Default None locates it without a new folder.

    Returns:
        ``(representative dataset, calibration metadata)``.

    Raises:
        SplitImagesNotFoundError: if none of the split's images exists, naming one and the --data fix.
        CalibrationError: if the training split has no usable image or a sample is wrong.
    """
    train = (split or locate_split(run)).samples("train")
    if not train:
        raise CalibrationError(
            f"the training split in {run.path / 'split.csv'} is empty, so int8 has no calibration images; "
            "retrain the run, or convert with --quantize dynamic, which needs none"
        )
    chosen = select_calibration_images([(sample.path, sample.count) for sample in train], size, seed)
    frames, failures = load_calibration_frames([path for path, _ in chosen])
    for failure in failures:
        _log.warning("calibration image skipped: %s", failure)
    dataset = representative_samples(frames, input_size)
    used = validate_representative_dataset(dataset, input_size)
    counts = [count for _, count in chosen]
    info = {
        "subset": "train",
        "requested": size,
        "size": used,
        "failed": len(failures),
        "seed": seed,
        "method": CALIBRATION_METHOD,
        "count_range": [min(counts), max(counts)],
    }
    return dataset, info


def _subset(dataset: Any, limit: int) -> Any:
    def generate():
        for position, item in enumerate(dataset()):
            if position >= limit:
                return
            yield item

    return generate


def _tensor_info(model: CountModel) -> dict[str, Any]:
    spec, output = model.input, model.output
    return {
        "input": {
            "shape": list(spec.shape),
            "dtype": str(spec.dtype),
            "scale": spec.scale,
            "zero_point": spec.zero_point,
            "range": [0, 255],
        },
        "output": {"dtype": str(output.dtype), "scale": output.scale, "zero_point": output.zero_point},
    }


def _measure(
    data: bytes, name: str, images: EvaluationImages | None, keras_outputs: Any, backend: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    # The interpreter reads the model from a temporary file, so the final file is written only once,
    # with metadata that contains the measured RMSE.
    with tempfile.TemporaryDirectory(prefix="edgecount-convert-") as folder:
        path = Path(folder) / f"model_{name}.tflite"
        path.write_bytes(data)
        model = CountModel(path, backend=backend)
        tensors = _tensor_info(model)
        result: dict[str, Any] = {"mode": name}
        if images is not None:
            outputs = predict_tflite(model, images)
            metrics = count_metrics(clip_counts(outputs), images.true_counts, images.paths)
            result.update(rmse=metrics.rmse, mae=metrics.mae, bias=metrics.bias, worst_error=metrics.worst_error)
            if keras_outputs is not None:
                result.update(output_difference(outputs, keras_outputs))
    return result, tensors


def _metadata(
    name: str, run: RunDir, input_size: tuple[int, int], tensors: dict[str, Any], result: dict[str, Any],
    keras: dict[str, Any], evaluation: dict[str, Any], calibration: dict[str, Any] | None, extra: dict[str, Any],
) -> dict[str, Any]:
    return {
        "format": METADATA_FORMAT,
        "edgecount_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quantization": name,
        "alpha": run.alpha,
        "input_size": [int(input_size[0]), int(input_size[1])],
        "channel_order": "RGB",
        **tensors,
        "validation": {
            "source": evaluation["source"],
            "images": evaluation["images"],
            "rmse": result.get("rmse"),
            "mae": result.get("mae"),
            "keras_rmse": keras.get("rmse"),
            "keras_mae": keras.get("mae"),
        },
        "training": {
            "data": run.config.get("data"),
            "split": run.config.get("split"),
            "metrics": run.config.get("metrics"),
            "model": run.config.get("model"),
            "quadrants": trained_quadrants(run.config),
        },
        "calibration": calibration,
        **extra,
    }


def trained_quadrants(run_document: dict[str, Any]) -> int:
    """Return the quadrant crops per photo that the saved model trained on: ``--quadrants``, or 0.

    It is 0 when phase 2 did not train on them (no box file, phase 2 over images) or was rolled back,
    and for a ``run.json`` written before ``--quadrants`` existed.
    """
    training = run_document.get("training") or {}
    phase_two = next((phase for phase in training.get("phases") or [] if phase.get("phase") == 2), None)
    if phase_two is None or not phase_two.get("kept") or not phase_two.get("quadrants_per_epoch"):
        return 0
    return int((training.get("settings") or {}).get("quadrants", 0))


def run_conversion(run: RunDir, settings: ConvertSettings) -> dict[str, Any]:
    """Convert a run in every requested mode, evaluate each model and write the files.

    Returns:
        A JSON-ready report: evaluation source, Keras metrics, one entry per written model, and the
        debugger's layer ranking when it ran.

    Raises:
        ModelExistsError: if a destination exists and ``force`` is False.
        RunDirError: if ``model.keras`` or ``split.csv`` is missing.
        CalibrationError: if int8 has no usable calibration images.
        SplitImagesNotFoundError: if none of the split's images exists and ``settings.data_dir`` does not
            contain them either.
        ConversionError: if TensorFlow cannot convert the model.
    """
    destinations = _destinations(settings)
    _check_destinations(destinations, settings.force)

    # Find the images first, so that a moved dataset fails before the slow Keras model load.
    needs_int8 = QuantMode.INT8 in settings.modes or bool(settings.keep_float)
    split = locate_split(run, settings.data_dir)
    if needs_int8:
        split.samples("train")
    samples, source = _evaluation_samples(run, split, settings.data_dir)

    # Load the model and the evaluation images.
    with stdout_to_stderr():
        keras_model = run.load_keras_model()
    input_size = (int(keras_model.input_shape[1]), int(keras_model.input_shape[2]))
    images = None
    if samples:
        settings.phase(f"decoding {len(samples)} evaluation images")
        images = load_evaluation_images(samples)
    else:
        _log.warning("no evaluation images (%s is empty): the models are written without a validation RMSE", source)
    evaluation = {"source": source, "images": len(images) if images else 0, "failed": len(images.failures) if images else 0}

    keras_outputs, keras = None, {}
    if images is not None:
        settings.phase("running the Keras model on the evaluation images")
        with stdout_to_stderr():
            keras_outputs = predict_keras(keras_model, images)
        metrics = count_metrics(clip_counts(keras_outputs), images.true_counts, images.paths)
        keras = {"rmse": metrics.rmse, "mae": metrics.mae, "bias": metrics.bias}

    # Calibration images, only when an int8 model is written.
    dataset, calibration = (None, None)
    if needs_int8:
        settings.phase(f"loading up to {settings.calibration_size} calibration images")
        dataset, calibration = build_calibration(run, input_size, settings.calibration_size, settings.seed, split)

    # Convert, measure, embed metadata and write each mode.
    report: dict[str, Any] = {"evaluation": evaluation, "keras": keras, "models": []}
    results: dict[str, dict[str, Any]] = {}
    converted: dict[QuantMode, bytes] = {}
    for mode in settings.modes:
        settings.phase(f"converting to {mode.value} and evaluating it")
        with stdout_to_stderr():
            data = convert_keras_model(
                keras_model,
                mode,
                dataset if mode is QuantMode.INT8 else None,
                bias_correction=settings.bias_correction,
                float_reference=converted.get(QuantMode.FLOAT32),
            )
        converted[mode] = data
        result, tensors = _measure(data, mode.value, images, keras_outputs, settings.backend)
        mode_calibration = None
        if mode is QuantMode.INT8:
            mode_calibration = {**calibration, "bias_correction": settings.bias_correction}
            if settings.bias_correction:
                mode_calibration["bias_correction_images"] = CORRECTION_SAMPLES
        metadata = _metadata(mode.value, run, input_size, tensors, result, keras, evaluation, mode_calibration, {})
        final = embed_metadata(data, metadata)
        write_model_file(destinations[mode.value], final, force=settings.force)
        result.update(file=str(destinations[mode.value]), size_bytes=len(final))
        results[mode.value] = result
        report["models"].append(result)

    # int8 accuracy: drift against float32, the debugger, and the mixed model.
    if needs_int8 and images is not None:
        _check_int8_drift(run, settings, keras_model, dataset, calibration, images, keras_outputs, keras, evaluation,
                          input_size, destinations, results, report)
    return report


def _reference_rmse(run: RunDir, settings: ConvertSettings, results: dict[str, dict[str, Any]], images: EvaluationImages,
                    keras: dict[str, Any]) -> tuple[float | None, str]:
    if QuantMode.FLOAT32.value in results:
        return results[QuantMode.FLOAT32.value].get("rmse"), "float32 model"
    existing = settings.out_dir / QuantMode.FLOAT32.file_name
    if existing.is_file():
        try:
            model = CountModel(existing, backend=settings.backend)
            metrics = count_metrics(clip_counts(predict_tflite(model, images)), images.true_counts, images.paths)
            return metrics.rmse, f"existing {existing.name}"
        except EdgecountError as error:
            _log.warning("cannot evaluate %s for the int8 drift check: %s", existing, error)
    return keras.get("rmse"), "Keras model"


def _check_int8_drift(run, settings, keras_model, dataset, calibration, images, keras_outputs, keras, evaluation,
                      input_size, destinations, results, report) -> None:
    reference, reference_name = _reference_rmse(run, settings, results, images, keras)
    int8 = results.get(QuantMode.INT8.value)
    drift = None
    if int8 is not None and reference:
        drift = int8["rmse"] / reference - 1.0
        int8["drift_vs_float32"] = drift
        report["drift_reference"] = reference_name
        if drift > settings.warn_drift:
            _log.warning(
                "int8 RMSE %.3f is %.1f%% above the %s's %.3f (more than %.0f%%); see the layer table, and try "
                "--keep-float auto or a larger --calibration-size",
                int8["rmse"], drift * 100, reference_name, reference, settings.warn_drift * 100,
            )

    over_limit = drift is not None and drift > settings.max_drift
    if not over_limit and not settings.keep_float:
        return

    # The debugger calibrates and measures on a subset, because it runs the model once per sample with
    # a float and an int8 copy of every layer.
    debug_dataset = _subset(dataset, settings.debug_samples)
    settings.phase(f"running the quantization debugger on {settings.debug_samples} calibration images")
    with stdout_to_stderr():
        layers = rank_layer_errors(keras_model, debug_dataset)
    report["debugger"] = {
        "reason": f"int8 RMSE {drift * 100:+.1f}% vs {reference_name}" if over_limit else "--keep-float requested",
        "samples": settings.debug_samples,
        "rounding_floor": ROUNDING_RMSE_PER_SCALE,
        "layers": [layer.to_dict() for layer in layers[:10]],
    }
    if not settings.keep_float:
        return

    try:
        keep = choose_keep_float(settings.keep_float, layers)
    except ValueError as error:
        raise ConvertError(str(error)) from error
    settings.phase(f"converting to int8 with {len(keep)} layers in float and evaluating it")
    with stdout_to_stderr():
        data = convert_int8_mixed(keras_model, dataset, keep)
    result, tensors = _measure(data, MIXED_NAME, images, keras_outputs, settings.backend)
    if reference:
        result["drift_vs_float32"] = result["rmse"] / reference - 1.0
    metadata = _metadata(MIXED_NAME, run, input_size, tensors, result, keras, evaluation, calibration, {"keep_float": keep})
    final = embed_metadata(data, metadata)
    write_model_file(destinations[MIXED_NAME], final, force=settings.force)
    result.update(file=str(destinations[MIXED_NAME]), size_bytes=len(final), keep_float=keep)
    report["models"].append(result)
    report["mixed"] = result
