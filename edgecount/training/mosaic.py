"""Mosaic augmentation: four training photos at half size, tiled 2x2, whose count is the sum of theirs.

Crowded photos are rare in the challenge data (21 of 2,800 have 15 or more faces), so a model fitted to
it undercounts crowds. A mosaic of four training photos has the sum of their counts, exactly, without
recounting anything, and its faces are half as large, as in a real crowd.

Mosaics train in phase 2 only. Phase 2 on maps trains on the output of the frozen front of the base,
computed once per input. So its mosaics are a fixed pool of real mosaic images, drawn once from the
training photos and passed once through the front (``edgecount.training.mosaic_pool``). Phase 2 over
images tiles fresh mosaics from the augmented photos in every epoch
(``edgecount.training.images.create_augmented_dataset``).

Two other uses were measured by 5-fold cross-validation on the challenge photos and left out (see
docs/training.md). Mosaics in phase 1, where only the head trains on pooled features, raised the mean
RMSE. Mosaics can also be composed from the cached half-size features of the four photos (their
mean, or their maps tiled 2x2) instead of from pixels. Those correlate only about 0.9 with the
features of the real mosaic image at 448 pixels, because the base's receptive field spans the seams.
In phase 1 they raised the mean RMSE and barely reduced the undercount.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The default share of mosaics: none. 0.5 adds one mosaic for every two training photos. In 5-fold
# cross-validation it cut the undercount of photos with 15 or more faces from 3.9 to 3.0 faces, but
# raised the mean RMSE from 1.203 to 1.277 (docs/training.md), and the defaults minimise the RMSE.
DEFAULT_MOSAIC = 0.0
# The largest share accepted: 4 mosaics per training photo already outnumber the photos 4 to 1.
MAX_MOSAIC = 4.0
# Photos per mosaic: a 2x2 grid.
TILES = 4
# Added to a run's seed to draw its mosaics, apart from the other draws of the seed.
MOSAIC_STREAM = 2**31 - 1


def mosaic_size(image_size: int) -> int:
    """Return the side of each photo in a mosaic: half the model's input size, rounded down."""
    return image_size // 2


def mosaic_count(fraction: float, train_images: int) -> int:
    """Return the number of mosaics for ``train_images`` training photos: ``fraction`` of them, rounded."""
    return int(round(fraction * train_images))


def choose_tiles(rng: np.random.Generator, train_rows: np.ndarray, count: int) -> np.ndarray:
    """Return ``count`` rows of 4 training rows each, drawn at random: the photos of each mosaic, in reading order.

    The 4 photos of a mosaic are distinct when there are at least 4 training rows.
    """
    if count == 0 or len(train_rows) == 0:
        return np.zeros((0, TILES), np.int64)
    replace = len(train_rows) < TILES
    picks = [rng.choice(len(train_rows), TILES, replace=replace) for _ in range(count)]
    return np.asarray(train_rows)[np.stack(picks)]


def tile_images(quadrants: list[np.ndarray]) -> np.ndarray:
    """Tile 4 images of one shape (height, width, channels) 2x2 into one image, in reading order."""
    top = np.concatenate(quadrants[:2], axis=1)
    bottom = np.concatenate(quadrants[2:], axis=1)
    return np.concatenate([top, bottom], axis=0)


@dataclass
class MosaicPool:
    """Mosaic images passed once through the frozen front of the base: their photos and the front's maps for each.

    Attributes:
        tiles: the dataset rows of each mosaic's 4 photos, one row per mosaic.
        inputs: per mosaic, the maps at the input of the first phase 2 tail layer.
        counts: true counts, indexed by dataset row.
        target: the training target (see ``build_count_model``), applied to each mosaic's count.
    """

    tiles: np.ndarray
    inputs: np.ndarray
    counts: np.ndarray
    target: str = "count"

    def select(self, train_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the inputs and training targets of the mosaics made of ``train_rows`` only."""
        from edgecount.training.model import transform_counts

        inside = np.isin(self.tiles, train_rows).all(axis=1)
        totals = self.counts[self.tiles[inside]].sum(axis=1, dtype=np.float32)
        return self.inputs[inside], transform_counts(totals, self.target)
