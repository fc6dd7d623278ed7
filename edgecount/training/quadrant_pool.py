"""Quadrant crops in phase 2 on maps: each training photo's quadrants, at the model's input size, with counts recounted from the boxes.

A quadrant of a photo (``edgecount.runtime.tiles``) resized to the input size shows its faces twice as
large, as if the photo had been taken closer. Its count is recounted from the face boxes: a face cut by
the middle lines counts by the fraction of its box inside the quadrant, as in the random crops of
``edgecount.training.augment``.

The maps of all 4 quadrants of every photo are computed once by the frozen front of the base and cached
like the photos' maps, keyed by the photos. A run draws ``--quadrants`` of them per training photo
once, from its seed, and they join every phase 2 epoch as the mosaics do. Cross-validation reuses the
same maps in every fold, and a model trained with quadrants can count by tiles at run time
(``--tta tiles``), which the maps of the held-out photos also score.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecount.runtime.tiles import QUADRANTS, quadrant_boxes
from edgecount.training.augment import recount_in_crop
from edgecount.training.features import FeatureCache, feature_batch_size, feature_cache_key
from edgecount.training.images import OnStep, load_quadrant_images

_log = logging.getLogger(__name__)

# Added to a run's seed to draw its quadrants, apart from the other draws of the seed.
QUADRANT_STREAM = 2**31 - 2
# Photos decoded per chunk of the quadrant pass: 64 photos are 256 inputs, 154 MB of pixels at 448.
CHUNK_PHOTOS = 64


def split_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Return how many faces of ``boxes`` fall in each quadrant of a ``width`` x ``height`` photo, as 4 floats that sum to the number of boxes.

    Boxes are clipped to the photo first, so a face partly outside it still counts 1. A box cut by the
    middle lines counts by the fraction of its visible area in each quadrant. A box without area (a
    point, a line, or a box wholly outside the photo) counts 1 in the quadrant of its clipped centre,
    where the middle lines belong to the bottom and right quadrants.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    clipped = np.clip(boxes, 0.0, np.array([width, height, width, height], np.float64))
    area = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    has_area = area > 0
    totals = np.zeros(QUADRANTS, np.float64)
    for quadrant, box in enumerate(quadrant_boxes(height, width)):
        totals[quadrant] = recount_in_crop(clipped[has_area], box)
    if (~has_area).any():
        centre_x = (clipped[~has_area, 0] + clipped[~has_area, 2]) / 2
        centre_y = (clipped[~has_area, 1] + clipped[~has_area, 3]) / 2
        index = 2 * (centre_y >= height // 2).astype(int) + (centre_x >= width // 2).astype(int)
        totals += np.bincount(index, minlength=QUADRANTS)
    return totals


def quadrant_targets(samples: list[Any], boxes: dict[Path, np.ndarray], sizes: dict[Path, tuple[int, int]]) -> np.ndarray:
    """Return the count in each quadrant of every photo, split from its face boxes by ``split_boxes``, as an ``(N, 4)`` float32 array.

    A photo with count 0 has 0 in every quadrant. A row is NaN where the count cannot be split: the photo
    has faces but no boxes, its size is unknown because it failed to decode, or it is under 2x2 pixels.

    Args:
        samples: the dataset samples (``path``, ``count``).
        boxes: face boxes in pixels of the original image, per path.
        sizes: ``(width, height)`` of each decoded image, per path.
    """
    targets = np.full((len(samples), QUADRANTS), np.nan, np.float32)
    for row, sample in enumerate(samples):
        if sample.count == 0:
            targets[row] = 0.0
        elif sample.path in boxes and sample.path in sizes:
            width, height = sizes[sample.path]
            if width >= 2 and height >= 2:
                targets[row] = split_boxes(boxes[sample.path], width, height)
    return targets


def unusable_reason(sample: Any, boxes: dict[Path, np.ndarray], sizes: dict[Path, tuple[int, int]], failures: dict[Path, str]) -> str:
    """Return why a photo's quadrants cannot train, for the warning that names it."""
    if sample.path in failures:
        return failures[sample.path]
    if sample.path not in boxes:
        return "it has faces but no boxes"
    if sample.path not in sizes:
        return "its size is unknown"
    return "it is under 2x2 pixels"


@dataclass
class QuadrantMaps:
    """The front's maps of the 4 quadrants of every photo, with the recounted count of each quadrant.

    Attributes:
        maps: ``(N, 4, ...)`` float32 maps at the input of the first phase 2 tail layer, in
            ``dataset.samples`` order.
        targets: ``(N, 4)`` counts from ``quadrant_targets``, NaN for photos that cannot train on quadrants.
        decoded: ``(N,)`` False for photos whose quadrants failed, whose maps are zeros.
        failures: why the quadrants of those photos failed, per path.
    """

    maps: np.ndarray
    targets: np.ndarray
    decoded: np.ndarray
    failures: dict[Path, str]

    def usable_rows(self, rows: np.ndarray) -> np.ndarray:
        """Return the rows of ``rows`` whose quadrants have recounted targets."""
        rows = np.asarray(rows)
        return rows[np.isfinite(self.targets[rows]).all(axis=1)]


