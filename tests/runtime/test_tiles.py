"""The quadrants of a frame and the tiled count, shared by training and the runtime."""

from __future__ import annotations

import numpy as np
import pytest

from edgecount.runtime.tiles import combine_tile_counts, crop_quadrants, quadrant_boxes


@pytest.mark.parametrize(("height", "width"), [(2, 2), (3, 5), (480, 640), (481, 641)])
def test_quadrants_cover_each_pixel_once(height: int, width: int):
    covered = np.zeros((height, width), int)
    for left, top, right, bottom in quadrant_boxes(height, width):
        assert right > left
        assert bottom > top
        covered[top:bottom, left:right] += 1
    assert (covered == 1).all()


def test_quadrants_in_reading_order():
    frame = np.zeros((4, 6, 3), np.uint8)
    frame[:2, 3:] = 1
    frame[2:, :3] = 2
    frame[2:, 3:] = 3
    crops = crop_quadrants(frame)
    assert [int(crop.max()) for crop in crops] == [0, 1, 2, 3]
    assert all(crop.shape == (2, 3, 3) for crop in crops)


@pytest.mark.parametrize(("height", "width"), [(1, 1), (1, 50), (50, 1)])
def test_quadrants_need_two_pixels(height: int, width: int):
    with pytest.raises(ValueError, match=f"at least 2x2 pixels to cut into quadrants, got {width}x{height}"):
        quadrant_boxes(height, width)


def test_tiled_count_clips_each_count():
    assert combine_tile_counts(4.0, np.array([1.0, -2.0, 3.0, 0.5])) == pytest.approx((4.0 + 4.5) / 2)
    assert combine_tile_counts(-1.0, np.array([1.0, 1.0, 1.0, 1.0])) == pytest.approx(2.0)


def test_tiled_count_of_many_frames():
    whole = np.array([2.0, 6.0])
    quadrants = np.array([[1.0, 1.0, 1.0, 1.0], [0.0, 2.0, -1.0, 4.0]])
    np.testing.assert_allclose(combine_tile_counts(whole, quadrants), [3.0, 6.0])
