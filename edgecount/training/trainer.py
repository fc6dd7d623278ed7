"""One training run from a dataset folder to a complete run folder.

Phases:

1. the head (optional hidden layer, dropout, one linear unit) trains on pooled MobileNetV2 features
   computed once per image with the base frozen and cached under ``features/``;
2. optionally, the last ``fine_tune_layers`` base layers are unfrozen and trained over the images at a
   lower learning rate. Batch-normalisation layers stay frozen, so they run in inference mode with
   their ImageNet statistics: re-estimating them from batches of 32 group photos would shift every
   feature the head was fitted to.

Both phases stop early on the validation loss and restore the best epoch's weights. Phase 2 is kept
only if its best validation loss is below phase 1's; otherwise the phase 1 weights are restored.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgecount import __version__
from edgecount.datasets import LabelledDataset, load_dataset, split_samples
from edgecount.runs import HISTORY_FILE, KERAS_FILE, RUN_FILE, SPLIT_FILE, Sample, write_json_atomically, write_split
from edgecount.tensorflow_import import import_tensorflow
from edgecount.training.config import TrainConfig
from edgecount.training.distribute import create_strategy
from edgecount.training.features import (
    FEATURES_DIR,
    FeatureCache,
    create_feature_extractor,
    create_head_model,
    feature_cache_key,
    features_from_images,
    features_from_stream,
)
from edgecount.training.images import OnStep, create_image_stream, create_memory_dataset, load_images, should_stream
from edgecount.training.model import build_count_model, find_base
from edgecount.training.run_folder import check_output_dir, prepare_staging, publish_staging

_log = logging.getLogger(__name__)

PLOT_FILE = "loss.png"


def train(config: TrainConfig, on_step: OnStep | None = None) -> dict[str, Any]:
    """Train a counting model and write its run folder.

    Args:
        config: the run settings.
        on_step: progress callback ``on_step(stage, done, total)`` for the ``decode`` and ``features``
            passes. It gets ``("features-done", 1, 1)`` once, before training starts.

    Returns:
        The ``run.json`` document that was written.

    Raises:
        ValueError: for an invalid setting.
        RunExistsError: if the run folder exists and ``config.force`` is False.
        DatasetNotFoundError, DatasetError: for a missing or unusable dataset (or any bad row when strict).
        WeightsError: if the ImageNet weights cannot be loaded.
    """
    config.validate()
    check_output_dir(config.out_dir, config.force)
    started = time.perf_counter()

    # Dataset and determinism.
    dataset = load_dataset(config.data_dir, strict=config.strict)
    tf = import_tensorflow("edgecount train")
    import keras

    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    staging = prepare_staging(config.out_dir)
    try:
        document = _train_in_staging(config, dataset, staging, on_step, started)
    except BaseException:
        # Ctrl-C lands here too. The features saved so far make the next attempt start faster.
        _log.warning(
            "training stopped; the partial run stays in %s and the next run with --out %s reuses its cached features",
            staging, config.out_dir,
        )
        raise
    publish_staging(staging, config.out_dir)
    return document


def _train_in_staging(
    config: TrainConfig, dataset: LabelledDataset, staging: Path, on_step: OnStep | None, started: float
) -> dict[str, Any]:
    """Run both phases and write every file of the run into the staging folder; return ``run.json``."""
    timings: dict[str, float] = {}

    # Model under the distribution strategy; batch and learning rate scale with the replicas.
    strategy = create_strategy(config.strategy)
    replicas = int(strategy.num_replicas_in_sync)
    global_batch = config.batch_size * replicas
    with strategy.scope():
        model = build_count_model(config.alpha, config.image_size, config.weights, config.dropout, config.head_units)

    # Features of every image, computed once (or read from the cache); undecodable images are dropped here.
    stream = should_stream(len(dataset.samples), config.image_size) if config.stream is None else config.stream
    clock = time.perf_counter()
    features, images = _compute_features(model, dataset, config, staging, stream, on_step)
    timings["features_seconds"] = round(time.perf_counter() - clock, 2)
    if on_step is not None:
        on_step("features-done", 1, 1)

    # The seeded, stratified split, saved before training so later commands evaluate the same images.
    train_set, validation_set = split_samples(dataset.samples, config.validation_split, config.seed)
    write_split(staging / SPLIT_FILE, train_set, validation_set)
    row_of = {sample.path: index for index, sample in enumerate(dataset.samples)}
    train_rows = np.array([row_of[sample.path] for sample in train_set])
    validation_rows = np.array([row_of[sample.path] for sample in validation_set])
    counts = np.array([sample.count for sample in dataset.samples], dtype=np.float32)
    _log.info("training on %d images, validating on %d (%s input path)", len(train_set), len(validation_set), "tf.data" if stream else "in-memory")

    # Phase 1: the head on cached features.
    history: list[dict[str, Any]] = []
    phases: list[dict[str, Any]] = []
    clock = time.perf_counter()
    with strategy.scope():
        head = create_head_model(model)
        _compile(head, config.loss, config.learning_rate * replicas)
    callbacks = _callbacks(config, staging, model, phase=1)
    with contextlib.redirect_stdout(sys.stderr):
        fit = head.fit(
            features[train_rows],
            counts[train_rows],
            validation_data=(features[validation_rows], counts[validation_rows]),
            batch_size=global_batch,
            epochs=config.epochs,
            shuffle=True,
            callbacks=callbacks,
            verbose=config.verbose,
        )
    phase_one = _phase_record(1, fit.history, config.learning_rate * replicas, time.perf_counter() - clock, config.epochs)
    phases.append(phase_one)
    history += _history_rows(1, fit.history, 1, config.learning_rate * replicas)

    # Phase 2: fine-tune the last base layers over the images.
    fine_tuned = False
    if config.fine_tunes:
        clock = time.perf_counter()
        phase_one_weights = model.get_weights()
        with strategy.scope():
            unfrozen = _unfreeze_tail(model, config.fine_tune_layers)
            _compile(model, config.loss, config.fine_tune_learning_rate * replicas)
        train_data, validation_data = _image_datasets(dataset.samples, images, counts, train_rows, validation_rows, config, stream, global_batch)
        callbacks = _callbacks(config, staging, model, phase=2)
        with contextlib.redirect_stdout(sys.stderr):
            fit = model.fit(
                train_data,
                validation_data=validation_data,
                epochs=config.fine_tune_epochs,
                shuffle=False,  # the pipeline shuffles with the seed
                callbacks=callbacks,
                verbose=config.verbose,
            )
        record = _phase_record(2, fit.history, config.fine_tune_learning_rate * replicas, time.perf_counter() - clock, config.fine_tune_epochs)
        record["unfrozen_layers"] = unfrozen
        record["batch_norm"] = "frozen (inference mode, ImageNet statistics)"

        # Keep phase 2 only if its best validation loss beats phase 1's.
        fine_tuned = record["best_val_loss"] < phase_one["best_val_loss"]
        record["kept"] = fine_tuned
        if not fine_tuned:
            _log.warning(
                "fine-tuning did not lower the validation loss (%.4f vs %.4f after phase 1); keeping the phase 1 weights",
                record["best_val_loss"], phase_one["best_val_loss"],
            )
            model.set_weights(phase_one_weights)
        phases.append(record)
        history += _history_rows(2, fit.history, len(history) + 1, config.fine_tune_learning_rate * replicas)
    for layer in model.layers:
        layer.trainable = True

    # Metrics on counts clipped at 0, as CountModel.predict returns them.
    clock = time.perf_counter()
    if fine_tuned:
        predictions = _predict_images(model, dataset.samples, images, config, stream)
    else:
        predictions = np.asarray(head.predict(features, batch_size=256, verbose=0), np.float32).reshape(-1)
    predictions = np.maximum(predictions, 0.0)
    metrics = _metrics(predictions, counts, train_rows, validation_rows)
    timings["evaluate_seconds"] = round(time.perf_counter() - clock, 2)
    _log.info("validation RMSE %.3f, MAE %.3f", metrics["val_rmse"], metrics["val_mae"])

    # Files, then the atomic rename.
    model.save(staging / KERAS_FILE)
    from edgecount.training.history import plot_history, write_history

    write_history(staging / HISTORY_FILE, history)
    plot_history(staging / PLOT_FILE, history, f"MobileNetV2 {config.alpha} at {config.image_size}px: val RMSE {metrics['val_rmse']:.3f}")
    timings["total_seconds"] = round(time.perf_counter() - started, 2)
    document = _run_document(config, dataset, train_set, validation_set, metrics, phases, timings, stream, replicas, global_batch)
    write_json_atomically(staging / RUN_FILE, document)
    return document


def _compute_features(
    model: Any, dataset: LabelledDataset, config: TrainConfig, staging: Path, stream: bool, on_step: OnStep | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Return features aligned with ``dataset.samples`` and, on the in-memory path, the decoded images."""
    paths = [sample.path for sample in dataset.samples]
    key = feature_cache_key(paths, config.alpha, config.image_size, config.weights, config.seed)
    cache = FeatureCache(staging / FEATURES_DIR)
    cached = cache.load(key, paths)
    extractor = create_feature_extractor(model)
    images = None

    if cached is not None:
        features, failures = cached
        _log.info("reusing cached features %s/%s.npy", FEATURES_DIR, key)
        # Phase 2 in memory still needs the pixels.
        if config.fine_tunes and not stream:
            images, _ = load_images([path for path in paths if path not in failures], config.image_size, on_step)
    elif stream:
        features, ok = features_from_stream(extractor, paths, config.image_size, 64, on_step)
        failures = {path: "failed to decode; the warning logged for it gives the reason" for path, flag in zip(paths, ok) if not flag}
        cache.save(key, paths, features, failures)
    else:
        images, failures = load_images(paths, config.image_size, on_step)
        good = features_from_images(extractor, images, 64, on_step)
        features = np.zeros((len(paths), good.shape[1]), np.float32)
        features[[path not in failures for path in paths]] = good
        cache.save(key, paths, features, failures)

    keep = np.array([path not in failures for path in paths], dtype=bool)
    for path, reason in failures.items():
        dataset.reject(path, reason)
    return features[keep], images


