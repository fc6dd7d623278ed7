"""Decoding real photos and broken image files into HxWx3 uint8 BGR frames."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecount.runtime import ImageDecodeError, collect_image_paths, decode_image, load_image
from edgecount.runtime.images import MAX_IMAGE_PIXELS, read_declared_size

# Real photos of the data set stored as single-channel (mode L) JPEGs.
GRAY_PHOTOS = ["11175.jpg", "11681.jpg", "11990.jpg"]


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """Insert an APP1 Exif segment with only the Orientation tag (0x0112) right after the SOI marker."""
    # Big-endian TIFF header, then one IFD entry: tag, type SHORT (3), count 1, value padded to 4 bytes.
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8)
    tiff += struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + tiff
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + segment + jpeg[2:]


def png_declaring(width: int, height: int) -> bytes:
    """A valid 1-bit grayscale PNG of zeros; large sizes compress to a few kilobytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def test_load_image_real_photo(real_photo_paths):
    frame = load_image(real_photo_paths[0])
    assert frame.dtype == np.uint8
    assert frame.ndim == 3
    assert frame.shape[2] == 3


@pytest.mark.parametrize("name", GRAY_PHOTOS)
def test_load_image_grayscale_photo(av_faces_dir, name):
    path = av_faces_dir / "images" / name
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).ndim == 2  # really stored as one channel
    frame = load_image(path)
    assert frame.shape[2] == 3
    assert np.array_equal(frame[:, :, 0], frame[:, :, 2])


def test_load_image_rgba_png(tmp_path, real_photo_paths):
    bgr = cv2.imread(str(real_photo_paths[0]))
    alpha = np.full(bgr.shape[:2], 255, dtype=np.uint8)
    alpha[:, : bgr.shape[1] // 2] = 0
    path = tmp_path / "rgba.png"
    cv2.imwrite(str(path), np.dstack([bgr, alpha]))
    frame = load_image(path)
    assert frame.shape == bgr.shape
    assert frame[:, : bgr.shape[1] // 2].max() == 0  # transparent half composited over black
    assert np.array_equal(frame[:, bgr.shape[1] // 2 :], bgr[:, bgr.shape[1] // 2 :])


def test_load_image_16bit_png(tmp_path, real_photo_paths):
    bgr = cv2.imread(str(real_photo_paths[1]))
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), bgr.astype(np.uint16) * 257)
    frame = load_image(path)
    assert frame.dtype == np.uint8
    assert np.array_equal(frame, bgr)


@pytest.mark.parametrize(
    ("orientation", "stored_rotation"),
    [(6, cv2.ROTATE_90_COUNTERCLOCKWISE), (8, cv2.ROTATE_90_CLOCKWISE), (3, cv2.ROTATE_180)],
)
def test_load_image_exif_orientation(tmp_path, real_photo_paths, orientation, stored_rotation):
    upright = cv2.imread(str(real_photo_paths[2]))
    ok, encoded = cv2.imencode(".jpg", cv2.rotate(upright, stored_rotation), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    path = tmp_path / f"orientation{orientation}.jpg"
    path.write_bytes(with_exif_orientation(encoded.tobytes(), orientation))

    frame = load_image(path)
    assert frame.shape == upright.shape
    difference = np.abs(frame.astype(np.int16) - upright.astype(np.int16)).mean()
    assert difference < 4.0  # JPEG re-encoding noise only


def test_decode_image_corrupt_bytes(real_photo_paths):
    noise = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    with pytest.raises(ImageDecodeError, match=r"noise.jpg: not a decodable image \(5000 bytes\)"):
        decode_image(noise, "noise.jpg")


def test_load_image_empty_file(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageDecodeError, match=r"empty.jpg: the file is empty \(0 bytes\); re-copy"):
        load_image(empty)


def test_load_image_truncated_jpeg(tmp_path, real_photo_paths):
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(real_photo_paths[3].read_bytes()[:400])
    with pytest.raises(ImageDecodeError, match="truncated.jpg: not a decodable image.*corrupt, truncated"):
        load_image(truncated)


def test_load_image_text_named_jpg(tmp_path):
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is not a photo\n")
    with pytest.raises(ImageDecodeError, match="notes.jpg: not a decodable image"):
        load_image(fake)


def test_load_image_missing(tmp_path):
    with pytest.raises(ImageDecodeError, match="missing.jpg: image file not found"):
        load_image(tmp_path / "missing.jpg")


def test_load_image_folder(tmp_path):
    with pytest.raises(ImageDecodeError, match="is a folder, not an image file"):
        load_image(tmp_path)


def test_load_image_above_byte_limit(monkeypatch, real_photo_paths):
    monkeypatch.setenv("EDGECOUNT_MAX_IMAGE_BYTES", "1000")
    with pytest.raises(ImageDecodeError, match=r"above the limit of 1,000 bytes; downscale it or raise EDGECOUNT_MAX_IMAGE_BYTES"):
        load_image(real_photo_paths[0])


def test_load_image_bad_byte_limit(monkeypatch, real_photo_paths):
    monkeypatch.setenv("EDGECOUNT_MAX_IMAGE_BYTES", "64MB")
    with pytest.raises(ImageDecodeError, match="EDGECOUNT_MAX_IMAGE_BYTES must be a whole number of bytes, got '64MB'"):
        load_image(real_photo_paths[0])


def test_load_image_above_pixel_limit(tmp_path):
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_declaring(20_000, 20_000))
    assert huge.stat().st_size < 200_000
    with pytest.raises(ImageDecodeError, match=f"huge.png: the file declares 20000x20000 pixels, above the limit of {MAX_IMAGE_PIXELS:,}"):
        load_image(huge)


def test_read_declared_size_real_jpeg_and_png(tmp_path, real_photo_paths):
    bgr = cv2.imread(str(real_photo_paths[4]))
    height, width = bgr.shape[:2]
    assert read_declared_size(real_photo_paths[4].read_bytes()[:65536]) == (width, height)
    assert read_declared_size(cv2.imencode(".png", bgr)[1].tobytes()[:64]) == (width, height)
    assert read_declared_size(b"BM") is None


def test_collect_image_paths_folder_skips_non_images(tmp_path, real_photo_paths):
    for photo in real_photo_paths[:2]:
        (tmp_path / photo.name).write_bytes(photo.read_bytes())
    (tmp_path / "README.txt").write_text("photos from the party")
    paths, unmatched = collect_image_paths([str(tmp_path)])
    assert sorted(p.name for p in paths) == sorted(p.name for p in real_photo_paths[:2])
    assert unmatched == []


def test_collect_image_paths_unmatched(tmp_path, real_photo_paths):
    inputs = [str(tmp_path / "nothing-*.jpg"), str(tmp_path / "missing.jpg"), str(real_photo_paths[0])]
    paths, unmatched = collect_image_paths(inputs)
    assert paths == [real_photo_paths[0]]
    assert unmatched == inputs[:2]


def test_collect_image_paths_deduplicates(real_photo_paths):
    photo = str(real_photo_paths[0])
    paths, _ = collect_image_paths([photo, photo, str(Path(photo).parent / "." / Path(photo).name)])
    assert len(paths) == 1
