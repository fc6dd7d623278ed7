"""One training run from a dataset folder to a complete run folder.

Phases:

1. the head (optional hidden layer, dropout, one linear unit) trains on pooled MobileNetV2 features
   computed once per image (and per mirror image, with ``augment``) with the base frozen and cached
   under ``features/``;
2. optionally, the last ``fine_tune_layers`` base layers are unfrozen and trained at a lower learning
   rate. Batch-normalisation layers stay frozen, so they run in inference mode with their ImageNet
   statistics: re-estimating them from batches of 32 group photos would shift every feature the head
   was fitted to.

Phase 2 trains on cached maps of the frozen front of the base (``edgecount.training.tail``), flipped
at random with ``augment``. With ``fine_tune_on="images"`` or streamed images, it trains over augmented
images instead (``edgecount.training.augment``: flips, colour jitter, and crops recounted from face
boxes) unless ``augment`` is off.

Both phases stop early on the validation loss and restore the best epoch's weights. Phase 2 is kept
only if its best validation loss is below phase 1's. Otherwise the phase 1 weights are restored.

Every epoch ends with a checkpoint (``edgecount.training.loop``), and the order and augmentation of an
epoch come from the seed alone, so ``train(config, resume=True)`` continues an interrupted run to the
same weights as an uninterrupted run with the same seed on the same machine and TensorFlow version.
"""

from __future__ import annotations

import functools
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgecount.datasets import LabelledDataset, load_dataset, split_samples
from edgecount.runs import HISTORY_FILE, KERAS_FILE, RUN_FILE, SPLIT_FILE, Sample, read_split_paths, write_json_atomically, write_split
from edgecount.tensorflow_import import import_tensorflow
from edgecount.training.config import TrainConfig
from edgecount.training.distribute import create_strategy, multi_worker_fit_fixes, patch_multi_worker_build
from edgecount.training.features import (
    FEATURES_DIR,
    ExtraPool,
    FeatureCache,
    create_epoch_datasets,
    create_feature_extractor,
    create_head_model,
    feature_batch_size,
    feature_cache_key,
    features_from_images,
    features_from_stream,
)
from edgecount.runtime import ImageDecodeError, load_image, preprocess
from edgecount.runtime.tiles import combine_tile_counts
from edgecount.training.augment import AugmentSettings, normalise_boxes, resize_square
from edgecount.training.checkpoint import CHECKPOINTS_DIR, CheckpointStore
from edgecount.training.images import (
    OnStep,
    create_augmented_dataset,
    create_image_stream,
    create_memory_dataset,
    load_images,
    should_stream,
)
from edgecount.training.loop import EpochData, PhaseState, restore_training, run_phase
from edgecount.training.model import WeightsError, build_count_model, create_fit_model, find_base, inverse_target, transform_counts
from edgecount.training.mosaic import MosaicPool, mosaic_count
from edgecount.training.mosaic_pool import compute_mosaic_pool, draw_mosaic_tiles
from edgecount.training.quadrant_pool import (
    QuadrantMaps,
    QuadrantPool,
    check_quadrant_boxes,
    compute_quadrant_maps,
    predict_quadrant_counts,
    unusable_reason,
)
from edgecount.training.record import compute_metrics, error_metrics, phase_record, run_document
from edgecount.training.run_folder import TRAIN_CONFIG_FILE, ResumeError, check_output_dir, prepare_staging, publish_staging, staging_dir
from edgecount.training.tail import TailMaps, create_front_extractor, create_tail_fit_model, find_tail_start
from edgecount.training.weighting import count_weights

_log = logging.getLogger(__name__)

PLOT_FILE = "loss.png"