def _compile(model: Any, loss: str, learning_rate: float) -> None:
    import keras

    loss_function = keras.losses.Huber(delta=1.0) if loss == "huber" else keras.losses.MeanSquaredError()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=loss_function,
        metrics=[keras.metrics.RootMeanSquaredError(name="rmse"), keras.metrics.MeanAbsoluteError(name="mae")],
    )


def _callbacks(config: TrainConfig, staging: Path, model: Any, phase: int) -> list[Any]:
    import keras

    from edgecount.training.history import CHECKPOINTS_DIR, EpochCheckpoint

    # TODO: add `edgecount train --resume RUN_DIR`. The checkpoints keep weights and the epoch number but
    # not the optimizer, early-stopping or shuffle state, so after Ctrl-C a run must start over (the
    # cached features in the partial folder are reused, the epochs are not).
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True),
        EpochCheckpoint(staging / CHECKPOINTS_DIR, phase, model),
    ]
    if config.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(staging / "logs" / f"phase{phase}")))
    return callbacks


def _unfreeze_tail(model: Any, layer_count: int) -> int:
    """Unfreeze the last ``layer_count`` base layers except batch normalisation; return how many train."""
    import keras

    base = find_base(model)
    base.trainable = True
    for index, layer in enumerate(base.layers):
        in_tail = index >= len(base.layers) - layer_count
        layer.trainable = in_tail and not isinstance(layer, keras.layers.BatchNormalization)
    return sum(1 for layer in base.layers if layer.trainable and layer.weights)


