"""The representative dataset for int8 calibration: real images through the runtime's preprocessing.

The converter runs the float model on these samples to choose each tensor's int8 range (calibration).
Samples that differ from what the runtime feeds (another size, channel order or pixel range) give
ranges that do not fit real inputs and a silently worse model, so every sample is checked here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from edgecount.runtime import EdgecountError, ImageDecodeError, load_image, preprocess


class CalibrationError(EdgecountError, ValueError):
    """The representative dataset is empty or its samples do not match the model input."""


def check_calibration_sample(sample: np.ndarray, input_size: tuple[int, int], position: int) -> None:
    """Check that one representative sample is what the model takes at run time.

    A sample must be a float32 array of shape ``(1, height, width, 3)`` with RGB pixel values in 0..255.

    Raises:
        CalibrationError: naming the sample, what it holds and what was expected.
    """
    expected_shape = (1, input_size[0], input_size[1], 3)
    if not isinstance(sample, np.ndarray):
        raise CalibrationError(
            f"representative sample {position} is a {type(sample).__name__}; expected a float32 array of shape {expected_shape}"
        )
    if sample.shape != expected_shape:
        raise CalibrationError(
            f"representative sample {position} has shape {sample.shape}; the model input needs {expected_shape}. "
            "Build samples with edgecount.runtime.preprocess and add a batch axis"
        )
    if sample.dtype != np.float32:
        raise CalibrationError(
            f"representative sample {position} has dtype {sample.dtype}; expected float32 pixel values in 0..255"
        )
    low, high = float(sample.min()), float(sample.max())
    if low < 0.0 or high > 255.0:
        raise CalibrationError(
            f"representative sample {position} has values {low:.3g}..{high:.3g}; the model takes raw pixels in 0..255, "
            "so do not scale them to -1..1 or 0..1 (the model scales them itself)"
        )
    if high <= 1.0:
        raise CalibrationError(
            f"representative sample {position} has values {low:.3g}..{high:.3g}, which looks scaled to 0..1; "
            "the model takes raw pixels in 0..255"
        )


def representative_samples(
    frames: Sequence[np.ndarray],
    input_size: tuple[int, int],
    channel_order: str = "bgr",
) -> Callable[[], Iterator[list[np.ndarray]]]:
    """Turn decoded frames into the representative dataset the TFLite converter calls.

    Args:
        frames: HxWx3 uint8 frames, as ``edgecount.runtime.load_image`` returns them.
        input_size: ``(height, width)`` of the model input.
        channel_order: ``"bgr"`` (default, OpenCV's order) or ``"rgb"`` for frames already in RGB.

    Returns:
        A function returning a fresh generator of ``[sample]`` lists, each sample a float32
        ``(1, height, width, 3)`` array of RGB pixels in 0..255.

    Raises:
        CalibrationError: if there are no frames, a frame is not HxWx3 uint8, or the order is unknown.
    """
    if channel_order not in ("bgr", "rgb"):
        raise CalibrationError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
    if len(frames) == 0:
        raise CalibrationError(
            "the representative dataset is empty; int8 calibration needs real training images. "
            "Point --data at a folder with images, or use --quantize dynamic, which needs no calibration"
        )
    samples = []
    for position, frame in enumerate(frames):
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise CalibrationError(
                f"calibration frame {position} has shape {getattr(frame, 'shape', None)} and dtype "
                f"{getattr(frame, 'dtype', type(frame).__name__)}; expected an HxWx3 uint8 image from load_image"
            )
        bgr = frame if channel_order == "bgr" else frame[:, :, ::-1]
        sample = preprocess(bgr, input_size).astype(np.float32)[np.newaxis]
        check_calibration_sample(sample, input_size, position)
        samples.append(sample)

    def generate() -> Iterator[list[np.ndarray]]:
        for sample in samples:
            yield [sample]

    return generate


def load_calibration_frames(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[np.ndarray], list[str]]:
    """Decode calibration images, skipping the ones that fail.

    Returns:
        ``(frames, failures)``: the decoded frames and one message per image that failed to decode.
    """
    frames, failures = [], []
    for path in paths:
        try:
            frames.append(load_image(Path(path)))
        except ImageDecodeError as error:
            failures.append(str(error))
    return frames, failures


def select_calibration_images(
    samples: Sequence[tuple[Path, float]], size: int, seed: int = 0
) -> list[tuple[Path, float]]:
    """Choose up to ``size`` images, stratified by count so that crowded photos are calibrated too.

    Images are sorted by count, cut into ``size`` equal strata, and one image is drawn from each
    stratum with a seeded generator, so the choice is reproducible and spans the count range.

    Args:
        samples: ``(path, count)`` pairs, usually the training split.
        size: how many images to return; all of them when there are fewer.
        seed: seed of the draw.
    """
    if size <= 0:
        raise CalibrationError(f"the calibration size must be at least 1, got {size}")
    if len(samples) <= size:
        return list(samples)
    rng = np.random.default_rng(seed)
    order = sorted(range(len(samples)), key=lambda i: (samples[i][1], str(samples[i][0])))
    edges = np.linspace(0, len(order), size + 1).astype(int)
    chosen = [order[int(rng.integers(start, end))] for start, end in zip(edges[:-1], edges[1:]) if end > start]
    return [samples[i] for i in sorted(chosen)]