def train(config: TrainConfig, on_step: OnStep | None = None, resume: bool = False) -> dict[str, Any]:
    """Train a counting model and write its run folder.

    Args:
        config: the run settings.
        on_step: progress callback ``on_step(stage, done, total)`` for the ``decode`` and ``features``
            passes (and ``mosaics``). It gets ``("features-done", 1, 1)`` once, before training starts, then
            ``("phase1", epochs_done, max_epochs)`` (and ``"phase2"``) after each epoch's checkpoint.
        resume: continue the interrupted run in the staging folder of ``config.out_dir`` from its last
            checkpoint instead of starting over. Default False. ``load_resume_config`` reads the
            matching settings.

    Returns:
        The ``run.json`` document that was written.

    Raises:
        ValueError: for an invalid setting.
        RunExistsError: if the run folder exists and ``config.force`` is False.
        DatasetNotFoundError, DatasetError: for a missing or unusable dataset (or any bad row when strict).
        WeightsError: if the ImageNet weights cannot be loaded.
        CheckpointError: if a resumed run's checkpoint is unreadable or belongs to another model.
    """
    config.validate()
    if not resume:
        check_output_dir(config.out_dir, config.force)
    started = time.perf_counter()

    # Dataset and determinism.
    dataset = load_dataset(config.data_dir, strict=config.strict)
    check_quadrant_boxes(dataset, config.quadrants)
    tf = import_tensorflow("edgecount train")
    import keras

    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    if resume:
        staging = staging_dir(config.out_dir)
    else:
        staging = prepare_staging(config.out_dir)
        write_json_atomically(staging / TRAIN_CONFIG_FILE, config.as_dict())
    try:
        document = _train_in_staging(config, dataset, staging, on_step, started, resume)
    except WeightsError:
        # Nothing trained yet, and --resume keeps the weights setting, so a staged run could not continue.
        if not resume:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    except BaseException:
        # Ctrl-C lands here too. The checkpoint of the last finished epoch and the cached features stay.
        _log.warning(
            "training stopped; the partial run stays in %s; continue it with: edgecount train --resume %s",
            staging, config.out_dir,
        )
        raise
    publish_staging(staging, config.out_dir)
    return document


def _train_in_staging(
    config: TrainConfig, dataset: LabelledDataset, staging: Path, on_step: OnStep | None, started: float, resume: bool
) -> dict[str, Any]:
    """Run both phases and write every file of the run into the staging folder; return ``run.json``."""
    # Model under the distribution strategy; batch and learning rate scale with the replicas.
    strategy = create_strategy(config.strategy)
    with multi_worker_fit_fixes(strategy):
        return _train_with_strategy(config, dataset, staging, on_step, started, resume, strategy)


