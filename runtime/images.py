"""Decoding image files into BGR uint8 frames with OpenCV.

Every image reaches the model as an HxWx3 uint8 BGR frame, whatever the file holds: JPEG EXIF
orientation is applied, grayscale is expanded to three channels, an alpha channel is composited over
black, and 16-bit samples are scaled to 8 bits.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from .errors import ImageDecodeError

_log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".jp2", ".pgm", ".ppm", ".pnm")

# 64 MiB is far above any photo a camera writes as JPEG and keeps a stray multi-gigabyte file from
# being read into memory. EDGECOUNT_MAX_IMAGE_BYTES raises it.
DEFAULT_MAX_IMAGE_BYTES = 64 * 1024 * 1024
# OpenCV refuses images above 2**30 pixels by itself; a lower limit fails sooner with our message.
MAX_IMAGE_PIXELS = 100_000_000

_JPEG_MAGIC = b"\xff\xd8"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_HEADER_SCAN_BYTES = 65536


def max_image_bytes() -> int:
    """Return the file size limit in bytes, from ``EDGECOUNT_MAX_IMAGE_BYTES`` or the default 64 MiB."""
    value = os.environ.get("EDGECOUNT_MAX_IMAGE_BYTES")
    if not value:
        return DEFAULT_MAX_IMAGE_BYTES
    try:
        limit = int(value)
    except ValueError:
        raise ImageDecodeError(
            f"EDGECOUNT_MAX_IMAGE_BYTES must be a whole number of bytes, got {value!r}"
        ) from None
    return limit


def decode_image(data: bytes | np.ndarray, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes into an HxWx3 uint8 BGR frame.

    Args:
        data: the encoded file content (JPEG, PNG, BMP, WebP, TIFF and the other formats OpenCV reads).
        name: how errors refer to the image, usually its path.

    Returns:
        An HxWx3 uint8 array in BGR order, upright according to JPEG EXIF orientation.

    Raises:
        ImageDecodeError: if the data is empty or OpenCV cannot decode it.
    """
    buffer = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if buffer.size == 0:
        raise ImageDecodeError(f"{name}: the file is empty (0 bytes); re-copy or re-export the image")

    # JPEG is the only common format with EXIF orientation that OpenCV applies, and IMREAD_COLOR applies
    # it. Other formats keep their channels and depth through IMREAD_UNCHANGED and are normalised below.
    # NOTE: orientation stored in PNG eXIf or TIFF tags is not applied.
    is_jpeg = bytes(buffer[:2]) == _JPEG_MAGIC
    # A small file can declare a huge image (a 20000x20000 PNG of zeros is 50 kB), and decoding it
    # would allocate gigabytes, so the declared size is checked before OpenCV decodes anything.
    declared = read_declared_size(bytes(buffer[:_HEADER_SCAN_BYTES]))
    if declared is not None and declared[0] * declared[1] > MAX_IMAGE_PIXELS:
        raise ImageDecodeError(
            f"{name}: the file declares {declared[0]}x{declared[1]} pixels, above the limit of "
            f"{MAX_IMAGE_PIXELS:,}; downscale the image first"
        )
    flags = cv2.IMREAD_COLOR if is_jpeg else cv2.IMREAD_UNCHANGED
    try:
        image = cv2.imdecode(buffer, flags)
    except cv2.error as error:
        raise ImageDecodeError(f"{name}: OpenCV failed to decode the image: {error}") from error
    if image is None:
        raise ImageDecodeError(
            f"{name}: not a decodable image ({buffer.size} bytes); the file is corrupt, truncated "
            f"or not in a format OpenCV reads ({', '.join(IMAGE_SUFFIXES)})"
        )
    return to_bgr8(image, name)


def read_declared_size(header: bytes) -> tuple[int, int] | None:
    """Read ``(width, height)`` from a PNG IHDR chunk or a JPEG start-of-frame marker.

    Args:
        header: the first bytes of the file; 64 kB covers JPEG files with large EXIF thumbnails.

    Returns:
        The size the file declares, or None for other formats or a header that ends early.
    """
    if header.startswith(_PNG_MAGIC) and len(header) >= 24 and header[12:16] == b"IHDR":
        return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
    if not header.startswith(_JPEG_MAGIC):
        return None
    position = 2
    while position + 4 <= len(header):
        if header[position] != 0xFF:
            return None
        marker = header[position + 1]
        if marker == 0xFF:
            position += 1
            continue
        length = int.from_bytes(header[position + 2 : position + 4], "big")
        # SOF0..SOF15 carry the frame size, except DHT (C4), JPG (C8) and DAC (CC).
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if position + 9 > len(header):
                return None
            height = int.from_bytes(header[position + 5 : position + 7], "big")
            width = int.from_bytes(header[position + 7 : position + 9], "big")
            return width, height
        position += 2 + length
    return None


