"""Checks on the representative dataset: wrong shape, dtype, pixel range and channel order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgecount.converters import (
    CalibrationError,
    check_channel_order,
    load_calibration_frames,
    representative_samples,
    validate_representative_dataset,
)

SIZE = (96, 96)


@pytest.fixture(scope="module")
def photo_frames(av_faces_dir: Path, av_labels) -> list[np.ndarray]:
    """Forty real photos, enough for the channel-order statistics."""
    frames, failures = load_calibration_frames([av_faces_dir / "images" / name for name, _ in av_labels[:40]])
    assert failures == []
    return frames


def _dataset(samples):
    def generate():
        for sample in samples:
            yield [sample]

    return generate


def test_validate_accepts_real_photos(photo_frames: list[np.ndarray]) -> None:
    assert validate_representative_dataset(representative_samples(photo_frames, SIZE), SIZE) == 40


def test_validate_rejects_wrong_shape() -> None:
    samples = [np.full((1, 64, 64, 3), 100, dtype=np.float32)]

    with pytest.raises(CalibrationError, match=r"shape \(1, 64, 64, 3\); the model input needs \(1, 96, 96, 3\)"):
        validate_representative_dataset(_dataset(samples), SIZE)


def test_validate_rejects_wrong_dtype() -> None:
    samples = [np.full((1, 96, 96, 3), 100, dtype=np.uint8)]

    with pytest.raises(CalibrationError, match="dtype uint8; expected float32"):
        validate_representative_dataset(_dataset(samples), SIZE)


@pytest.mark.parametrize(("low", "high", "fragment"), [(-1.0, 1.0, "do not scale them to -1..1"), (0.0, 1.0, "scaled to 0..1")])
def test_validate_rejects_scaled_pixels(low: float, high: float, fragment: str) -> None:
    samples = [np.linspace(low, high, 96 * 96 * 3, dtype=np.float32).reshape(1, 96, 96, 3)]

    with pytest.raises(CalibrationError, match=fragment):
        validate_representative_dataset(_dataset(samples), SIZE)


def test_validate_rejects_bare_arrays() -> None:
    def generate():
        yield np.zeros((1, 96, 96, 3), dtype=np.float32)

    with pytest.raises(CalibrationError, match="expects a list with one input array"):
        validate_representative_dataset(generate, SIZE)


def test_validate_rejects_empty_dataset() -> None:
    with pytest.raises(CalibrationError, match="yielded no samples"):
        validate_representative_dataset(_dataset([]), SIZE)


def test_channel_order_detects_swapped_photos(photo_frames: list[np.ndarray]) -> None:
    # Frames that are already RGB, declared as BGR, reach the model with red and blue swapped.
    rgb_frames = [frame[:, :, ::-1].copy() for frame in photo_frames]

    with pytest.raises(CalibrationError, match="looks like BGR"):
        representative_samples(rgb_frames, SIZE, channel_order="bgr")


def test_channel_order_accepts_declared_rgb(photo_frames: list[np.ndarray]) -> None:
    rgb_frames = [frame[:, :, ::-1].copy() for frame in photo_frames]

    dataset = representative_samples(rgb_frames, SIZE, channel_order="rgb")

    assert validate_representative_dataset(dataset, SIZE) == 40


def test_channel_order_skips_small_sets(photo_frames: list[np.ndarray]) -> None:
    swapped = [sample[:, :, :, ::-1] for (sample,) in representative_samples(photo_frames[:8], SIZE)()]

    check_channel_order(swapped)


def test_channel_order_rejects_unknown_name(photo_frames: list[np.ndarray]) -> None:
    with pytest.raises(CalibrationError, match="'bgr' or 'rgb', got 'gbr'"):
        representative_samples(photo_frames[:1], SIZE, channel_order="gbr")