def _train_with_strategy(
    config: TrainConfig, dataset: LabelledDataset, staging: Path, on_step: OnStep | None, started: float, resume: bool, strategy: Any
) -> dict[str, Any]:
    timings: dict[str, float] = {}
    replicas = int(strategy.num_replicas_in_sync)
    global_batch = config.batch_size * replicas
    with strategy.scope():
        model = build_count_model(config.alpha, config.image_size, config.weights, config.dropout, config.head_units, config.target)

    # The last checkpoint of an interrupted run.
    store = CheckpointStore(staging / CHECKPOINTS_DIR)
    saved = store.load_state() if resume else None
    arrays = store.load_arrays(saved) if saved else {}
    saved_phase = saved["phase"] if saved else 0
    if resume:
        where = f"after epoch {saved[f'phase{saved_phase}']['epochs_done']} of phase {saved_phase}" if saved else "at the start (no epoch had finished)"
        _log.info("resuming %s %s", config.out_dir, where)

    # Features of every image, computed once (or read from the cache); undecodable images are dropped here.
    stream = should_stream(len(dataset.samples), config.image_size) if config.stream is None else config.stream
    clock = time.perf_counter()
    features, mirrored, images, sizes = _compute_features(model, dataset, config, staging, stream, on_step)
    tail_maps = _compute_maps(model, dataset, images, config, staging, on_step) if fine_tunes_on_maps(config, stream) else None
    timings["features_seconds"] = round(time.perf_counter() - clock, 2)

    # The seeded, stratified split, saved before training so later commands evaluate the same images.
    # A resumed run keeps its saved split, so no validation image moves into training (or a mosaic).
    split_file = staging / SPLIT_FILE
    if resume and split_file.is_file():
        train_set, validation_set = _saved_split(split_file, dataset.samples)
    else:
        train_set, validation_set = split_samples(dataset.samples, config.validation_split, config.seed)
    write_split(split_file, train_set, validation_set)
    row_of = {sample.path: index for index, sample in enumerate(dataset.samples)}
    train_rows = np.array([row_of[sample.path] for sample in train_set])
    validation_rows = np.array([row_of[sample.path] for sample in validation_set])
    counts = np.array([sample.count for sample in dataset.samples], dtype=np.float32)
    # Both phases fit the training target; the model's last layers map it back to the count.
    targets = transform_counts(counts, config.target)
    _log.info("training on %d images, validating on %d (%s input path)", len(train_set), len(validation_set), "tf.data" if stream else "in-memory")
    clock = time.perf_counter()
    mosaics = compute_run_mosaics(model, dataset, config, staging, train_rows, counts, stream, on_step)
    timings["mosaic_seconds"] = round(time.perf_counter() - clock, 2)
    clock = time.perf_counter()
    quadrant_maps = compute_run_quadrants(model, dataset, config, staging, sizes, stream, on_step)
    timings["quadrant_seconds"] = round(time.perf_counter() - clock, 2)
    pools = phase_two_pools(mosaics, quadrant_maps, config)
    if on_step is not None:
        on_step("features-done", 1, 1)

    # Phase 1: the head on cached features, reshuffled and flipped from (seed, phase, epoch) every epoch.
    history: list[dict[str, Any]] = []
    phases: list[dict[str, Any]] = []
    state_one = PhaseState.from_dict(saved["phase1"]) if saved else PhaseState(1)
    with strategy.scope():
        head = create_head_model(model)
        _compile(head, config.loss, config.learning_rate * replicas)
        if config.strategy == "multi-worker":
            patch_multi_worker_build(head, strategy)
        best = restore_training(model, head, arrays) if saved_phase == 1 else None
    weights = count_weights(counts, train_rows, config.count_weighting)
    phase_one_epoch, validation_features = create_epoch_datasets(
        features, mirrored, targets, train_rows, validation_rows, config.seed, 1, global_batch, weights
    )
    if not state_one.finished:
        run_phase(
            head, model, state_one, phase_one_epoch, validation_features,
            config.epochs, config.patience, store, {}, {}, best, _callbacks(config, staging, 1), config.verbose, on_step,
        )
    phase_one = phase_record(1, state_one.history, config.learning_rate * replicas, state_one.seconds, config.epochs)
    phases.append(phase_one)
    history += _history_rows(1, state_one.history, 1, config.learning_rate * replicas)

    # Phase 2: fine-tune the last base layers over the (augmented) images.
    fine_tuned = False
    if config.fine_tunes:
        phase_one_weights = arrays["phase1"] if saved_phase == 2 else model.get_weights()
        state_two = PhaseState.from_dict(saved["phase2"]) if saved_phase == 2 else PhaseState(2)
        with strategy.scope():
            unfrozen = _unfreeze_tail(model, config.fine_tune_layers)
            fit_model = create_fit_model(model) if tail_maps is None else create_tail_fit_model(model, tail_maps.start)
            _compile(fit_model, config.loss, config.fine_tune_learning_rate * replicas)
            if config.strategy == "multi-worker":
                patch_multi_worker_build(fit_model, strategy)
            best = restore_training(model, fit_model, arrays) if saved_phase == 2 else None
        phase_two_epoch, validation_data = _phase_two_data(
            tail_maps, dataset, images, sizes, counts, train_rows, validation_rows, config, stream, global_batch, weights, pools
        )
        run_phase(
            fit_model, model, state_two, phase_two_epoch, validation_data, config.fine_tune_epochs, config.patience, store,
            {"phase1": state_one.as_dict()}, {"phase1": phase_one_weights}, best, _callbacks(config, staging, 2), config.verbose, on_step,
        )
        record = phase_record(2, state_two.history, config.fine_tune_learning_rate * replicas, state_two.seconds, config.fine_tune_epochs)
        record["unfrozen_layers"] = unfrozen
        record["input"] = "images" if tail_maps is None else f"cached maps at the input of {tail_maps.layer_name}"
        if tail_maps is None:
            record["mosaics_per_epoch"] = mosaic_count(config.mosaic, len(train_rows))
        else:
            record["mosaics_per_epoch"] = 0 if mosaics is None else len(mosaics.tiles)
            record["quadrants_per_epoch"] = 0 if quadrant_maps is None else len(quadrant_maps.usable_rows(train_rows)) * config.quadrants
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
        history += _history_rows(2, state_two.history, len(history) + 1, config.fine_tune_learning_rate * replicas)
    for layer in model.layers:
        layer.trainable = True

    # Metrics on counts clipped at 0, as CountModel.predict returns them.
    clock = time.perf_counter()
    if fine_tuned:
        predictions = _predict_images(model, dataset.samples, images, config, stream)
    else:
        predictions = inverse_target(np.asarray(head.predict(features, batch_size=256, verbose=0), np.float32).reshape(-1), config.target)
    predictions = np.maximum(predictions, 0.0)
    metrics = compute_metrics(predictions, counts, train_rows, validation_rows)
    _log.info("validation RMSE %.3f, MAE %.3f", metrics["val_rmse"], metrics["val_mae"])
    if quadrant_maps is not None:
        if not fine_tuned:
            _log.warning(
                "phase 2 was rolled back, so the model did not learn from the quadrant crops. The tiles score below "
                "is that of the phase 1 model, and 'edgecount convert' records the model as trained without quadrants"
            )
        metrics.update(tiles_metrics(model, tail_maps, quadrant_maps, predictions, counts, validation_rows, config.target))
        _log.info("validation RMSE %.3f, MAE %.3f when counting by tiles (--tta tiles)", metrics["val_rmse_tiles"], metrics["val_mae_tiles"])
    timings["evaluate_seconds"] = round(time.perf_counter() - clock, 2)

    # Files, then the atomic rename.
    model.save(staging / KERAS_FILE)
    from edgecount.training.history import plot_history, write_history

    write_history(staging / HISTORY_FILE, history)
    plot_history(staging / PLOT_FILE, history, f"MobileNetV2 {config.alpha} at {config.image_size}px: val RMSE {metrics['val_rmse']:.3f}")
    timings["total_seconds"] = round(time.perf_counter() - started, 2)
    document = run_document(config, dataset, train_set, validation_set, metrics, phases, timings, stream, replicas, global_batch)
    write_json_atomically(staging / RUN_FILE, document)
    return document


