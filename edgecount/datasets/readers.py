"""Readers for labelled face-count folders: detect the layout, parse the CSV files, skip bad rows.

Three layouts are recognised, checked in this order:

- ``labels-csv``: ``labels.csv`` (``image,count``) with the images in ``images/`` (or beside the CSV),
  and optionally ``boxes.csv`` (``image,xmin,ymin,xmax,ymax``, one row per face);
- ``challenge``: the Analytics Vidhya face counting challenge download, ``train.csv``
  (``Name,HeadCount``) with the images in ``image_data/``, and optionally ``bbox_train.csv``
  (``Name,width,height,xmin,ymin,xmax,ymax``);
- ``boxes-only``: ``boxes.csv`` or ``bbox_train.csv`` without a count file; the count of an image is
  the number of its box rows.
"""

from __future__ import annotations

import csv
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecount.runs import Sample
from edgecount.runtime.errors import EdgecountError

_log = logging.getLogger(__name__)

# Skipped rows are logged one warning each up to this many, then only counted, so that a broken
# 100,000-row file does not flood the terminal. Every message stays in ``LabelledDataset.skipped``.
MAX_LOGGED_SKIPS = 50


class DatasetError(EdgecountError, ValueError):
    """A dataset row or file is invalid and ``strict`` mode is on, or no usable images remain."""


class DatasetNotFoundError(EdgecountError, FileNotFoundError):
    """The dataset folder is missing or contains none of the recognised layouts."""


@dataclass(frozen=True)
class Layout:
    """One recognised folder layout: the file names and the columns that hold the name and count."""

    format: str
    counts_file: str | None
    name_column: str
    count_column: str | None
    boxes_file: str
    image_dirs: tuple[str, ...]


LAYOUTS = (
    Layout("labels-csv", "labels.csv", "image", "count", "boxes.csv", ("images", ".")),
    Layout("challenge", "train.csv", "Name", "HeadCount", "bbox_train.csv", ("image_data", "images", ".")),
)
BOX_COLUMNS = ("xmin", "ymin", "xmax", "ymax")


@dataclass
class LabelledDataset:
    """Labelled images of one folder, after skipping bad rows.

    Attributes:
        samples: one ``Sample(path, count)`` per usable image, sorted by path.
        boxes: face boxes per image path, each an (N, 4) float32 array of ``xmin, ymin, xmax, ymax`` in
            pixels of the original image. The mapping is empty when the folder has no box file.
        skipped: one message per skipped row or image.
        format: ``"labels-csv"``, ``"challenge"`` or ``"boxes-only"``.
        data_dir: the dataset folder.
        strict: whether a bad row or image raises ``DatasetError`` instead of being skipped.
    """

    samples: list[Sample]
    boxes: dict[Path, np.ndarray]
    skipped: list[str]
    format: str
    data_dir: Path
    strict: bool = False
    _logged_skips: int = field(default=0, repr=False)

    def reject(self, path: Path, reason: str) -> None:
        """Drop an image found unusable after loading, for example one that fails to decode.

        Args:
            path: the image path as it appears in ``samples``.
            reason: why it is unusable, for the message.

        Raises:
            DatasetError: in strict mode, naming the image and the reason.
        """
        # Decode errors from the runtime already start with the image path.
        message = reason if reason.startswith(f"{path}:") else f"{path}: {reason}"
        if self.strict:
            raise DatasetError(f"{message} (strict mode; drop --strict to skip such images)")
        self.samples = [sample for sample in self.samples if sample.path != path]
        self.boxes.pop(path, None)
        self.skipped.append(message)
        _log_skip(self, message)

    def summary(self) -> dict[str, Any]:
        """Return the dataset statistics stored in ``run.json``: images, faces, counts, skipped rows."""
        counts = np.array([sample.count for sample in self.samples], dtype=np.float64)
        histogram = Counter(int(count) for count in counts)
        return {
            "dir": str(self.data_dir.resolve()),
            "format": self.format,
            "images": len(self.samples),
            "faces": int(counts.sum()) if counts.size else 0,
            "count_mean": round(float(counts.mean()), 4) if counts.size else None,
            "count_min": int(counts.min()) if counts.size else None,
            "count_max": int(counts.max()) if counts.size else None,
            "count_histogram": {str(count): histogram[count] for count in sorted(histogram)},
            "skipped": len(self.skipped),
            "skipped_rows": self.skipped[:20],
        }