@dataclass
class QuadrantPool:
    """The quadrant crops that join every phase 2 epoch: ``per_photo`` quadrants of each training photo, drawn once.

    Attributes:
        quadrant_maps: the maps and targets of every photo's quadrants.
        per_photo: quadrants per training photo, 1 to 4.
        seed: the run's seed, which draws the quadrants.
        target: the training target (see ``build_count_model``), applied to each quadrant's count.
    """

    quadrant_maps: QuadrantMaps
    per_photo: int
    seed: int
    target: str = "count"

    def select(self, train_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the inputs and training targets of the quadrants drawn from ``train_rows``."""
        from edgecount.training.model import transform_counts

        rows = np.sort(self.quadrant_maps.usable_rows(train_rows))
        rng = np.random.default_rng([self.seed, QUADRANT_STREAM])
        chosen = np.stack([rng.permutation(QUADRANTS)[: self.per_photo] for _ in rows]) if len(rows) else np.zeros((0, self.per_photo), int)
        photo_rows = np.repeat(rows, self.per_photo)
        quadrants = chosen.reshape(-1)
        inputs = self.quadrant_maps.maps[photo_rows, quadrants]
        _log.info("%d quadrant crops of %d training photos join every phase 2 epoch", len(quadrants), len(rows))
        return inputs, transform_counts(self.quadrant_maps.targets[photo_rows, quadrants], self.target)


def compute_quadrant_maps(
    model: Any,
    dataset: Any,
    sizes: dict[Path, tuple[int, int]],
    config: Any,
    cache: FeatureCache,
    tail_start: int,
    on_step: OnStep | None = None,
) -> QuadrantMaps:
    """Return the maps of the 4 quadrants of every photo of ``dataset.samples`` at the input of base layer ``tail_start``, from the cache or computed.

    Args:
        model: the counting model, with the base frozen at its starting weights.
        dataset: the ``LabelledDataset``, after the photos that failed to decode were dropped.
        sizes: ``(width, height)`` of each decoded photo, which the boxes are split by.
        config: the ``TrainConfig``.
        cache: the feature cache of the run.
        tail_start: index in the base of the first phase 2 tail layer.
        on_step: progress callback, called with the stage ``quadrants``.
    """
    from edgecount.training.model import find_base
    from edgecount.training.tail import create_front_extractor

    paths = [sample.path for sample in dataset.samples]
    layer_name = find_base(model).layers[tail_start].name
    key = feature_cache_key(paths, config.alpha, config.image_size, config.weights, config.seed, maps_at=layer_name, quadrants=True)
    cached = cache.load(key, paths)
    if cached is not None:
        _log.info("reusing %d cached quadrant maps %s", QUADRANTS * len(paths), cache.folder / f"{key}.npy")
        maps, failures = cached
    else:
        maps, failures = _run_quadrants(create_front_extractor(model, tail_start), paths, config.image_size, on_step)
        cache.save(key, paths, maps, failures)
    decoded = np.array([path not in failures for path in paths], dtype=bool)
    targets = quadrant_targets(dataset.samples, dataset.boxes, sizes)
    targets[~decoded] = np.nan
    return QuadrantMaps(maps, targets, decoded, failures)


def _run_quadrants(extractor: Any, paths: list[Path], image_size: int, on_step: OnStep | None) -> tuple[np.ndarray, dict[Path, str]]:
    """Decode the photos in chunks, run their quadrants through ``extractor``, and return the ``(N, 4, ...)`` maps and the failures."""
    shape = tuple(int(size) for size in extractor.output.shape[1:])
    maps = np.zeros((len(paths), QUADRANTS, *shape), np.float32)
    failures: dict[Path, str] = {}
    batch_size = feature_batch_size(image_size)
    for start in range(0, len(paths), CHUNK_PHOTOS):
        chunk = paths[start : start + CHUNK_PHOTOS]
        pixels, chunk_failures = load_quadrant_images(chunk, image_size)
        failures.update(chunk_failures)
        inputs = pixels.reshape(-1, image_size, image_size, 3)
        outputs = np.concatenate(
            [np.asarray(extractor(inputs[index : index + batch_size].astype(np.float32), training=False), np.float32) for index in range(0, len(inputs), batch_size)]
        )
        maps[start : start + len(chunk)] = outputs.reshape(len(chunk), QUADRANTS, *shape)
        if on_step is not None:
            on_step("quadrants", start + len(chunk), len(paths))
    for path in failures:
        maps[paths.index(path)] = 0.0
    if failures:
        _log.warning("left out the quadrants of %d photos that failed to decode or are under 2x2 pixels", len(failures))
    return maps, failures


def predict_quadrant_counts(tail_model: Any, quadrant_maps: QuadrantMaps, rows: np.ndarray, target: str) -> np.ndarray:
    """Return the raw count of each quadrant of the photos ``rows``, as an ``(len(rows), 4)`` array.

    ``tail_model`` maps the front's maps to the training target (``create_tail_fit_model``), so its
    outputs are turned back into counts with ``target``'s inverse. ``combine_tile_counts`` turns them
    into the tiled count of ``--tta tiles``.
    """
    from edgecount.training.model import inverse_target

    rows = np.asarray(rows)
    inputs = quadrant_maps.maps[rows].reshape(-1, *quadrant_maps.maps.shape[2:])
    outputs = [np.asarray(tail_model(inputs[start : start + 64], training=False)).reshape(-1) for start in range(0, len(inputs), 64)]
    counts = inverse_target(np.concatenate(outputs) if outputs else np.zeros(0, np.float32), target)
    return counts.reshape(len(rows), QUADRANTS)


def check_quadrant_boxes(dataset: Any, quadrants: int) -> None:
    """Reject ``--quadrants`` for a dataset without face boxes, whose quadrants cannot be recounted.

    Raises:
        DatasetError: if ``quadrants`` is above 0 and the dataset has no box file.
    """
    from edgecount.datasets import DatasetError

    if quadrants > 0 and not dataset.boxes:
        raise DatasetError(
            f"--quadrants {quadrants} needs face boxes to recount each quadrant, but {dataset.data_dir} has no box file "
            "(boxes.csv, or bbox_train.csv for the challenge layout); add one or drop --quadrants"
        )