def _saved_split(split_file: Path, samples: list[Sample]) -> tuple[list[Sample], list[Sample]]:
    """Return the train and validation samples of an interrupted run's ``split.csv``, without images that no longer load.

    Raises:
        ResumeError: when one side of the split has no image left.
    """
    subsets = read_split_paths(split_file)
    # Sorted by path, as split_samples returns them, so the resumed epochs draw the same rows.
    ordered = sorted(samples, key=lambda sample: str(sample.path))
    train = [sample for sample in ordered if Path(sample.path).resolve() in subsets["train"]]
    validation = [sample for sample in ordered if Path(sample.path).resolve() in subsets["validation"]]
    lost = sum(len(paths) for paths in subsets.values()) - len(train) - len(validation)
    if lost:
        _log.warning("%d images of the saved split no longer load; the resumed run continues without them", lost)
    unassigned = len(samples) - len(train) - len(validation)
    if unassigned:
        _log.warning("%d images of the dataset are not in the saved split (added since the run started); the resumed run leaves them out", unassigned)
    if not train or not validation:
        raise ResumeError(
            f"the saved split {split_file} has no {'training' if not train else 'validation'} image left that loads; "
            "start a new run with --force instead of --resume"
        )
    return train, validation


def _compute_features(
    model: Any, dataset: LabelledDataset, config: TrainConfig, staging: Path, stream: bool, on_step: OnStep | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, dict[Path, tuple[int, int]]]:
    """Return features aligned with ``dataset.samples``, their mirrored twins and, in memory, the decoded images.

    The second value contains the features of every image flipped left to right when ``config.augment``
    is on, else None. The fourth maps each decoded image to its ``(width, height)`` before resizing
    (in-memory path only), which face boxes in pixels are normalised by for recounted crops.
    """
    paths = [sample.path for sample in dataset.samples]
    cache = FeatureCache(config.features_dir or staging / FEATURES_DIR)
    key = feature_cache_key(paths, config.alpha, config.image_size, config.weights, config.seed)
    mirrored_key = feature_cache_key(paths, config.alpha, config.image_size, config.weights, config.seed, mirrored=True)
    cached = cache.load(key, paths)
    cached_mirrored = cache.load(mirrored_key, paths) if config.augment else None
    needs_mirrored_pass = config.augment and cached_mirrored is None
    extractor = create_feature_extractor(model)
    batch = feature_batch_size(config.image_size)
    images = None
    sizes: dict[Path, tuple[int, int]] = {}

    if cached is not None:
        features, failures = cached
        _log.info("reusing cached features %s", cache.folder / f"{key}.npy")
        # Phase 2 and the mirrored pass in memory still need the pixels.
        if not stream and (config.fine_tunes or needs_mirrored_pass):
            images, _ = load_images([path for path in paths if path not in failures], config.image_size, on_step, sizes=sizes)
    elif stream:
        features, ok = features_from_stream(extractor, paths, config.image_size, batch, on_step)
        failures = {path: "failed to decode; the warning logged for it gives the reason" for path, flag in zip(paths, ok) if not flag}
        cache.save(key, paths, features, failures)
    else:
        images, failures = load_images(paths, config.image_size, on_step, sizes=sizes)
        features = _spread_rows(features_from_images(extractor, images, batch, on_step), paths, failures)
        cache.save(key, paths, features, failures)

    keep = np.array([path not in failures for path in paths], dtype=bool)
    mirrored = None
    if cached_mirrored is not None:
        _log.info("reusing cached mirrored features %s", cache.folder / f"{mirrored_key}.npy")
        mirrored = cached_mirrored[0]
    elif needs_mirrored_pass:
        mirrored_step = None if on_step is None else functools.partial(_rename_stage, on_step, "mirrored-features")
        if stream:
            mirrored, _ = features_from_stream(extractor, paths, config.image_size, batch, mirrored_step, mirrored=True)
            mirrored[~keep] = 0.0
        else:
            mirrored = _spread_rows(features_from_images(extractor, images, batch, mirrored_step, mirrored=True), paths, failures)
        cache.save(mirrored_key, paths, mirrored, failures)

    for path, reason in failures.items():
        dataset.reject(path, reason)
    return features[keep], None if mirrored is None else mirrored[keep], images, sizes