def load_dataset(data_dir: Path, strict: bool = False) -> LabelledDataset:
    """Read a labelled face-count folder in any of the recognised layouts.

    These rows are bad: a missing or empty image file, a count that is not a non-negative integer, a
    duplicate image name, a short row, a box row with invalid coordinates, and box rows that disagree
    with the count. Each is skipped with one logged warning and one message in ``skipped``, so one bad
    file never stops a run. Images are only checked for existence and a non-zero size here. Decoding is
    left to the caller, which passes undecodable images to ``LabelledDataset.reject``.

    Args:
        data_dir: the dataset folder.
        strict: raise ``DatasetError`` on the first bad row instead of skipping it. Default False.

    Returns:
        The dataset, with samples sorted by path.

    Raises:
        DatasetNotFoundError: if the folder is missing or contains none of the layouts.
        DatasetError: if a count file lacks its columns, no usable image remains, or (strict) any row
            is bad.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DatasetNotFoundError(f"dataset folder {data_dir} not found; pass the folder that contains labels.csv")
    layout, boxes_only = _detect_layout(data_dir)
    dataset = LabelledDataset([], {}, [], "boxes-only" if boxes_only else layout.format, data_dir, strict)
    image_dir = _find_image_dir(data_dir, layout)

    # Boxes first, because boxes-only counts come from them and the other layouts check counts against them.
    boxes_path = data_dir / layout.boxes_file
    box_file = _read_boxes(boxes_path, layout, dataset, boxes_only) if boxes_path.is_file() else None
    boxes_by_name, invalid_boxes = box_file if box_file is not None else ({}, set())
    if boxes_only:
        if not boxes_by_name:
            raise DatasetError(f"{boxes_path} has no usable box rows, so no image has a count")
        # NOTE: a box file lists only images with at least one face, so boxes-only data never has count 0.
        counts = {name: (float(len(boxes)), None) for name, boxes in boxes_by_name.items() if name not in invalid_boxes}
        counts_path = boxes_path
    else:
        counts_path = data_dir / layout.counts_file
        counts = _read_counts(counts_path, layout, dataset)
        unlabelled = set(boxes_by_name) - set(counts)
        if unlabelled:
            _skip(dataset, boxes_path, None, f"{len(unlabelled)} images have boxes but no count row; their boxes are ignored")

    # Join counts, image files and boxes.
    for name, (count, line) in counts.items():
        path = image_dir / name
        try:
            size = path.stat().st_size
        except OSError:
            _skip(dataset, counts_path, line, f"image {path} not found")
            continue
        if size == 0 or not path.is_file():
            _skip(dataset, counts_path, line, f"image {path} is empty or not a file")
            continue
        boxes = boxes_by_name.get(name, np.zeros((0, 4), np.float32))
        if box_file is not None and not boxes_only:
            if name in invalid_boxes:
                _skip(dataset, counts_path, line, f"{name} has an invalid row in {boxes_path.name}, so its count cannot be checked")
                continue
            if len(boxes) != count:
                _skip(dataset, counts_path, line, f"{name} has count {count:g} but {len(boxes)} rows in {boxes_path.name}")
                continue
        if box_file is not None:
            dataset.boxes[path] = boxes
        dataset.samples.append(Sample(path, count))

    dataset.samples.sort(key=lambda sample: str(sample.path))
    if not dataset.samples:
        raise DatasetError(f"no usable labelled images in {data_dir} ({len(dataset.skipped)} rows skipped); see the warnings above")
    if dataset.skipped:
        _log.warning("skipped %d rows or files in %s; %d images are usable", len(dataset.skipped), data_dir, len(dataset.samples))
    return dataset


def _detect_layout(data_dir: Path) -> tuple[Layout, bool]:
    for layout in LAYOUTS:
        if (data_dir / layout.counts_file).is_file():
            return layout, False
    for layout in LAYOUTS:
        if (data_dir / layout.boxes_file).is_file():
            return layout, True
    looked_for = "; ".join(
        f"{layout.counts_file} ({layout.name_column},{layout.count_column}) with images in {layout.image_dirs[0]}/"
        for layout in LAYOUTS
    )
    raise DatasetNotFoundError(
        f"{data_dir} contains no labelled dataset. Looked for: {looked_for}; or a box file alone "
        f"({' or '.join(layout.boxes_file for layout in LAYOUTS)}, one row per face)"
    )


def _find_image_dir(data_dir: Path, layout: Layout) -> Path:
    for name in layout.image_dirs:
        if (data_dir / name).is_dir() and name != ".":
            return data_dir / name
    return data_dir


def _read_rows(path: Path, required: tuple[str, ...], dataset: LabelledDataset) -> list[tuple[int, dict[str, str]]] | None:
    """Read a CSV file as ``(line number, row)`` pairs; None (or DatasetError) if it is empty or lacks columns."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [column.strip() for column in reader.fieldnames or []]
            if not columns:
                _skip(dataset, path, None, "the file is empty")
                return None
            missing = [column for column in required if column not in columns]
            if missing:
                _skip(dataset, path, None, f"missing columns {', '.join(missing)} (has {', '.join(columns)})")
                return None
            reader.fieldnames = columns
            return [(reader.line_num, row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DatasetError(f"{path}: cannot read the CSV file ({error})") from error


def _read_counts(path: Path, layout: Layout, dataset: LabelledDataset) -> dict[str, tuple[float, int | None]]:
    rows = _read_rows(path, (layout.name_column, layout.count_column), dataset)
    if rows is None:
        raise DatasetError(
            f"{path} has no usable header; it must start with the columns {layout.name_column},{layout.count_column}"
        )
    counts: dict[str, tuple[float, int | None]] = {}
    for line, row in rows:
        name = (row.get(layout.name_column) or "").strip()
        text = (row.get(layout.count_column) or "").strip()
        if not name or not text:
            _skip(dataset, path, line, f"empty {layout.name_column} or {layout.count_column} field")
            continue
        count = _parse_count(text)
        if count is None:
            _skip(dataset, path, line, f"{name}: count {text!r} is not a non-negative integer")
            continue
        if name in counts:
            _skip(dataset, path, line, f"{name}: duplicate image name (first on line {counts[name][1]}); keeping the first")
            continue
        counts[name] = (count, line)
    return counts


def _read_boxes(
    path: Path, layout: Layout, dataset: LabelledDataset, boxes_only: bool
) -> tuple[dict[str, np.ndarray], set[str]] | None:
    """Read a box file into ``({name: (N, 4) boxes}, {names with an invalid box row})``, or None if unusable.

    With ``boxes_only`` the warning for an invalid row also states that its image is skipped, because
    the caller drops every image in the returned set.
    """
    rows = _read_rows(path, (layout.name_column, *BOX_COLUMNS), dataset)
    if rows is None:
        return None
    boxes: dict[str, list[list[float]]] = {}
    invalid: set[str] = set()
    for line, row in rows:
        name = (row.get(layout.name_column) or "").strip()
        try:
            box = [float(row[column]) for column in BOX_COLUMNS]
        except (TypeError, ValueError):
            box = []
        if not name or len(box) != 4 or not all(map(math.isfinite, box)) or box[2] < box[0] or box[3] < box[1]:
            values = ",".join(str(row.get(column)) for column in BOX_COLUMNS)
            reason = f"{name or '<no name>'}: invalid box {values}; expected xmin<=xmax and ymin<=ymax"
            if name and boxes_only:
                reason += (
                    f"; image {name} is skipped, because without a count file its count is its number of box "
                    "rows, which would be wrong without this row"
                )
            _skip(dataset, path, line, reason)
            if name:
                invalid.add(name)
            continue
        boxes.setdefault(name, []).append(box)
    return {name: np.array(rows, dtype=np.float32).reshape(-1, 4) for name, rows in boxes.items()}, invalid


def _parse_count(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0 or value != int(value):
        return None
    return float(int(value))


def _skip(dataset: LabelledDataset, path: Path, line: int | None, reason: str) -> None:
    where = f"{path}, line {line}" if line is not None else str(path)
    message = f"{where}: {reason}"
    if dataset.strict:
        raise DatasetError(f"{message} (strict mode; drop --strict to skip bad rows)")
    dataset.skipped.append(message)
    _log_skip(dataset, message)


def _log_skip(dataset: LabelledDataset, message: str) -> None:
    dataset._logged_skips += 1
    if dataset._logged_skips <= MAX_LOGGED_SKIPS:
        _log.warning("skipped %s", message)
    elif dataset._logged_skips == MAX_LOGGED_SKIPS + 1:
        _log.warning("more rows skipped; the rest are counted in run.json without a warning each")
