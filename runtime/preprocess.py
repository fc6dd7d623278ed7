"""The one preprocessing step between a decoded frame and the model input.

Training, int8 calibration and every runtime source call ``preprocess`` so that the pixels a model
sees at run time are produced exactly as during training. The saved models scale pixels themselves
(MobileNetV2's ``x / 127.5 - 1`` is a layer inside the model), so this step only resizes and reorders
channels and keeps the 0..255 range.
"""

from __future__ import annotations

import cv2
import numpy as np


def preprocess(frame: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """Resize a BGR frame to the model input and convert it to RGB.

    The frame is stretched to the input size without keeping the aspect ratio, the same way for
    training and inference. Shrinking uses ``cv2.INTER_AREA`` (no aliasing on 612x408 photos shrunk to
    224x224); enlarging uses ``cv2.INTER_LINEAR``.

    NOTE: ``INTER_AREA`` at a non-integer ratio is slow: 640x480 to 224x224 took about 1.6 to 1.8 ms
    on one AMD EPYC core, 0.7 ms from 320x240 and 0.07 ms from 448x448 (an exact 2x ratio), measured
    with OpenCV 5.1. That is a quarter of an int8 alpha 0.35 inference on that CPU, so a camera set
    to a smaller size (``edgecount webcam --width/--height``) counts faster.

    Args:
        frame: HxWx3 uint8 image in BGR channel order, as OpenCV decodes it.
        input_size: ``(height, width)`` of the model input.

    Returns:
        A new ``(height, width, 3)`` uint8 array in RGB order with pixel values 0..255.

    Raises:
        ValueError: if the frame is not an HxWx3 uint8 array or the size is not positive.
    """
    height, width = int(input_size[0]), int(input_size[1])
    if height <= 0 or width <= 0:
        raise ValueError(f"input_size must be two positive integers (height, width), got {input_size!r}")
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        shape = getattr(frame, "shape", None)
        dtype = getattr(frame, "dtype", type(frame).__name__)
        raise ValueError(
            f"preprocess expects an HxWx3 uint8 BGR frame, got shape {shape} and dtype {dtype}; "
            "decode images with edgecount.runtime.load_image or decode_image first"
        )

    frame_height, frame_width = frame.shape[:2]
    if (frame_height, frame_width) == (height, width):
        resized = frame
    else:
        shrinking = frame_height * frame_width > height * width
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        resized = cv2.resize(frame, (width, height), interpolation=interpolation)
    return cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