def compute_run_mosaics(
    model: Any, dataset: LabelledDataset, config: TrainConfig, staging: Path, train_rows: np.ndarray, counts: np.ndarray, stream: bool,
    on_step: OnStep | None = None, log_prefix: str = "",
) -> MosaicPool | None:
    """Return the mosaic pool of phase 2 on maps, drawn from ``train_rows``.

    None without mosaics, without phase 2, and in phase 2 over images, which tiles fresh mosaics in
    every epoch instead. ``log_prefix`` starts every log line, for example ``"fold 2/5: "``.
    """
    if config.mosaic <= 0:
        return None
    if not config.fine_tunes:
        _log.warning(log_prefix + "--mosaic %g has no effect without phase 2 (--fine-tune-epochs and --fine-tune-layers above 0)", config.mosaic)
        return None
    if config.fine_tune_on != "maps" or stream:
        return None
    tiles = draw_mosaic_tiles(train_rows, config.mosaic, config.seed)
    if len(tiles) == 0:
        _log.warning(log_prefix + "--mosaic %g makes no mosaic from %d training images; phase 2 trains without mosaics", config.mosaic, len(train_rows))
        return None
    tail_start = find_tail_start(find_base(model), config.fine_tune_layers)
    cache = FeatureCache(config.features_dir or staging / FEATURES_DIR)
    paths = [sample.path for sample in dataset.samples]
    pool = compute_mosaic_pool(model, paths, tiles, counts, config, cache, tail_start, on_step)
    _log.info(log_prefix + "%d mosaics of 4 training photos join every phase 2 epoch", len(pool.tiles))
    return pool


