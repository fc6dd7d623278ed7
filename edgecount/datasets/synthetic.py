"""A small synthetic labelled dataset, built from images that scikit-image ships, for the demo.

No face photos may be shipped with edgecount, so ``edgecount demo`` without ``--data`` composites the
100 face crops of scikit-image's LFW subset onto its bundled photos that show no human face. Every
face placed is recorded as a box, so the counts are known by construction. The 100 non-face crops of
the same subset are pasted as distractors, so a model must tell faces from other patches.

The set only checks that the whole pipeline runs. Its photos are not group photos, so a model trained
on it does not count faces in real photos.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

_log = logging.getLogger(__name__)

# scikit-image photos bundled in the wheel that show no human face (``astronaut`` and ``camera`` do).
BACKGROUNDS = ("coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "brick", "grass", "gravel", "moon", "coins", "clock", "page")
IMAGE_SIZE = (240, 320)  # height, width of each generated photo
FACE_SIZES = (28, 64)  # side in pixels of a pasted face crop, drawn uniformly
MAX_FACES = 8


@dataclass(frozen=True)
class SyntheticSummary:
    """Folder, image count and face count of a dataset written by ``write_synthetic_dataset``."""

    folder: Path
    images: int
    faces: int


def _load_skimage():
    try:
        from skimage import data
    except ImportError as error:
        from edgecount.runtime.errors import EdgecountError

        raise EdgecountError(
            "the synthetic demo dataset is built from scikit-image's bundled images, and scikit-image is not "
            "installed; install it with: pip install 'edgecount[train]', or pass --data DIR with real photos"
        ) from error
    return data


def _background_bank(data) -> list[np.ndarray]:
    backgrounds = []
    for name in BACKGROUNDS:
        image = np.asarray(getattr(data, name)())
        if image.dtype != np.uint8:
            image = (image.astype(np.float32) * (255.0 / max(float(image.max()), 1.0))).astype(np.uint8)
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        else:
            image = cv2.cvtColor(image[:, :, :3], cv2.COLOR_RGB2BGR)
        backgrounds.append(image)
    return backgrounds


def _random_background(rng: np.random.Generator, bank: list[np.ndarray]) -> np.ndarray:
    source = bank[int(rng.integers(len(bank)))]
    height, width = IMAGE_SIZE
    scale = max(height / source.shape[0], width / source.shape[1]) * float(rng.uniform(1.0, 1.6))
    resized = cv2.resize(source, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top = int(rng.integers(0, resized.shape[0] - height + 1))
    left = int(rng.integers(0, resized.shape[1] - width + 1))
    crop = resized[top : top + height, left : left + width].copy()
    if rng.random() < 0.5:
        crop = crop[:, ::-1].copy()
    # Dim the background so pasted crops keep their contrast.
    return cv2.convertScaleAbs(crop, alpha=float(rng.uniform(0.5, 0.9)), beta=float(rng.uniform(0, 30)))


def _paste(canvas: np.ndarray, crop: np.ndarray, box: tuple[int, int, int, int], rng: np.random.Generator) -> None:
    xmin, ymin, xmax, ymax = box
    patch = cv2.resize(crop, (xmax - xmin, ymax - ymin), interpolation=cv2.INTER_LINEAR)
    tint = rng.uniform(0.8, 1.15, size=3)  # skin-like tints of the grayscale crop
    colored = np.clip(patch[:, :, None].astype(np.float32) * tint, 0, 255).astype(np.uint8)
    canvas[ymin:ymax, xmin:xmax] = colored


def _free_box(rng: np.random.Generator, side: int, taken: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int] | None:
    height, width = IMAGE_SIZE
    for _ in range(50):
        xmin = int(rng.integers(0, width - side))
        ymin = int(rng.integers(0, height - side))
        box = (xmin, ymin, xmin + side, ymin + side)
        if all(box[2] <= t[0] or box[0] >= t[2] or box[3] <= t[1] or box[1] >= t[3] for t in taken):
            return box
    return None


def write_synthetic_dataset(folder: str | Path, images: int = 400, seed: int = 0) -> SyntheticSummary:
    """Write a labelled synthetic dataset in edgecount's ``labels.csv`` + ``images/`` layout.

    Each image gets 0 to 8 faces (uniformly) and 0 to 3 non-face distractor crops, none overlapping.
    The folder also gets ``boxes.csv`` (one row per face) and a ``SOURCE.md`` saying it is synthetic.

    Args:
        folder: where to write; created if missing. Existing files of a previous run are replaced.
        images: how many images to write. Default 400.
        seed: seed of every random choice, so the same arguments write the same files. Default 0.

    Returns:
        The folder and how many images and faces it holds.

    Raises:
        EdgecountError: if scikit-image is not installed.
        ValueError: if ``images`` is below 10.
    """
    if images < 10:
        raise ValueError(f"the synthetic dataset needs at least 10 images, got {images}")
    data = _load_skimage()
    lfw = np.asarray(data.lfw_subset())
    faces, non_faces = lfw[:100], lfw[100:]
    if faces.dtype != np.uint8:
        faces = (faces * 255).astype(np.uint8)
        non_faces = (non_faces * 255).astype(np.uint8)
    bank = _background_bank(data)
    rng = np.random.default_rng(seed)

    folder = Path(folder)
    image_dir = folder / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    label_rows, box_rows = [], []
    for index in range(images):
        canvas = _random_background(rng, bank)
        taken: list[tuple[int, int, int, int]] = []
        face_count = int(rng.integers(0, MAX_FACES + 1))
        for _ in range(face_count):
            box = _free_box(rng, int(rng.integers(*FACE_SIZES)), taken)
            if box is None:
                break
            _paste(canvas, faces[int(rng.integers(len(faces)))], box, rng)
            taken.append(box)
        placed_faces = len(taken)
        for _ in range(int(rng.integers(0, 4))):
            box = _free_box(rng, int(rng.integers(*FACE_SIZES)), taken)
            if box is not None:
                _paste(canvas, non_faces[int(rng.integers(len(non_faces)))], box, rng)
                taken.append(box)

        name = f"synthetic_{index:05d}.jpg"
        if not cv2.imwrite(str(image_dir / name), canvas, [cv2.IMWRITE_JPEG_QUALITY, 92]):
            raise OSError(f"OpenCV could not write {image_dir / name}")
        label_rows.append((name, placed_faces))
        box_rows.extend((name, *box) for box in taken[:placed_faces])

    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["image", "count"])
        writer.writerows(label_rows)
    with open(folder / "boxes.csv", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["image", "xmin", "ymin", "xmax", "ymax"])
        writer.writerows(box_rows)
    (folder / "SOURCE.md").write_text(
        "# Synthetic demo dataset\n\n"
        f"Written by `edgecount demo` (seed {seed}). Face and non-face crops of scikit-image's LFW subset are "
        "pasted onto scikit-image's bundled photos; the count of each image is the number of face crops "
        "pasted, known by construction. Synthetic: a model trained on it does not count faces in real photos.\n"
    )
    total_faces = sum(count for _, count in label_rows)
    _log.info("wrote %d synthetic images with %d faces to %s", images, total_faces, folder)
    return SyntheticSummary(folder, images, total_faces)
