"""Quadrants of a frame: the four crops that ``--quadrants`` trains on and ``--tta tiles`` counts.

A frame is cut at half its height and half its width into four quadrants, in reading order. Each
quadrant is then preprocessed like a whole frame, so its faces reach the model about twice as large.
Training (``edgecount train --quadrants``) and the runtime (``CountModel(..., tta="tiles")``) both
cut here, so a model counts the same crops it was trained on.
"""

from __future__ import annotations

import numpy as np

# Quadrants per frame: a 2x2 grid.
QUADRANTS = 4


def quadrant_boxes(height: int, width: int) -> list[tuple[int, int, int, int]]:
    """Return the ``(left, top, right, bottom)`` pixel box of each quadrant of a ``height`` x ``width`` frame, in reading order.

    The cut is at ``height // 2`` and ``width // 2``, so with an odd side the bottom or right quadrants
    are one pixel larger. Every pixel belongs to exactly one quadrant.

    Raises:
        ValueError: if a side is below 2 pixels, which leaves a quadrant empty.
    """
    if height < 2 or width < 2:
        raise ValueError(f"a frame needs at least 2x2 pixels to cut into quadrants, got {width}x{height} (width x height)")
    middle_y, middle_x = height // 2, width // 2
    return [
        (0, 0, middle_x, middle_y),
        (middle_x, 0, width, middle_y),
        (0, middle_y, middle_x, height),
        (middle_x, middle_y, width, height),
    ]


def crop_quadrants(frame: np.ndarray) -> list[np.ndarray]:
    """Return the four quadrants of an HxWxC frame as views, in the order of ``quadrant_boxes``."""
    return [frame[top:bottom, left:right] for left, top, right, bottom in quadrant_boxes(frame.shape[0], frame.shape[1])]


def combine_tile_counts(whole: float | np.ndarray, quadrant_counts: np.ndarray) -> float | np.ndarray:
    """Return the tiled count: the mean of the whole-frame count and the sum of the 4 quadrant counts, each clipped at 0 first.

    ``quadrant_counts`` has the 4 raw quadrant counts in its last axis, so arrays of frames work too.
    """
    quadrant_sum = np.maximum(np.asarray(quadrant_counts, np.float64), 0.0).sum(axis=-1)
    return (np.maximum(whole, 0.0) + quadrant_sum) / 2.0