def compute_run_quadrants(
    model: Any, dataset: LabelledDataset, config: TrainConfig, staging: Path, sizes: dict[Path, tuple[int, int]], stream: bool,
    on_step: OnStep | None = None, log_prefix: str = "",
) -> QuadrantMaps | None:
    """Return the quadrant maps of every photo for phase 2 on maps.

    None without ``--quadrants``, without phase 2, and in phase 2 over images. ``log_prefix`` starts every
    log line, for example ``"fold 2/5: "``.
    """
    if config.quadrants <= 0:
        return None
    if not config.fine_tunes:
        _log.warning(log_prefix + "--quadrants %d has no effect without phase 2 (--fine-tune-epochs and --fine-tune-layers above 0)", config.quadrants)
        return None
    if config.fine_tune_on != "maps" or stream:
        # NOTE: phase 2 over images crops no quadrants. Its random crops of 60 to 100% of each side,
        # recounted from the boxes, are the nearest it has.
        _log.warning(log_prefix + "--quadrants %d trains only in phase 2 on cached maps, but this run's phase 2 runs over images, so it trains without quadrant crops", config.quadrants)
        return None
    tail_start = find_tail_start(find_base(model), config.fine_tune_layers)
    cache = FeatureCache(config.features_dir or staging / FEATURES_DIR)
    quadrant_maps = compute_quadrant_maps(model, dataset, sizes, config, cache, tail_start, on_step)
    unusable = [row for row in range(len(dataset.samples)) if not np.isfinite(quadrant_maps.targets[row]).all()]
    if unusable:
        named = "; ".join(
            f"{dataset.samples[row].path.name}: {unusable_reason(dataset.samples[row], dataset.boxes, sizes, quadrant_maps.failures)}"
            for row in unusable[:5]
        )
        more = f"; and {len(unusable) - 5} more" if len(unusable) > 5 else ""
        _log.warning(log_prefix + "%d of %d photos train without quadrant crops (%s%s)", len(unusable), len(dataset.samples), named, more)
    return quadrant_maps


def phase_two_pools(mosaics: MosaicPool | None, quadrant_maps: QuadrantMaps | None, config: TrainConfig) -> list[ExtraPool]:
    """Return the pools of extra inputs of phase 2 on maps: the mosaics and the quadrant crops, where present."""
    pools: list[ExtraPool] = []
    if mosaics is not None:
        pools.append(mosaics)
    if quadrant_maps is not None:
        pools.append(QuadrantPool(quadrant_maps, config.quadrants, config.seed, config.target))
    return pools


def count_by_tiles(
    model: Any, tail_maps: TailMaps, quadrant_maps: QuadrantMaps, whole: np.ndarray, rows: np.ndarray, target: str
) -> np.ndarray:
    """Return the counts of the photos ``rows`` by tiles, as ``--tta tiles`` counts them: the mean of the whole count and the quadrant sum.

    ``whole`` are the whole-photo counts of ``rows``. A photo whose quadrants failed to decode keeps its
    whole count.
    """
    rows = np.asarray(rows)
    tail_model = create_tail_fit_model(model, tail_maps.start)
    tiled = np.asarray(combine_tile_counts(whole, predict_quadrant_counts(tail_model, quadrant_maps, rows, target)), np.float64)
    return np.where(quadrant_maps.decoded[rows], tiled, whole)


def tiles_metrics(
    model: Any, tail_maps: TailMaps, quadrant_maps: QuadrantMaps, predictions: np.ndarray, counts: np.ndarray, rows: np.ndarray, target: str
) -> dict[str, float]:
    """Return the RMSE, MAE and bias of the photos ``rows`` counted by tiles (``count_by_tiles``).

    ``predictions`` are the whole-photo counts of every dataset row, clipped at 0.
    """
    tiled = error_metrics(count_by_tiles(model, tail_maps, quadrant_maps, predictions[rows], rows, target), counts[rows])
    return {"val_rmse_tiles": tiled["rmse"], "val_mae_tiles": tiled["mae"], "val_bias_tiles": tiled["bias"]}


