"""K-fold cross-validation of the training settings: every image is predicted once, by a model that never saw it.

A single validation split flatters a model: with a few hundred images, which photos land in it moves
the RMSE by several tenths of a face. ``cross_validate`` cuts the dataset into ``folds`` parts stratified
by count, trains one model per part on all the other parts with the same settings, and predicts the
held-out part. The pooled out-of-fold predictions give the RMSE, MAE and bias over every image, also by
count bucket, and the per-fold numbers give their spread.

Inside each fold, early stopping and the phase 2 rollback watch an inner validation split of the
training folds (``validation_split`` of them, stratified by count), never the held-out fold. So the
out-of-fold numbers are not tuned on the images they score.

The base features are computed once for all folds and cached like a training run's. The fold models
are not kept: they only estimate how well the settings generalise. The model to deploy is the one a
normal ``edgecount train`` run with the same settings trains on all images.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgecount.datasets import LabelledDataset, load_dataset, split_samples
from edgecount.datasets.split import validation_size
from edgecount.runs import Sample, write_json_atomically
from edgecount.runtime.errors import EdgecountError
from edgecount.tensorflow_import import import_tensorflow
from edgecount.training.config import TrainConfig
from edgecount.training.cv_report import format_cv_report
from edgecount.training.images import OnStep, should_stream
from edgecount.training.loop import PhaseState, run_phase
from edgecount.training.model import build_count_model, create_fit_model, inverse_target, transform_counts
from edgecount.training.quadrant_pool import QuadrantMaps, check_quadrant_boxes
from edgecount.training.record import error_metrics, phase_record
from edgecount.training.run_folder import RunExistsError, prepare_staging, publish_staging
from edgecount.training.tail import TailMaps, create_tail_fit_model
from edgecount.training.weighting import count_weights

_log = logging.getLogger(__name__)

CV_FILE = "cv.json"
CV_REPORT_FILE = "cv.md"
PREDICTIONS_FILE = "predictions.csv"
MIN_FOLDS = 2
# Count buckets of the report: a label and the largest count in the bucket (counts are whole faces).
BUCKETS = (("1-4", 4.5), ("5-9", 9.5), ("10-14", 14.5), ("15+", math.inf))
# Calibration images per fold for --cv-int8, as for ``edgecount convert``.
CALIBRATION_SIZE = 200


class CrossValidationError(EdgecountError, ValueError):
    """Cross-validation cannot run as requested (too few images for the folds, unsupported settings)."""


def assign_folds(counts: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """Assign every image to one of ``folds`` folds, stratified by count.

    The images are ordered by count (ties in a seeded random order) and cut into consecutive groups of
    ``folds``. Each group deals one image to every fold in a seeded random order, so each fold gets the
    same share of every count range, including the few crowded photos at the top.

    Args:
        counts: the true count of each image.
        folds: number of folds, at least 2 and at most the number of images.
        seed: seed of the tie order and the deal. Default 0.

    Returns:
        An int array with the fold (0 to ``folds - 1``) of each image.

    Raises:
        CrossValidationError: for fewer than 2 folds or more folds than images.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if folds < MIN_FOLDS:
        raise CrossValidationError(f"--folds must be at least {MIN_FOLDS}, got {folds}; pass --folds 5 for 5-fold cross-validation")
    if folds > len(counts):
        raise CrossValidationError(
            f"--folds {folds} is more than the {len(counts)} usable images, so some folds would be empty; "
            f"pass at most --folds {len(counts)} (5 is usual)"
        )
    rng = np.random.default_rng([seed, folds])
    order = np.lexsort((rng.random(len(counts)), counts))
    assignment = np.empty(len(counts), dtype=np.int64)
    for start in range(0, len(order), folds):
        group = order[start : start + folds]
        # A short last group takes a random subset of the folds, so no fold always gets the extra image.
        assignment[group] = rng.permutation(folds)[: len(group)]
    return assignment


