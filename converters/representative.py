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


# check_channel_order: the sample count from which a mean over images is stable, and the blue-over-red
# margin in 0..255 levels that natural photos in RGB order do not reach (see the function).
CHANNEL_CHECK_MIN_SAMPLES = 32
CHANNEL_SWAP_MARGIN = 8.0


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
    check_channel_order(samples)

    def generate() -> Iterator[list[np.ndarray]]:
        for sample in samples:
            yield [sample]

    return generate


def check_channel_order(samples: Sequence[np.ndarray], min_samples: int = CHANNEL_CHECK_MIN_SAMPLES) -> None:
    """Reject a representative dataset whose pixels look BGR where the model takes RGB.

    Group photos are warmer than they are blue: on the av-faces photos the mean red value exceeds
    the mean blue value by about 20 levels, in 84% of single images and in each of 500 random draws of 50 images.
    A set of at least ``min_samples`` samples whose mean blue exceeds its mean red by more than
    ``CHANNEL_SWAP_MARGIN`` levels was therefore almost surely fed in BGR order.

    Note:
        This catches a swap only statistically. It cannot detect one in fewer than ``min_samples``
        samples, in grayscale images (equal channels), or in data that really is blue-dominated
        (underwater, snow or night scenes); pass ``channel_order`` explicitly there. It also cannot
        detect a swap that training made too, because then the model has learned BGR.

    Args:
        samples: float32 ``(1, height, width, 3)`` arrays meant to be RGB.
        min_samples: below this many samples nothing is checked. Default 32.

    Raises:
        CalibrationError: if the statistics say blue and red are swapped.
    """
    if len(samples) < min_samples:
        return
    means = np.mean([sample.reshape(-1, 3).mean(axis=0) for sample in samples], axis=0)
    red, blue = float(means[0]), float(means[2])
    if blue - red > CHANNEL_SWAP_MARGIN:
        raise CalibrationError(
            f"the representative dataset looks like BGR, but the model takes RGB: over {len(samples)} samples the "
            f"mean blue value is {blue:.1f} and the mean red value {red:.1f}, where photos are normally warmer. "
            "Pass frames as load_image returns them (BGR) with channel_order='bgr', or RGB frames with "
            "channel_order='rgb'"
        )


def validate_representative_dataset(dataset: Callable[[], Iterator[list[np.ndarray]]], input_size: tuple[int, int]) -> int:
    """Run a representative dataset once and check every sample before the converter calibrates on it.

    TensorFlow's calibration fails late and vaguely on a wrong sample, or silently accepts one with the
    wrong range, so every sample is checked here with ``check_calibration_sample`` and the whole set with
    ``check_channel_order``.

    Returns:
        The number of samples.

    Raises:
        CalibrationError: if the dataset is empty, an item is not a one-element list, or a sample is wrong.
    """
    samples = []
    for position, item in enumerate(dataset()):
        if not isinstance(item, (list, tuple)) or len(item) != 1:
            raise CalibrationError(
                f"representative dataset item {position} is a {type(item).__name__} of length "
                f"{len(item) if hasattr(item, '__len__') else '?'}; the converter expects a list with one input array"
            )
        check_calibration_sample(item[0], input_size, position)
        samples.append(item[0])
    if not samples:
        raise CalibrationError("the representative dataset yielded no samples; int8 calibration needs real training images")
    check_channel_order(samples)
    return len(samples)


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