def _image_datasets(
    samples: list[Sample],
    images: np.ndarray | None,
    counts: np.ndarray,
    train_rows: np.ndarray,
    validation_rows: np.ndarray,
    config: TrainConfig,
    stream: bool,
    global_batch: int,
) -> tuple[Any, Any]:
    """Return the phase 2 train and validation ``tf.data`` pipelines, from memory or streamed."""
    if not stream:
        train_data = create_memory_dataset(images[train_rows], counts[train_rows], global_batch, config.seed, flip=True)
        validation_data = create_memory_dataset(images[validation_rows], counts[validation_rows], global_batch)
        return train_data, validation_data

    tf = import_tensorflow("streaming training images")

    def weighted_stream(rows: np.ndarray, seed: int | None, flip: bool) -> Any:
        paths = [samples[row].path for row in rows]
        data = create_image_stream(paths, counts[rows], config.image_size, global_batch, seed, flip)
        # An image that stopped decoding since the feature pass gets sample weight 0, so its zero pixels
        # neither train nor score. Filtering it out instead would make the epoch length unknown to Keras.
        return data.map(lambda images, batch_counts, ok: (images, batch_counts, tf.cast(ok, tf.float32)))

    return weighted_stream(train_rows, config.seed, True), weighted_stream(validation_rows, None, False)


