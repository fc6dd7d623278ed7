"""Frozen-base features for phase 1: computed once per image, cached on disk, reused by reruns.

With the MobileNetV2 base frozen (batch norm in inference mode, no dropout inside the base), its pooled
output for an image never changes, so phase 1 trains the head on these vectors instead of running the
base every epoch. With augmentation on, the features of each image mirrored left to right are cached
too, at the cost of a second feature pass. Every epoch then takes one of the two versions of each
training image at random, which is the flip augmentation of phase 1.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgecount.training.images import OnStep, create_image_stream
from edgecount.training.model import TRANSFORMED_OUTPUT, find_base, model_target

_log = logging.getLogger(__name__)


class ExtraPool(Protocol):
    """Extra training inputs of phase 2 that are not dataset rows, such as mosaics or quadrant crops."""

    def select(self, train_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the inputs and training targets made of ``train_rows`` only."""
        ...

FEATURES_DIR = "features"


def feature_batch_size(image_size: int) -> int:
    """Return the images per batch of a feature pass: 64 at 224 pixels, fewer for larger inputs.

    The activations of a batch grow with the pixels, and the first MobileNetV2 blocks have the largest.
    With batches of 64 images at 448 pixels, a cross-validation process reached 12 GB and was killed
    for lack of memory, so the batch shrinks with the pixel count (16 at 448, 8 at 600).
    """
    return max(1, min(64, (64 * 224 * 224) // (image_size * image_size)))


def create_feature_extractor(model: Any) -> Any:
    """Build a Keras model from the counting model's input to the pooled base features (shared layers)."""
    import keras

    scaling = model.get_layer("mobilenetv2_scaling")
    base = find_base(model)
    inputs = keras.Input(shape=model.input.shape[1:], dtype="float32", name="image")
    return keras.Model(inputs, base(scaling(inputs), training=False), name="feature_extractor")


def create_head_model(model: Any) -> Any:
    """Build a Keras model from the pooled features to the head's unit, sharing the counting model's head layers.

    The head model stops before the inverse target layers (see ``build_count_model``), so it predicts
    the training target: the count, or its transform.
    """
    import keras

    base = find_base(model)
    inputs = keras.Input(shape=(base.output.shape[-1],), dtype="float32", name="features")
    outputs = inputs
    for layer in head_layers(model):
        outputs = layer(outputs)
    return keras.Model(inputs, outputs, name="head")


def head_layers(model: Any) -> list[Any]:
    """Return the layers between the base and the head's unit, which predicts the training target."""
    base = find_base(model)
    fit_output = model.get_layer("count" if model_target(model) == "count" else TRANSFORMED_OUTPUT)
    return model.layers[model.layers.index(base) + 1 : model.layers.index(fit_output) + 1]


def features_from_images(
    extractor: Any, images: np.ndarray, batch_size: int = 64, on_step: OnStep | None = None, mirrored: bool = False
) -> np.ndarray:
    """Run the frozen base over uint8 images in memory and return float32 features, one row per image.

    With ``mirrored``, each image is flipped left to right first.
    """
    rows = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].astype(np.float32)
        if mirrored:
            batch = batch[:, :, ::-1]
        rows.append(np.asarray(extractor(batch, training=False), dtype=np.float32))
        if on_step is not None:
            on_step("features", min(start + batch_size, len(images)), len(images))
    shape = tuple(int(size) for size in extractor.output.shape[1:])
    return np.concatenate(rows) if rows else np.zeros((0, *shape), np.float32)


def features_from_stream(
    extractor: Any, paths: list[Path], image_size: int, batch_size: int = 64, on_step: OnStep | None = None, mirrored: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Run the frozen base over images decoded by the ``tf.data`` stream (flipped left to right with ``mirrored``).

    Returns:
        ``(features, ok)``: float32 features in ``paths`` order (zeros for failed images) and a bool
        array that is False where the image failed to decode.
    """
    rows, flags, done = [], [], 0
    for images, _, ok in create_image_stream(paths, None, image_size, batch_size):
        if mirrored:
            images = images[:, :, ::-1]
        rows.append(np.asarray(extractor(images, training=False), dtype=np.float32))
        flags.append(ok.numpy())
        done += len(flags[-1])
        if on_step is not None:
            on_step("features", done, len(paths))
    shape = tuple(int(size) for size in extractor.output.shape[1:])
    if not rows:
        return np.zeros((0, *shape), np.float32), np.zeros(0, bool)
    features = np.concatenate(rows)
    ok = np.concatenate(flags)
    features[~ok] = 0.0
    return features, ok


def feature_cache_key(
    paths: list[Path],
    alpha: float,
    image_size: int,
    weights: str,
    seed: int,
    mirrored: bool = False,
    maps_at: str | None = None,
    mosaics: bool = False,
    quadrants: bool = False,
) -> str:
    """Return a hash that changes with the images (path, size, mtime), the preprocessing, the base and its weights.

    Random weights (``none``) depend on the seed, so the seed is part of the key only then. The features
    of mirrored images, the maps at the input of base layer ``maps_at`` (for phase 2 on maps), and those
    of mosaics (``mosaics``; then ``paths`` lists the 4 photos of each mosaic in turn) and those of the 4
    quadrants of each photo (``quadrants``) get keys of their own.
    """
    import keras

    hasher = hashlib.sha256()
    weights_id: Any = weights
    if weights not in ("imagenet", "none"):
        stat = os.stat(weights)
        weights_id = [str(Path(weights).resolve()), stat.st_size, stat.st_mtime_ns]
    from edgecount.runtime.preprocess import PREPROCESS_VERSION

    header = {
        "alpha": alpha,
        "image_size": image_size,
        "weights": weights_id,
        "keras": keras.__version__,
        "preprocess": PREPROCESS_VERSION,
    }
    if weights == "none":
        header["seed"] = seed
    if mirrored:
        header["mirrored"] = True
    if maps_at is not None:
        header["maps_at"] = maps_at
    if mosaics:
        header["mosaics"] = True
    if quadrants:
        header["quadrants"] = True
    hasher.update(json.dumps(header, sort_keys=True).encode())
    for path in paths:
        try:
            stat = os.stat(path)
            hasher.update(f"{Path(path).resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except OSError:
            hasher.update(f"{path}\0missing\n".encode())
    return hasher.hexdigest()[:24]


class FeatureCache:
    """Feature files ``features/<key>.npy`` (float32 rows) and ``features/<key>.json`` (paths, failures).

    Args:
        folder: the ``features`` folder of a run.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def load(self, key: str, paths: list[Path]) -> tuple[np.ndarray, dict[Path, str]] | None:
        """Return ``(features, failures)`` for exactly these paths, or None when the cache has no such entry."""
        array_file, index_file = self.folder / f"{key}.npy", self.folder / f"{key}.json"
        if not (array_file.is_file() and index_file.is_file()):
            return None
        try:
            index = json.loads(index_file.read_text())
            features = np.load(array_file)
        except (OSError, ValueError) as error:
            _log.warning("ignoring the unreadable feature cache %s: %s", array_file, error)
            return None
        if index.get("paths") != [str(path) for path in paths] or len(features) != len(paths):
            return None
        return features, {Path(path): reason for path, reason in index.get("failures", {}).items()}

    def save(self, key: str, paths: list[Path], features: np.ndarray, failures: dict[Path, str]) -> None:
        """Store features (one row per path, zeros for failures) atomically."""
        from edgecount.runs import write_json_atomically

        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.folder / f".{key}.npy.tmp"
        with open(temporary, "wb") as handle:
            np.save(handle, np.asarray(features, np.float32))
        os.replace(temporary, self.folder / f"{key}.npy")
        index = {"paths": [str(path) for path in paths], "failures": {str(path): reason for path, reason in failures.items()}}
        write_json_atomically(self.folder / f"{key}.json", index)


def choose_mirrored(features: np.ndarray, mirrored: np.ndarray | None, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Return the feature rows ``rows``, each taken from ``mirrored`` instead with probability one half.

    This is the flip augmentation of phase 1. Without mirrored features the rows are returned unchanged
    and ``rng`` is not used.
    """
    chosen = features[rows]
    if mirrored is None:
        return chosen
    flips = rng.random(len(rows)) < 0.5
    chosen[flips] = mirrored[rows[flips]]
    return chosen


def create_epoch_datasets(
    inputs: np.ndarray,
    mirrored: np.ndarray | None,
    targets: np.ndarray,
    train_rows: np.ndarray,
    validation_rows: np.ndarray,
    seed: int,
    phase: int,
    batch_size: int,
    weights: np.ndarray | None = None,
    pools: Sequence[ExtraPool] = (),
) -> tuple[Any, Any]:
    """Build the training data of an epoch (a function of the epoch) and the validation dataset from per-image arrays.

    Phase 1 passes the pooled features, phase 2 on maps the cached maps. Each epoch is shuffled, the
    plain or mirrored row of each image chosen, and the extra inputs shuffled in, from ``(seed, phase, epoch)``,
    so a resumed run gets the same batches.

    Args:
        inputs: one row per dataset row.
        mirrored: the rows of the mirrored images, or None without flips.
        targets: training targets, indexed by dataset row.
        train_rows: the rows that train.
        validation_rows: the rows that early stopping watches.
        seed: the run's seed.
        phase: 1 or 2, part of each epoch's seed.
        batch_size: rows per batch (global, over all replicas).
        weights: sample weights indexed by dataset row, or None (default) for none. Only the training
            batches carry them, so the validation loss stays the plain loss. Extra inputs weigh 1.
        pools: pools of extra inputs that join every epoch, such as the mosaics (``MosaicPool``) and the
            quadrant crops (``QuadrantPool``) of phase 2 on maps. Default none. Each pool gives only the
            inputs made of ``train_rows``.

    Returns:
        ``(epoch_data, validation)``: ``epoch_data(epoch)`` returns the keyword arguments of Keras ``fit``
        for that epoch (``{"x": dataset}``), and ``validation`` is a ``tf.data.Dataset``.
    """
    import tensorflow as tf

    # NOTE: tf.data datasets, not NumPy arrays, because Keras 3.15 fit under MultiWorkerMirroredStrategy
    # fails to convert the per-replica batches it makes from arrays.
    selected = [pool.select(train_rows) for pool in pools]
    extras = [np.concatenate([inputs for inputs, _ in selected]), np.concatenate([targets for _, targets in selected])] if selected else None

    def epoch_data(epoch: int) -> dict[str, Any]:
        rng = np.random.default_rng([seed, phase, epoch])
        order = train_rows[rng.permutation(len(train_rows))]
        columns = (choose_mirrored(inputs, mirrored, order, rng), targets[order])
        if weights is not None:
            columns += (weights[order],)
        if extras is not None and len(extras[1]):
            columns = _shuffle_in_extras(columns, extras, rng)
        return {"x": tf.data.Dataset.from_tensor_slices(columns).batch(batch_size)}

    validation = tf.data.Dataset.from_tensor_slices((inputs[validation_rows], targets[validation_rows])).batch(batch_size)
    return epoch_data, validation


def _shuffle_in_extras(columns: tuple[np.ndarray, ...], extras: list[np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Append the extra inputs and targets (and weight 1 when the photos carry weights) to the photos' columns, then shuffle all rows."""
    added = [extras[0].astype(np.float32, copy=False), extras[1].astype(np.float32, copy=False)]
    if len(columns) == 3:
        added.append(np.ones(len(extras[1]), np.float32))
    order = rng.permutation(len(columns[1]) + len(extras[1]))
    return tuple(np.concatenate([column, extra])[order] for column, extra in zip(columns, added))
