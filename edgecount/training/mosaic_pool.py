"""The mosaic pool of phase 2 on maps: mosaics drawn once from the training photos, passed once through the frozen front.

Each mosaic is made like the photos' own inputs: its 4 photos are decoded and resized to half the input
size by ``edgecount.runtime.preprocess``, tiled 2x2, and run through the frozen front of the base for
its maps. The maps are cached beside the photos' features, keyed by the 4 photos of every mosaic, so a
resumed run or a rerun with the same split reads them back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgecount.training.augment import resize_square
from edgecount.training.features import FeatureCache, feature_batch_size, feature_cache_key
from edgecount.training.images import OnStep, load_images
from edgecount.training.mosaic import MOSAIC_STREAM, MosaicPool, choose_tiles, mosaic_count, mosaic_size, tile_images

_log = logging.getLogger(__name__)


def draw_mosaic_tiles(train_rows: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Return the photos of ``fraction`` mosaics per training photo, drawn from ``train_rows`` with the run's seed."""
    return choose_tiles(np.random.default_rng([seed, MOSAIC_STREAM]), train_rows, mosaic_count(fraction, len(train_rows)))


def compute_mosaic_pool(
    model: Any,
    paths: list[Path],
    tiles: np.ndarray,
    counts: np.ndarray,
    config: Any,
    cache: FeatureCache,
    tail_start: int,
    on_step: OnStep | None = None,
) -> MosaicPool:
    """Return the pool of mosaics ``tiles`` with their maps at the input of base layer ``tail_start``, from the cache or computed.

    A mosaic with a photo that no longer decodes is left out.

    Args:
        model: the counting model, with the base frozen at its starting weights.
        paths: the image path of every dataset row.
        tiles: the dataset rows of each mosaic's 4 photos (``draw_mosaic_tiles``).
        counts: true counts, indexed by dataset row.
        config: the ``TrainConfig``.
        cache: the feature cache of the run.
        tail_start: index in the base of the first phase 2 tail layer.
        on_step: progress callback, called with the stage ``mosaics``.
    """
    from edgecount.training.model import find_base
    from edgecount.training.tail import create_front_extractor

    layer_name = find_base(model).layers[tail_start].name
    labels = [Path(" + ".join(str(paths[row]) for row in tile)) for tile in tiles]
    key = feature_cache_key(
        [paths[row] for row in tiles.ravel()], config.alpha, config.image_size, config.weights, config.seed, maps_at=layer_name, mosaics=True
    )
    cached = cache.load(key, labels)
    if cached is not None:
        _log.info("reusing %d cached mosaic maps %s", len(tiles), cache.folder / f"{key}.npy")
        maps, failures = cached
    else:
        maps, failed = _run_mosaics(create_front_extractor(model, tail_start), paths, tiles, labels, config.image_size, on_step)
        failures = {label: "a photo of the mosaic failed to decode" for label in failed}
        cache.save(key, labels, maps, failures)
    keep = np.array([label not in failures for label in labels], dtype=bool)
    if not keep.all():
        _log.warning("left out %d mosaics whose photos failed to decode", int((~keep).sum()))
    return MosaicPool(tiles[keep], maps[keep], counts, config.target)


def _run_mosaics(
    extractor: Any, paths: list[Path], tiles: np.ndarray, labels: list[Path], image_size: int, on_step: OnStep | None
) -> tuple[np.ndarray, set[Path]]:
    """Decode, tile and run every mosaic through ``extractor`` in batches, and return the outputs and the failed mosaics."""
    batch_size = feature_batch_size(image_size)
    rows: list[np.ndarray] = []
    failed: set[Path] = set()
    for start, pixels, broken in _mosaic_batches(paths, tiles, image_size, batch_size):
        rows.append(np.asarray(extractor(pixels, training=False), dtype=np.float32))
        failed.update(labels[start + index] for index in broken)
        if on_step is not None:
            on_step("mosaics", min(start + batch_size, len(tiles)), len(tiles))
    shape = tuple(int(size) for size in extractor.output.shape[1:])
    return (np.concatenate(rows) if rows else np.zeros((0, *shape), np.float32)), failed


def _mosaic_batches(paths: list[Path], tiles: np.ndarray, image_size: int, batch_size: int) -> Iterator[tuple[int, np.ndarray, list[int]]]:
    """Yield ``(first mosaic index, float32 pixels, indices in the batch whose photos failed)`` for each batch of mosaics.

    A mosaic is a square of the model's input size. With an odd size, the tiled halves are one pixel
    short, so the mosaic is resized to it.
    """
    half = mosaic_size(image_size)
    for start in range(0, len(tiles), batch_size):
        batch_tiles = tiles[start : start + batch_size]
        needed_rows = sorted({int(row) for row in batch_tiles.ravel()})
        decoded, failures = load_images([paths[row] for row in needed_rows], half)
        good = [row for row in needed_rows if paths[row] not in failures]
        by_row = dict(zip(good, decoded))
        pixels = np.zeros((len(batch_tiles), image_size, image_size, 3), np.float32)
        broken = []
        for index, tile in enumerate(batch_tiles):
            if any(int(row) not in by_row for row in tile):
                broken.append(index)
                continue
            tiled = tile_images([by_row[int(row)] for row in tile])
            pixels[index] = resize_square(tiled, image_size)
        yield start, pixels, broken
