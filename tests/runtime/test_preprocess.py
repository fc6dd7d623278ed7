"""Tests for the single preprocessing step shared by training, calibration and the runtime."""

from __future__ import annotations

import numpy as np
import pytest

from edgecount.runtime import load_image, preprocess
from edgecount.runtime.preprocess import resize_to_input


@pytest.mark.parametrize("frame_shape", [(480, 640), (408, 612), (1080, 1920), (100, 100), (224, 224), (300, 1000)])
def test_preprocess_output_shape_and_type(frame_shape):
    frame = np.full(frame_shape + (3,), 200, dtype=np.uint8)

    output = preprocess(frame, (224, 160))

    assert output.shape == (224, 160, 3)
    assert output.dtype == np.uint8
    assert int(output.min()) == 200
    assert int(output.max()) == 200


def test_preprocess_converts_bgr_to_rgb():
    frame = np.zeros((300, 400, 3), dtype=np.uint8)
    frame[:, :, 0] = 255  # blue in OpenCV's BGR order

    output = preprocess(frame, (96, 96))

    assert int(output[:, :, 2].min()) == 255
    assert int(output[:, :, 0].max()) == 0


def test_preprocess_keeps_pixel_range():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, size=(408, 612, 3), dtype=np.uint8)

    output = preprocess(frame, (224, 224))

    assert int(output.min()) >= 0
    assert int(output.max()) <= 255


def test_resize_shrink_is_antialiased():
    # A one-pixel checkerboard must average to mid-grey, not alias into stripes or a flat extreme.
    checkerboard = (np.indices((480, 640)).sum(axis=0) % 2 * 255).astype(np.uint8)
    frame = np.repeat(checkerboard[:, :, None], 3, axis=2)

    output = resize_to_input(frame, 224, 224).astype(np.float32)

    assert abs(float(output.mean()) - 127.5) < 3
    assert float(output.std()) < 20


def test_resize_same_size_returns_frame():
    frame = np.zeros((224, 224, 3), dtype=np.uint8)

    assert resize_to_input(frame, 224, 224) is frame


def test_preprocess_close_to_area_resize_on_photo(real_photo_paths):
    import cv2

    frame = load_image(real_photo_paths[0])
    reference = cv2.cvtColor(cv2.resize(frame, (224, 224), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)

    output = preprocess(frame, (224, 224))

    assert float(np.abs(output.astype(np.float32) - reference).mean()) < 2.0


@pytest.mark.parametrize(
    "frame, fragment",
    [
        (np.zeros((10, 10), dtype=np.uint8), "HxWx3 uint8"),
        (np.zeros((10, 10, 4), dtype=np.uint8), "HxWx3 uint8"),
        (np.zeros((10, 10, 3), dtype=np.float32), "dtype float32"),
        ("not an array", "HxWx3 uint8"),
    ],
)
def test_preprocess_rejects_invalid_frame(frame, fragment):
    with pytest.raises(ValueError, match=fragment):
        preprocess(frame, (96, 96))


def test_preprocess_rejects_invalid_size():
    with pytest.raises(ValueError, match="input_size"):
        preprocess(np.zeros((10, 10, 3), dtype=np.uint8), (0, 96))
