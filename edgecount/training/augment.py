"""Count-preserving augmentation for phase 2: flips, colour and brightness jitter, recounted crops.

A flip or a colour change keeps every face, so the target stays the true count. A crop can cut faces
off, so crops are drawn only for images with face boxes, and the target becomes the recount. Each box
adds the fraction of its area inside the crop: 1 for a face fully inside, 0.5 for a face cut in half,
0 for a face outside. Without boxes no crop is made, because the new count would be a guess.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentSettings:
    """Ranges of the random changes; the defaults are mild enough to keep faces recognisable.

    NOTE: these ranges are common choices, not tuned. Their effect on the validation RMSE of
    ``edgecount train`` was not measured, because that takes several full runs of hours each on a CPU.

    Attributes:
        flip: mirror left-right with probability 0.5.
        brightness: maximum relative brightness change (0.2 scales pixels by 0.8 to 1.2).
        contrast: maximum relative contrast change around the image mean.
        saturation: maximum relative saturation change (blend with the grey image).
        hue_shift: maximum per-channel gain change, a cheap colour-cast jitter.
        crop_probability: chance of a crop when the image has boxes.
        min_crop: smallest crop side as a fraction of the image side (scale jitter up to 1 / min_crop).
    """

    flip: bool = True
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue_shift: float = 0.05
    crop_probability: float = 0.5
    min_crop: float = 0.6


def recount_in_crop(boxes: np.ndarray, crop: tuple[float, float, float, float]) -> float:
    """Count the faces inside a crop, each weighted by the fraction of its box area inside.

    Args:
        boxes: ``(N, 4)`` boxes ``xmin, ymin, xmax, ymax``, in the same units as ``crop``.
        crop: ``(xmin, ymin, xmax, ymax)`` of the crop.

    Returns:
        The recounted target; the true count when the crop contains every box.

    Note:
        A zero-area box (a point or a line) counts 1 when its centre lies inside the crop, 0 otherwise.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return 0.0
    left, top, right, bottom = crop
    width = np.clip(np.minimum(boxes[:, 2], right) - np.maximum(boxes[:, 0], left), 0.0, None)
    height = np.clip(np.minimum(boxes[:, 3], bottom) - np.maximum(boxes[:, 1], top), 0.0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    centre_x, centre_y = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    centre_inside = (centre_x >= left) & (centre_x <= right) & (centre_y >= top) & (centre_y <= bottom)
    fraction = np.where(area > 0, width * height / np.where(area > 0, area, 1.0), centre_inside.astype(np.float64))
    return float(fraction.sum())


def normalise_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Return pixel boxes as fractions of the image width and height, clipped to the image."""
    scale = np.array([width, height, width, height], np.float32)
    return np.clip(np.asarray(boxes, np.float32).reshape(-1, 4) / scale, 0.0, 1.0)


def resize_square(image: np.ndarray, image_size: int) -> np.ndarray:
    """Resize an RGB image to an ``image_size`` square, with area averaging when shrinking."""
    if image.shape[:2] == (image_size, image_size):
        return image
    shrinking = image.shape[0] > image_size or image.shape[1] > image_size
    return cv2.resize(image, (image_size, image_size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def augment_image(
    image: np.ndarray,
    count: float,
    rng: np.random.Generator,
    resize: Callable[[np.ndarray], np.ndarray],
    boxes: np.ndarray | None = None,
    settings: AugmentSettings = AugmentSettings(),
) -> tuple[np.ndarray, float]:
    """Apply random count-preserving changes to one RGB image and return it with its target.

    Args:
        image: ``HxWx3`` uint8 image in the form ``resize`` takes: a full-size BGR frame for
            ``edgecount.runtime.preprocess``, or an already preprocessed RGB square for ``resize_square``.
        count: the true count of the image.
        rng: the random generator; the same generator state gives the same result.
        resize: turns the (cropped) image into the square RGB uint8 model input.
        boxes: face boxes normalised to 0..1 of the image (see ``normalise_boxes``), or None when the
            dataset has none. Default None: no crops.
        settings: the ranges. Default ``AugmentSettings()``.

    Returns:
        ``(image, count)``: float32 RGB pixels 0..255 of the model input size and the target, which
        changes only when a crop cuts faces off.
    """
    height, width = image.shape[:2]
    target = float(count)

    # Crop and scale jitter, recounted from the boxes.
    if boxes is not None and rng.random() < settings.crop_probability:
        side = rng.uniform(settings.min_crop, 1.0)
        aspect = rng.uniform(0.9, 1.1)
        crop_width, crop_height = min(1.0, side * aspect), min(1.0, side / aspect)
        left, top = rng.uniform(0.0, 1.0 - crop_width), rng.uniform(0.0, 1.0 - crop_height)
        crop = (left, top, left + crop_width, top + crop_height)
        target = recount_in_crop(boxes, crop)
        x0, y0 = int(round(left * width)), int(round(top * height))
        x1, y1 = max(x0 + 1, int(round(crop[2] * width))), max(y0 + 1, int(round(crop[3] * height)))
        image = image[y0:y1, x0:x1]
    image = resize(np.ascontiguousarray(image))

    # Flip and colour; none of them moves a face in or out of the frame.
    pixels = image.astype(np.float32)
    if settings.flip and rng.random() < 0.5:
        pixels = pixels[:, ::-1]
    gains = 1.0 + rng.uniform(-settings.hue_shift, settings.hue_shift, size=3).astype(np.float32)
    pixels = pixels * gains * np.float32(1.0 + rng.uniform(-settings.brightness, settings.brightness))
    mean = pixels.mean()
    pixels = (pixels - mean) * np.float32(1.0 + rng.uniform(-settings.contrast, settings.contrast)) + mean
    grey = pixels @ np.array([0.299, 0.587, 0.114], np.float32)
    pixels = grey[..., None] + (pixels - grey[..., None]) * np.float32(1.0 + rng.uniform(-settings.saturation, settings.saturation))
    return np.ascontiguousarray(np.clip(pixels, 0.0, 255.0), dtype=np.float32), target