def fine_tunes_on_maps(config: TrainConfig, stream: bool) -> bool:
    """Return whether phase 2 trains on cached maps: requested, and the images are kept in memory."""
    if not config.fine_tunes or config.fine_tune_on != "maps":
        return False
    if stream:
        # The maps of a streamed dataset would not fit in memory either (about 20 times the
        # pooled features at 448 pixels).
        _log.warning("the images are streamed, so phase 2 trains over images instead of cached maps (--fine-tune-on maps); each epoch runs the whole base")
        return False
    return True


def _compute_maps(
    model: Any, dataset: LabelledDataset, images: np.ndarray, config: TrainConfig, staging: Path, on_step: OnStep | None
) -> TailMaps:
    """Return the cached maps at the input of the first tail layer of phase 2, of every image and of its mirror image.

    ``images`` are the decoded images of ``dataset.samples``, after ``_compute_features`` dropped the
    undecodable ones. The mirrored maps are computed only with ``config.augment``.
    """
    paths = [sample.path for sample in dataset.samples]
    cache = FeatureCache(config.features_dir or staging / FEATURES_DIR)
    start = find_tail_start(find_base(model), config.fine_tune_layers)
    layer_name = find_base(model).layers[start].name
    extractor = create_front_extractor(model, start)
    computed = []
    for mirrored in (False, True) if config.augment else (False,):
        key = feature_cache_key(paths, config.alpha, config.image_size, config.weights, config.seed, mirrored, layer_name)
        cached = cache.load(key, paths)
        if cached is not None:
            _log.info("reusing cached %smaps %s", "mirrored " if mirrored else "", cache.folder / f"{key}.npy")
            computed.append(cached[0])
            continue
        stage = "mirrored-maps" if mirrored else "maps"
        step = None if on_step is None else functools.partial(_rename_stage, on_step, stage)
        maps = features_from_images(extractor, images, feature_batch_size(config.image_size), step, mirrored=mirrored)
        cache.save(key, paths, maps, {})
        computed.append(maps)
    return TailMaps(start, layer_name, computed[0], computed[1] if config.augment else None)


def _rename_stage(on_step: OnStep, stage: str, _: str, done: int, total: int) -> None:
    on_step(stage, done, total)


def _spread_rows(good: np.ndarray, paths: list[Path], failures: dict[Path, str]) -> np.ndarray:
    """Place the feature rows of the decoded images at their paths' positions, with zero rows for failures."""
    rows = np.zeros((len(paths), *good.shape[1:]), np.float32)
    rows[[path not in failures for path in paths]] = good
    return rows


def _compile(model: Any, loss: str, learning_rate: float) -> None:
    import keras

    loss_function = keras.losses.Huber(delta=1.0) if loss == "huber" else keras.losses.MeanSquaredError()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=loss_function,
        metrics=[keras.metrics.RootMeanSquaredError(name="rmse"), keras.metrics.MeanAbsoluteError(name="mae")],
    )


def _callbacks(config: TrainConfig, staging: Path, phase: int) -> list[Any]:
    import keras

    if not config.tensorboard:
        return []
    return [keras.callbacks.TensorBoard(log_dir=str(staging / "logs" / f"phase{phase}"))]


def _unfreeze_tail(model: Any, layer_count: int) -> int:
    """Unfreeze the last ``layer_count`` base layers except batch normalisation; return how many train."""
    import keras

    base = find_base(model)
    base.trainable = True
    for index, layer in enumerate(base.layers):
        in_tail = index >= len(base.layers) - layer_count
        layer.trainable = in_tail and not isinstance(layer, keras.layers.BatchNormalization)
    return sum(1 for layer in base.layers if layer.trainable and layer.weights)