def check_inner_splits(assignment: np.ndarray, validation_fraction: float) -> None:
    """Check that every fold's training images leave at least one image on each side of the inner split.

    Raises:
        CrossValidationError: naming the fold, its image counts and the settings to change.
    """
    folds = int(assignment.max()) + 1
    for fold in range(folds):
        training = int((assignment != fold).sum())
        validation_images = validation_size(training, validation_fraction)
        if validation_images < 1 or validation_images >= training:
            change = "larger" if validation_images < 1 else "smaller"
            raise CrossValidationError(
                f"--folds {folds} on {len(assignment)} images leaves {training} training images in fold {fold + 1}, and "
                f"--validation-split {validation_fraction:g} of them leaves {validation_images} for early stopping and "
                f"{training - validation_images} to train; both need at least one image, so use more images, fewer folds "
                f"or a {change} --validation-split"
            )


def bucket_metrics(predictions: np.ndarray, counts: np.ndarray, by_prediction: bool = False) -> list[dict[str, Any]]:
    """Return ``error_metrics`` per count bucket (1-4, 5-9, 10-14, 15+ faces; empty buckets included).

    The buckets group the images by true count, or with ``by_prediction`` by their predicted count
    rounded to a whole face: what a user who sees only the model's count can expect of it. The first
    bucket is named 0-4 when it contains a count of 0.
    """
    predictions, counts = np.asarray(predictions, np.float64), np.asarray(counts, np.float64)
    keys = np.rint(predictions) if by_prediction else counts
    rows, lower = [], -math.inf
    for label, upper in BUCKETS:
        inside = (keys > lower) & (keys <= upper)
        # The first bucket also contains the counts of 0, true or rounded, and is named 0-4 when it has any.
        name = "0-4" if label == "1-4" and bool((keys[inside] < 0.5).any()) else label
        rows.append({"bucket": name, **error_metrics(predictions[inside], counts[inside])})
        lower = upper
    return rows


