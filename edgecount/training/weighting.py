"""Sample weights against the long tail of counts (imbalanced regression).

Group photos with many faces are rare: in the 2,800 challenge photos, 21 have 15 or more faces and
1,840 have 1 to 4. A loss averaged over images then fits the common counts and undercounts crowds.
Inverse-frequency weighting gives each image a weight that falls with how common its count is. The
frequency is the label distribution smoothed with a Gaussian kernel over neighbouring counts (label
distribution smoothing, from Yang et al., "Delving into Deep Imbalanced Regression", ICML 2021,
arXiv:2102.09554), so a count that no training image has still gets the frequency of its neighbours.
"""

from __future__ import annotations

import numpy as np

# The weightings: none, or 1/sqrt(f) for an image whose count has the smoothed frequency f. Plain 1/f is
# not offered because on the challenge photos it weights a 29-face photo about 1,000 times a 3-face photo.
COUNT_WEIGHTINGS = ("none", "sqrt-inverse")
# Standard deviation of the smoothing kernel, in faces.
KERNEL_SIGMA = 2.0


def smoothed_count_density(train_counts: np.ndarray, counts: np.ndarray, sigma: float = KERNEL_SIGMA) -> np.ndarray:
    """Return the frequency of each value of ``counts`` among ``train_counts``, smoothed with a Gaussian kernel.

    Args:
        train_counts: the counts of the training images, which define the distribution.
        counts: the counts to look up (any non-negative values).
        sigma: standard deviation of the kernel in faces. Default 2.

    Returns:
        float64 densities. The smoothed histogram sums to 1 over the integer counts from 0 to the largest
        count in either array, and a count beyond the kernel's reach gets its smallest positive value.
    """
    top = int(np.ceil(max(np.max(train_counts), np.max(counts))))
    histogram = np.bincount(np.clip(np.rint(train_counts).astype(np.int64), 0, None), minlength=top + 1).astype(np.float64)
    offsets = np.arange(-int(np.ceil(4 * sigma)), int(np.ceil(4 * sigma)) + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    # A full convolution, cut back to the histogram's bins ("same" would return the kernel's length for a short histogram).
    smoothed = np.convolve(histogram, kernel / kernel.sum(), mode="full")[len(offsets) // 2 : len(offsets) // 2 + len(histogram)]
    smoothed /= smoothed.sum()
    bins = np.clip(np.rint(counts).astype(np.int64), 0, top)
    # The kernel reaches every bin within 4 sigma of a training count; beyond that, use the smallest
    # positive density so no weight is infinite.
    floor = smoothed[smoothed > 0].min()
    return np.maximum(smoothed[bins], floor)


def count_weights(counts: np.ndarray, train_rows: np.ndarray, weighting: str) -> np.ndarray | None:
    """Return a float32 sample weight for every row of ``counts``, with mean 1 over ``train_rows``, or None for ``none``.

    Args:
        counts: true counts, indexed by dataset row.
        train_rows: the rows that train, whose counts define the frequency.
        weighting: ``none`` (no weights) or ``sqrt-inverse`` (1 over the square root of the smoothed frequency).

    Raises:
        ValueError: for an unknown ``weighting``.
    """
    if weighting not in COUNT_WEIGHTINGS:
        raise ValueError(f"--count-weighting must be one of {', '.join(COUNT_WEIGHTINGS)}, got {weighting!r}")
    if weighting == "none":
        return None
    counts = np.asarray(counts, np.float64)
    density = smoothed_count_density(counts[train_rows], counts)
    weights = 1.0 / np.sqrt(density)
    return (weights / weights[train_rows].mean()).astype(np.float32)
