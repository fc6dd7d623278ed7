"""The seeded train/validation split, stratified by count."""

from __future__ import annotations

import numpy as np

from edgecount.datasets.readers import DatasetError
from edgecount.runs import Sample


def validation_size(total: int, validation_fraction: float) -> int:
    """Return how many of ``total`` images ``split_samples`` puts in validation.

    A split needs this to be at least 1 and at most ``total - 1``.
    """
    return int(round(total * validation_fraction))


def split_samples(samples: list[Sample], validation_fraction: float = 0.2, seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """Split samples into train and validation sets, stratified by count.

    The samples are ordered by count (ties in a seeded random order) and cut into
    ``round(len(samples) * validation_fraction)`` consecutive strata of equal width. One random sample of
    each stratum goes to validation, so every count range, including the few crowded images at the top,
    lands on both sides in proportion, and the same seed always gives the same split.

    Args:
        samples: the labelled images.
        validation_fraction: share of images for validation, strictly between 0 and 1. Default 0.2.
        seed: random seed for the tie order and the pick inside each stratum. Default 0.

    Returns:
        ``(train, validation)``, each sorted by path.

    Raises:
        ValueError: if the fraction is outside (0, 1).
        DatasetError: if the fraction leaves either side empty.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation fraction must be between 0 and 1 (exclusive), got {validation_fraction}")
    total = len(samples)
    validation_images = validation_size(total, validation_fraction)
    if validation_images < 1 or validation_images >= total:
        raise DatasetError(
            f"a validation fraction of {validation_fraction} of {total} images leaves "
            f"{validation_images} for validation and {total - validation_images} for training; "
            "both need at least one image, so use more images or another fraction"
        )

    # Order by count, with a seeded random order among equal counts.
    rng = np.random.default_rng(seed)
    counts = np.array([sample.count for sample in samples], dtype=np.float64)
    order = np.lexsort((rng.random(total), counts))

    # One pick per stratum of the ordered list.
    edges = np.linspace(0, total, validation_images + 1)
    starts, stops = np.floor(edges[:-1]).astype(int), np.floor(edges[1:]).astype(int)
    picks = starts + (rng.random(validation_images) * (stops - starts)).astype(int)
    is_validation = np.zeros(total, dtype=bool)
    is_validation[order[picks]] = True

    def by_path(chosen: list[Sample]) -> list[Sample]:
        return sorted(chosen, key=lambda sample: str(sample.path))

    train = by_path([sample for sample, flag in zip(samples, is_validation) if not flag])
    validation = by_path([sample for sample, flag in zip(samples, is_validation) if flag])
    return train, validation