def _phase_two_data(
    tail_maps: TailMaps | None,
    dataset: LabelledDataset,
    images: np.ndarray | None,
    sizes: dict[Path, tuple[int, int]],
    counts: np.ndarray,
    train_rows: np.ndarray,
    validation_rows: np.ndarray,
    config: TrainConfig,
    stream: bool,
    global_batch: int,
    weights: np.ndarray | None = None,
    pools: Sequence[ExtraPool] = (),
) -> tuple[EpochData, Any]:
    """Return the phase 2 training data of an epoch and the validation data: on the cached maps when given, else over images.

    ``weights`` are the sample weights of ``count_weights`` (None for none), indexed by dataset row.
    ``pools`` are the extra inputs of phase 2 on maps (``phase_two_pools``); over images, fresh mosaics
    are tiled from the augmented photos of every epoch when ``config.mosaic`` is above 0.
    """
    if tail_maps is None:
        return _image_datasets(dataset, images, sizes, counts, train_rows, validation_rows, config, stream, global_batch, weights)
    targets = transform_counts(counts, config.target)
    return create_epoch_datasets(
        tail_maps.maps, tail_maps.mirrored, targets, train_rows, validation_rows, config.seed, 2, global_batch, weights, pools
    )


def _image_datasets(
    dataset: LabelledDataset,
    images: np.ndarray | None,
    sizes: dict[Path, tuple[int, int]],
    counts: np.ndarray,
    train_rows: np.ndarray,
    validation_rows: np.ndarray,
    config: TrainConfig,
    stream: bool,
    global_batch: int,
    weights: np.ndarray | None = None,
) -> tuple[EpochData, Any]:
    """Return the phase 2 training data of an epoch (a function of the epoch) and the validation pipeline.

    Both yield the training target of ``config.target``; ``counts`` are the true counts.
    """
    samples, size = dataset.samples, config.image_size
    targets = transform_counts(counts, config.target)
    settings = AugmentSettings() if config.augment else None

    # Each source returns (image, normalised boxes or None, ok) for a row, in the form its resize takes.
    if not stream:
        normalised = {
            row: normalise_boxes(dataset.boxes[sample.path], *sizes[sample.path])
            for row, sample in enumerate(samples) if sample.path in dataset.boxes and sample.path in sizes
        }

        def load(row: int) -> tuple[np.ndarray, np.ndarray | None, bool]:
            return images[row], normalised.get(row), True

        def resize(image: np.ndarray) -> np.ndarray:
            return resize_square(image, size)

        validation_data = create_memory_dataset(images[validation_rows], targets[validation_rows], global_batch)
    else:
        tf = import_tensorflow("streaming training images")

        def load(row: int) -> tuple[np.ndarray | None, np.ndarray | None, bool]:
            try:
                frame = load_image(samples[row].path)
            except ImageDecodeError as error:
                # An image that stopped decoding since the feature pass gets sample weight 0.
                _log.warning("%s", error)
                return None, None, False
            boxes = dataset.boxes.get(samples[row].path)
            return frame, None if boxes is None else normalise_boxes(boxes, frame.shape[1], frame.shape[0]), True

        def resize(frame: np.ndarray) -> np.ndarray:
            return preprocess(frame, (size, size))

        paths = [samples[row].path for row in validation_rows]
        validation_data = create_image_stream(paths, targets[validation_rows], size, global_batch).map(
            lambda batch, batch_counts, ok: (batch, batch_counts, tf.cast(ok, tf.float32))
        )

    def epoch_data(epoch: int) -> dict[str, Any]:
        entropy = [config.seed, 2, epoch]
        return {
            "x": create_augmented_dataset(
                load, train_rows, counts, size, global_batch, entropy, settings, resize, config.target, weights, config.mosaic
            )
        }

    return epoch_data, validation_data


def _predict_images(model: Any, samples: list[Sample], images: np.ndarray | None, config: TrainConfig, stream: bool) -> np.ndarray:
    size = feature_batch_size(config.image_size)
    if not stream:
        return np.concatenate(
            [np.asarray(model(images[start : start + size].astype(np.float32), training=False)).reshape(-1) for start in range(0, len(images), size)]
        )
    predictions = []
    for batch, _, _ in create_image_stream([sample.path for sample in samples], None, config.image_size, size):
        predictions.append(np.asarray(model(batch, training=False)).reshape(-1))
    return np.concatenate(predictions)


def _history_rows(phase: int, history: dict[str, list[float]], first_epoch: int, learning_rate: float) -> list[dict[str, Any]]:
    from edgecount.training.history import history_rows

    return history_rows(phase, history, first_epoch, learning_rate)