def _predict_images(model: Any, samples: list[Sample], images: np.ndarray | None, config: TrainConfig, stream: bool) -> np.ndarray:
    if not stream:
        return np.concatenate(
            [np.asarray(model(images[start : start + 64].astype(np.float32), training=False)).reshape(-1) for start in range(0, len(images), 64)]
        )
    predictions = []
    for batch, _, _ in create_image_stream([sample.path for sample in samples], None, config.image_size, 64):
        predictions.append(np.asarray(model(batch, training=False)).reshape(-1))
    return np.concatenate(predictions)


def _metrics(predictions: np.ndarray, counts: np.ndarray, train_rows: np.ndarray, validation_rows: np.ndarray) -> dict[str, float]:
    errors = predictions - counts
    validation, train = errors[validation_rows], errors[train_rows]
    return {
        "val_rmse": round(float(np.sqrt(np.mean(validation**2))), 4),
        "val_mae": round(float(np.mean(np.abs(validation))), 4),
        "val_bias": round(float(np.mean(validation)), 4),
        "train_rmse": round(float(np.sqrt(np.mean(train**2))), 4),
        "train_mae": round(float(np.mean(np.abs(train))), 4),
        # The constant guess every model must beat: the mean training count.
        "val_rmse_of_mean": round(float(np.sqrt(np.mean((counts[validation_rows] - counts[train_rows].mean()) ** 2))), 4),
    }


def _phase_record(phase: int, history: dict[str, list[float]], learning_rate: float, seconds: float, max_epochs: int) -> dict[str, Any]:
    val_loss = history.get("val_loss") or [float("inf")]
    best = int(np.argmin(val_loss))
    return {
        "phase": phase,
        "epochs_run": len(history.get("loss", [])),
        "max_epochs": max_epochs,
        "best_epoch": best + 1,
        "best_val_loss": round(float(val_loss[best]), 6),
        "best_val_rmse": round(float((history.get("val_rmse") or [float("nan")] * (best + 1))[best]), 4),
        "learning_rate": learning_rate,
        "seconds": round(seconds, 2),
    }


def _history_rows(phase: int, history: dict[str, list[float]], first_epoch: int, learning_rate: float) -> list[dict[str, Any]]:
    from edgecount.training.history import history_rows

    return history_rows(phase, history, first_epoch, learning_rate)


def _run_document(config, dataset, train_set, validation_set, metrics, phases, timings, stream, replicas, global_batch) -> dict[str, Any]:
    import tensorflow as tf

    return {
        "edgecount_version": __version__,
        "model": {
            "alpha": config.alpha,
            "image_size": config.image_size,
            "weights": config.weights,
            "file": KERAS_FILE,
            "head_units": config.head_units,
            "dropout": config.dropout,
        },
        "preprocessing": {
            "function": "edgecount.runtime.preprocess",
            "color": "RGB",
            "range": [0, 255],
            "resize": f"stretch to {config.image_size}x{config.image_size}, cv2.INTER_AREA when shrinking, INTER_LINEAR when enlarging",
            "scaling": "inside the model: x / 127.5 - 1",
        },
        "data": dataset.summary(),
        "split": {
            "seed": config.seed,
            "validation_fraction": config.validation_split,
            "file": SPLIT_FILE,
            "train": len(train_set),
            "validation": len(validation_set),
            "stratified_by": "count",
        },
        "metrics": {**metrics, "note": "counts clipped at 0, as CountModel.predict returns them"},
        "training": {
            "phases": phases,
            "epochs": sum(phase["epochs_run"] for phase in phases),
            "loss": "huber (delta 1.0)" if config.loss == "huber" else "mse",
            "optimizer": "adam",
            "batch_size": config.batch_size,
            "global_batch_size": global_batch,
            "replicas": replicas,
            "strategy": config.strategy,
            "patience": config.patience,
            "input_path": "tf.data stream" if stream else "in-memory",
            "feature_cache": FEATURES_DIR,
            "batch_norm": "frozen in both phases (inference mode)",
            "augmentation": "random horizontal flip in phase 2",
            "deterministic_ops": True,
            **timings,
            "settings": config.as_dict(),
            "tensorflow_version": tf.__version__,
            "python_version": platform.python_version(),
        },
    }