def summarise_folds(fold_rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    """Return the mean and standard deviation (ddof 1, over folds) of one per-fold metric."""
    values = np.array([row[key] for row in fold_rows], np.float64)
    return {"mean": round(float(values.mean()), 4), "std": round(float(values.std(ddof=1)) if len(values) > 1 else 0.0, 4)}


def cross_validate(config: TrainConfig, folds: int, int8: bool = False, on_step: OnStep | None = None) -> dict[str, Any]:
    """Cross-validate the training settings and write ``cv.json``, ``cv.md`` and ``predictions.csv``.

    Args:
        config: the training settings; ``out_dir`` is the cross-validation folder to write, and
            ``validation_split`` is the inner split of each fold's training images for early stopping.
        folds: number of folds, at least 2.
        int8: also convert each fold's model to int8, calibrated on up to 200 of that fold's training
            images, and score it on the held-out fold with the LiteRT interpreter. Default False.
        on_step: progress callback ``on_step(stage, done, total)`` for the ``decode`` and ``features``
            passes and ``("fold", folds_done, folds)`` after each fold.

    Returns:
        The ``cv.json`` document that was written.

    Raises:
        ValueError: for an invalid setting.
        CrossValidationError: for an invalid fold count or a setting cross-validation does not support.
        RunExistsError: if ``out_dir`` exists and ``config.force`` is False, or it is not a
            cross-validation folder.
        DatasetNotFoundError, DatasetError: for a missing or unusable dataset.
    """
    config.validate()
    if config.strategy != "default":
        raise CrossValidationError(f"--folds trains on one device only, got --strategy {config.strategy}; drop --strategy")
    if config.tensorboard:
        raise CrossValidationError("--folds does not write TensorBoard logs; drop --tensorboard")
    if folds < MIN_FOLDS:
        raise CrossValidationError(f"--folds must be at least {MIN_FOLDS}, got {folds}; pass --folds 5 for 5-fold cross-validation")
    check_cv_dir(config.out_dir, config.force)
    started = time.perf_counter()

    # Dataset, determinism and the features of every image, computed once for all folds.
    dataset = load_dataset(config.data_dir, strict=config.strict)
    check_quadrant_boxes(dataset, config.quadrants)
    # Reject too many folds, or folds too small for the inner split, before the feature pass.
    check_inner_splits(assign_folds(np.array([sample.count for sample in dataset.samples]), folds, config.seed), config.validation_split)
    tf = import_tensorflow("edgecount train --folds")
    import keras

    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    staging = prepare_staging(config.out_dir)
    try:
        document = _cross_validate_in_staging(config, folds, int8, dataset, staging, on_step, started)
    except BaseException:
        # NOTE: Ctrl-C waits for a batch end only during fit (edgecount.training.interrupts). In a feature
        # pass or a prediction it can still land inside TensorFlow and end in a SystemError traceback.
        _log.warning("cross-validation stopped; the cached features stay in %s for the next attempt", staging)
        raise
    publish_staging(staging, config.out_dir)
    return document


def check_cv_dir(out_dir: Path, force: bool) -> None:
    """Reject an output folder that cross-validation must not overwrite (see ``check_output_dir``).

    Raises:
        RunExistsError: if ``out_dir`` is a file, a non-empty folder without ``cv.json``, or a
            cross-validation folder while ``force`` is False.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RunExistsError(f"--out {out_dir} is a file, not a folder; choose a new folder for the cross-validation")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    if not (out_dir / CV_FILE).is_file():
        raise RunExistsError(
            f"--out {out_dir} is a non-empty folder without {CV_FILE}, so it is not a cross-validation folder; "
            "choose a new or empty folder (--force replaces only cross-validation folders)"
        )
    if not force:
        raise RunExistsError(f"cross-validation folder {out_dir} already exists; pass --force to replace it, or choose another --out")


def _cross_validate_in_staging(
    config: TrainConfig, folds: int, int8: bool, dataset: LabelledDataset, staging: Path, on_step: OnStep | None, started: float
) -> dict[str, Any]:
    from edgecount.training.trainer import _compute_features, _compute_maps, compute_run_quadrants, fine_tunes_on_maps

    stream = should_stream(len(dataset.samples), config.image_size) if config.stream is None else config.stream
    clock = time.perf_counter()
    model = build_count_model(config.alpha, config.image_size, config.weights, config.dropout, config.head_units, config.target)
    features, mirrored, images, sizes = _compute_features(model, dataset, config, staging, stream, on_step)
    tail_maps = _compute_maps(model, dataset, images, config, staging, on_step) if fine_tunes_on_maps(config, stream) else None
    features_seconds = time.perf_counter() - clock
    # The quadrants of every photo, computed once: each fold draws its training crops from them and
    # counts its held-out photos by tiles with them.
    clock = time.perf_counter()
    quadrant_maps = compute_run_quadrants(model, dataset, config, staging, sizes, stream, on_step)
    quadrant_seconds = time.perf_counter() - clock
    del model
    samples = list(dataset.samples)
    counts = np.array([sample.count for sample in samples], dtype=np.float32)
    assignment = assign_folds(counts, folds, config.seed)
    _log.info("%d-fold cross-validation on %d images (%s input path)", folds, len(samples), "tf.data" if stream else "in-memory")

    # One model per fold, trained on the other folds and scored on this one.
    predictions = np.full(len(samples), np.nan, np.float64)
    int8_predictions = np.full(len(samples), np.nan, np.float64) if int8 else None
    tiles_predictions = np.full(len(samples), np.nan, np.float64) if quadrant_maps is not None else None
    fold_rows = []
    for fold in range(folds):
        clock = time.perf_counter()
        held_out = np.flatnonzero(assignment == fold)
        training = np.flatnonzero(assignment != fold)
        result = _train_fold(
            config, dataset, features, mirrored, tail_maps, quadrant_maps, images, sizes, counts, training, held_out, stream, fold, folds, staging
        )
        predictions[held_out] = result["predictions"]
        row = {"fold": fold + 1, **error_metrics(result["predictions"], counts[held_out]), **result["record"]}
        if tiles_predictions is not None:
            tiles_predictions[held_out] = result["tiles_predictions"]
            row["tiles"] = error_metrics(result["tiles_predictions"], counts[held_out])
        if int8_predictions is not None:
            int8_predictions[held_out] = _int8_predictions(result["model"], samples, training, held_out, config, staging)
            row["int8"] = error_metrics(int8_predictions[held_out], counts[held_out])
            row["int8_rmse_ratio"] = round(row["int8"]["rmse"] / row["rmse"], 4) if row["rmse"] > 0 else None
        row["seconds"] = round(time.perf_counter() - clock, 2)
        fold_rows.append(row)
        _log.info("fold %d/%d: RMSE %.3f, MAE %.3f, bias %+.3f on %d images", fold + 1, folds, row["rmse"], row["mae"], row["bias"], row["images"])
        del result
        import keras

        keras.backend.clear_session()
        if on_step is not None:
            on_step("fold", fold + 1, folds)

    # Each image belongs to exactly one held-out fold, so every prediction must be set by now.
    if np.isnan(predictions).any():
        raise RuntimeError(f"{int(np.isnan(predictions).sum())} images got no out-of-fold prediction; the fold assignment is broken")
    document = _cv_document(config, folds, int8, dataset, counts, predictions, int8_predictions, fold_rows, stream)
    if tiles_predictions is not None:
        document["tiles"] = {
            "method": "the mean of the whole-photo count and the sum of the 4 quadrant counts, as --tta tiles counts",
            "mean": {key: summarise_folds([row["tiles"] for row in fold_rows], key) for key in ("rmse", "mae", "bias")},
            "pooled": error_metrics(tiles_predictions, counts),
            "buckets": bucket_metrics(tiles_predictions, counts),
        }
    document["timing"] = {
        "features_seconds": round(features_seconds, 2),
        "mosaic_seconds": round(sum(row["mosaic_seconds"] for row in fold_rows), 2),
        "quadrant_seconds": round(quadrant_seconds, 2),
        "total_seconds": round(time.perf_counter() - started, 2),
    }
    extra_columns = {"count_int8": int8_predictions, "count_tiles": tiles_predictions}
    _write_predictions(staging / PREDICTIONS_FILE, samples, counts, assignment, predictions, {name: values for name, values in extra_columns.items() if values is not None})
    write_json_atomically(staging / CV_FILE, document)
    (staging / CV_REPORT_FILE).write_text(format_cv_report(document))
    return document


class _NoCheckpoints:
    """A stand-in for ``CheckpointStore``: fold models train in one go, so a checkpoint would only cost time."""

    def save(self, state: dict[str, Any], arrays: dict[str, list[np.ndarray]]) -> None:
        del state, arrays


def _train_fold(
    config: TrainConfig,
    dataset: LabelledDataset,
    features: np.ndarray,
    mirrored: np.ndarray | None,
    tail_maps: TailMaps | None,
    quadrant_maps: QuadrantMaps | None,
    images: np.ndarray | None,
    sizes: dict[Path, tuple[int, int]],
    counts: np.ndarray,
    training: np.ndarray,
    held_out: np.ndarray,
    stream: bool,
    fold: int,
    folds: int,
    staging: Path,
) -> dict[str, Any]:
    """Train one fold's model as ``edgecount train`` does and return its held-out predictions and record."""
    import keras

    from edgecount.training.features import create_epoch_datasets, create_head_model
    from edgecount.training.trainer import _compile, _phase_two_data, _predict_images, _unfreeze_tail, compute_run_mosaics, count_by_tiles, phase_two_pools

    samples = dataset.samples
    targets = transform_counts(counts, config.target)

    # The inner split of the training folds that early stopping and the rollback watch.
    inner_train, inner_validation = split_samples([samples[row] for row in training], config.validation_split, config.seed)
    row_of = {sample.path: index for index, sample in enumerate(samples)}
    train_rows = np.array([row_of[sample.path] for sample in inner_train])
    validation_rows = np.array([row_of[sample.path] for sample in inner_validation])

    # The same initial weights in every fold.
    keras.utils.set_random_seed(config.seed)
    model = build_count_model(config.alpha, config.image_size, config.weights, config.dropout, config.head_units, config.target)
    store = _NoCheckpoints()
    batch = config.batch_size

    # The fold's phase 2 mosaics, drawn from its inner training images only.
    clock = time.perf_counter()
    mosaics = compute_run_mosaics(model, dataset, config, staging, train_rows, counts, stream, log_prefix=f"fold {fold + 1}/{folds}: ")
    mosaic_seconds = time.perf_counter() - clock
    pools = phase_two_pools(mosaics, quadrant_maps, config)

    # Phase 1: the head on the cached features.
    head = create_head_model(model)
    _compile(head, config.loss, config.learning_rate)

    weights = count_weights(counts, train_rows, config.count_weighting)
    phase_one_epoch, validation_features = create_epoch_datasets(features, mirrored, targets, train_rows, validation_rows, config.seed, 1, batch, weights)
    state_one = PhaseState(1)
    _log.info("fold %d/%d: phase 1 on %d images, early stopping on %d", fold + 1, folds, len(train_rows), len(validation_rows))
    run_phase(head, model, state_one, phase_one_epoch, validation_features, config.epochs, config.patience, store, {}, {}, verbose=0)
    phases = [phase_record(1, state_one.history, config.learning_rate, state_one.seconds, config.epochs)]

    # Phase 2: fine-tuning over the images, kept only when it lowers the inner validation loss.
    fine_tuned = False
    if config.fine_tunes:
        phase_one_weights = model.get_weights()
        unfrozen = _unfreeze_tail(model, config.fine_tune_layers)
        fit_model = create_fit_model(model) if tail_maps is None else create_tail_fit_model(model, tail_maps.start)
        _compile(fit_model, config.loss, config.fine_tune_learning_rate)
        epoch_data, validation_data = _phase_two_data(
            tail_maps, dataset, images, sizes, counts, train_rows, validation_rows, config, stream, batch, weights, pools
        )
        state_two = PhaseState(2)
        _log.info(
            "fold %d/%d: phase 2 on the last %d base layers, %d of them with trainable weights (batch normalisation stays frozen)",
            fold + 1, folds, config.fine_tune_layers, unfrozen,
        )
        run_phase(fit_model, model, state_two, epoch_data, validation_data, config.fine_tune_epochs, config.patience, store, {}, {}, verbose=0)
        record = phase_record(2, state_two.history, config.fine_tune_learning_rate, state_two.seconds, config.fine_tune_epochs)
        record["input"] = "images" if tail_maps is None else f"cached maps at the input of {tail_maps.layer_name}"
        fine_tuned = record["best_val_loss"] < phases[0]["best_val_loss"]
        record["kept"] = fine_tuned
        if not fine_tuned:
            model.set_weights(phase_one_weights)
        phases.append(record)
    for layer in model.layers:
        layer.trainable = True

    # Held-out predictions, clipped at 0 as CountModel.predict returns them.
    if fine_tuned:
        held_samples = [samples[row] for row in held_out]
        predicted = _predict_images(model, held_samples, None if images is None else images[held_out], config, stream)
    else:
        predicted = inverse_target(np.asarray(head.predict(features[held_out], batch_size=256, verbose=0)).reshape(-1), config.target)
    record = {
        "train_images": int(len(train_rows)),
        "early_stopping_images": int(len(validation_rows)),
        "phase1_epochs": phases[0]["epochs_run"],
        "phase1_best_epoch": phases[0]["best_epoch"],
        "fine_tuned": fine_tuned,
        "mosaic_seconds": round(mosaic_seconds, 2),
        "phases": phases,
    }
    whole = np.maximum(np.asarray(predicted, np.float64), 0.0)
    result = {"predictions": whole, "record": record, "model": model}
    if quadrant_maps is not None and tail_maps is not None:
        result["tiles_predictions"] = count_by_tiles(model, tail_maps, quadrant_maps, whole, held_out, config.target)
    return result


def _int8_predictions(model: Any, samples: list[Sample], training: np.ndarray, held_out: np.ndarray, config: TrainConfig, staging: Path) -> np.ndarray:
    """Convert a fold's model to int8 (calibrated on its training folds) and predict the held-out fold with LiteRT."""
    from edgecount.converters import (
        QuantMode,
        convert_keras_model,
        load_calibration_frames,
        representative_samples,
        select_calibration_images,
        validate_representative_dataset,
    )
    from edgecount.converters.streams import stdout_to_stderr
    from edgecount.reports.evaluation import load_evaluation_images, predict_tflite
    from edgecount.runtime import CountModel

    input_size = (config.image_size, config.image_size)
    chosen = select_calibration_images([(samples[row].path, samples[row].count) for row in training], CALIBRATION_SIZE, config.seed)
    frames, failures = load_calibration_frames([path for path, _ in chosen])
    for failure in failures:
        _log.warning("calibration image skipped: %s", failure)
    representative = representative_samples(frames, input_size)
    validate_representative_dataset(representative, input_size)
    with stdout_to_stderr():
        data = convert_keras_model(model, QuantMode.INT8, representative)

    # CountModel reads a file; the fold's int8 model lives only as long as its scoring.
    handle, name = tempfile.mkstemp(suffix=".tflite", dir=staging)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        evaluation = load_evaluation_images([samples[row] for row in held_out])
        outputs = predict_tflite(CountModel(name, num_threads=1), evaluation)
    finally:
        os.unlink(name)
    if evaluation.failures:
        # NOTE: an image that decoded for the feature pass but not now is scored as a count of 0.
        _log.warning("%d held-out images failed to decode for the int8 model", len(evaluation.failures))
        by_path = dict(zip((str(path) for path in evaluation.paths), outputs))
        outputs = np.array([by_path.get(str(samples[row].path), 0.0) for row in held_out])
    return np.maximum(outputs, 0.0)


def _cv_document(
    config: TrainConfig,
    folds: int,
    int8: bool,
    dataset: LabelledDataset,
    counts: np.ndarray,
    predictions: np.ndarray,
    int8_predictions: np.ndarray | None,
    fold_rows: list[dict[str, Any]],
    stream: bool,
) -> dict[str, Any]:
    from edgecount import __version__

    document: dict[str, Any] = {
        "edgecount_version": __version__,
        "folds": folds,
        "method": (
            f"{folds} folds stratified by count (seed {config.seed}); each fold's model trains on the other folds, "
            f"with early stopping on a {config.validation_split:g} inner split of them, and predicts its fold once"
        ),
        "images": int(len(counts)),
        "data": dataset.summary(),
        "settings": config.as_dict(),
        "input_path": "tf.data stream" if stream else "in-memory",
        "mean": {key: summarise_folds(fold_rows, key) for key in ("rmse", "mae", "bias")},
        "pooled": error_metrics(predictions, counts),
        "buckets": bucket_metrics(predictions, counts),
        "predicted_buckets": bucket_metrics(predictions, counts, by_prediction=True),
        "folds_detail": fold_rows,
        "fold_models": "not kept; train the model to deploy with the same settings and no --folds",
        "predictions_file": PREDICTIONS_FILE,
        "note": "counts clipped at 0, as CountModel.predict returns them",
    }
    if int8_predictions is not None:
        ratios = [row["int8_rmse_ratio"] for row in fold_rows if row["int8_rmse_ratio"] is not None]
        document["int8"] = {
            "calibration": f"up to {CALIBRATION_SIZE} images of each fold's training folds, stratified by count",
            "mean": {key: summarise_folds([row["int8"] for row in fold_rows], key) for key in ("rmse", "mae", "bias")},
            "pooled": error_metrics(int8_predictions, counts),
            "buckets": bucket_metrics(int8_predictions, counts),
            "rmse_ratio": {"mean": round(float(np.mean(ratios)), 4), "max": round(float(np.max(ratios)), 4)} if ratios else None,
        }
    return document


def _write_predictions(
    path: Path, samples: list[Sample], counts: np.ndarray, assignment: np.ndarray, predictions: np.ndarray, extra_columns: dict[str, np.ndarray]
) -> None:
    """Write ``predictions.csv``: each image's true count, fold and count, then one column per entry of ``extra_columns``."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "true_count", "fold", "count", *extra_columns])
        for row, sample in enumerate(samples):
            values = [str(sample.path), f"{counts[row]:g}", int(assignment[row]) + 1, f"{predictions[row]:.4f}"]
            values += [f"{column[row]:.4f}" for column in extra_columns.values()]
            writer.writerow(values)
    os.replace(temporary, path)