def to_bgr8(image: np.ndarray, name: str = "<array>") -> np.ndarray:
    """Convert a decoded image of any channel count and depth to HxWx3 uint8 BGR.

    Args:
        image: HxW, HxWx1, HxWx3 (BGR) or HxWx4 (BGRA) array of uint8, uint16 or float32 samples.
        name: how errors refer to the image.

    Returns:
        An HxWx3 uint8 BGR array; the input array itself when it already is one.

    Raises:
        ImageDecodeError: for an empty image, an unsupported channel count or sample type.
    """
    if image.size == 0 or image.ndim not in (2, 3):
        raise ImageDecodeError(f"{name}: decoded to an empty or {image.ndim}-dimensional array {image.shape}")
    if image.shape[0] * image.shape[1] > MAX_IMAGE_PIXELS:
        raise ImageDecodeError(
            f"{name}: {image.shape[1]}x{image.shape[0]} pixels is above the limit of {MAX_IMAGE_PIXELS:,}; "
            "downscale the image first"
        )

    # Depth: 16-bit keeps its top 8 bits, floats are taken as 0..1.
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        image = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageDecodeError(f"{name}: unsupported sample type {image.dtype}; save the image as 8- or 16-bit")

    # Channels: gray is repeated, alpha is composited over black.
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if channels == 3:
        return image
    if channels == 4:
        alpha = image[:, :, 3:4].astype(np.uint16)
        return ((image[:, :, :3].astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)
    raise ImageDecodeError(f"{name}: unsupported channel count {channels}; expected 1, 3 or 4 channels")


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read and decode an image file into an HxWx3 uint8 BGR frame.

    Args:
        path: the image file.

    Returns:
        An HxWx3 uint8 array in BGR order.

    Raises:
        ImageDecodeError: if the file is missing, unreadable, empty, larger than the size limit
            (``EDGECOUNT_MAX_IMAGE_BYTES``, default 64 MiB) or not a decodable image.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageDecodeError(f"{path}: image file not found") from None
    except OSError as error:
        raise ImageDecodeError(f"{path}: cannot read the image file: {error.strerror}") from error
    if path.is_dir():
        raise ImageDecodeError(f"{path}: is a folder, not an image file")

    limit = max_image_bytes()
    if size > limit:
        raise ImageDecodeError(
            f"{path}: the file is {size:,} bytes, above the limit of {limit:,} bytes; downscale it or "
            "raise EDGECOUNT_MAX_IMAGE_BYTES"
        )
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImageDecodeError(f"{path}: cannot read the image file: {error.strerror}") from error
    return decode_image(data, str(path))


def is_image_file(path: Path) -> bool:
    """Return whether the path has one of the image suffixes that folders are scanned for."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def collect_image_paths(inputs: list[str], recursive: bool = False) -> tuple[list[Path], list[str]]:
    """Expand files, folders and glob patterns into image paths.

    Folders contribute their files with an image suffix, sorted by name (with ``recursive``, those of
    subfolders too). Files named directly are kept whatever their suffix, so that a mislabelled or
    corrupt file is reported instead of silently skipped.

    Args:
        inputs: paths, folders or glob patterns such as ``photos/*.jpg``.
        recursive: whether folders are scanned recursively.

    Returns:
        ``(paths, unmatched)``: the image paths in input order without duplicates, and the inputs that
        matched nothing (missing paths, empty folders, globs without matches).
    """
    import glob

    paths: list[Path] = []
    seen: set[Path] = set()
    unmatched: list[str] = []

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            paths.append(path)

    for item in inputs:
        path = Path(item)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = [p for p in path.glob(pattern) if p.is_file()]
            found = sorted(p for p in files if is_image_file(p))
            if len(found) < len(files):
                _log.info("%s: skipped %d files without an image suffix", path, len(files) - len(found))
        elif path.exists():
            found = [path]
        elif glob.has_magic(item):
            found = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
        else:
            found = []
        if not found:
            unmatched.append(item)
        for image_path in found:
            add(image_path)
    return paths, unmatched
