"""Dataset layouts and bad rows, on small CSV files written in tmp_path that point at real photos."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgecount.datasets import DatasetError, DatasetNotFoundError, load_dataset


def _boxes_of(av_faces_dir: Path) -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    with open(av_faces_dir / "boxes.csv") as handle:
        next(handle)
        for line in handle:
            name = line.split(",", 1)[0]
            rows.setdefault(name, []).append(line.strip())
    return rows


@pytest.fixture(scope="module")
def av_boxes(av_faces_dir: Path) -> dict[str, list[str]]:
    return _boxes_of(av_faces_dir)


def _link_images(av_faces_dir: Path, folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        os.symlink(av_faces_dir / "images" / name, folder / name)


@pytest.fixture
def labels_dir(tmp_path: Path, av_faces_dir: Path, av_labels, av_boxes) -> Path:
    """A labels-csv folder with 6 real photos, their counts and their boxes."""
    rows = av_labels[:6]
    _link_images(av_faces_dir, tmp_path / "images", [name for name, _ in rows])
    (tmp_path / "labels.csv").write_text("image,count\n" + "".join(f"{name},{count}\n" for name, count in rows))
    box_lines = [line for name, _ in rows for line in av_boxes[name]]
    (tmp_path / "boxes.csv").write_text("image,xmin,ymin,xmax,ymax\n" + "\n".join(box_lines) + "\n")
    return tmp_path


def test_load_dataset_labels_csv_layout(labels_dir: Path, av_labels):
    dataset = load_dataset(labels_dir)
    assert dataset.format == "labels-csv"
    assert [sample.path.name for sample in dataset.samples] == sorted(name for name, _ in av_labels[:6])
    assert {sample.path.name: sample.count for sample in dataset.samples} == {name: float(count) for name, count in av_labels[:6]}
    assert dataset.skipped == []
    for sample in dataset.samples:
        boxes = dataset.boxes[sample.path]
        assert boxes.dtype == np.float32
        assert boxes.shape == (sample.count, 4)


def test_load_dataset_labels_csv_without_boxes(labels_dir: Path):
    (labels_dir / "boxes.csv").unlink()
    dataset = load_dataset(labels_dir)
    assert dataset.boxes == {}
    assert len(dataset.samples) == 6


def test_load_dataset_real_av_faces(av_faces_dir: Path):
    dataset = load_dataset(av_faces_dir)
    summary = dataset.summary()
    assert summary["images"] == 2800
    assert summary["faces"] == 11896
    assert summary["count_min"] == 1
    assert summary["count_max"] == 29
    assert summary["skipped"] == 0
    assert sum(summary["count_histogram"].values()) == 2800


def test_load_dataset_challenge_layout(tmp_path: Path, av_faces_dir: Path, av_labels, av_boxes):
    rows = av_labels[:5]
    _link_images(av_faces_dir, tmp_path / "image_data", [name for name, _ in rows])
    (tmp_path / "train.csv").write_text("Name,HeadCount\n" + "".join(f"{name},{count}\n" for name, count in rows))
    lines = ["Name,width,height,xmin,ymin,xmax,ymax"]
    for name, _ in rows:
        for line in av_boxes[name]:
            _, xmin, ymin, xmax, ymax = line.split(",")
            lines.append(f"{name},612,408,{xmin},{ymin},{xmax},{ymax}")
    (tmp_path / "bbox_train.csv").write_text("\n".join(lines) + "\n")

    dataset = load_dataset(tmp_path)
    assert dataset.format == "challenge"
    assert {sample.path.name: sample.count for sample in dataset.samples} == {name: float(count) for name, count in rows}
    assert all(sample.path.parent == tmp_path / "image_data" for sample in dataset.samples)
    assert sum(len(boxes) for boxes in dataset.boxes.values()) == sum(count for _, count in rows)


@pytest.mark.parametrize("box_file, header, image_folder", [
    ("boxes.csv", "image,xmin,ymin,xmax,ymax", "images"),
    ("bbox_train.csv", "Name,width,height,xmin,ymin,xmax,ymax", "image_data"),
])
def test_load_dataset_boxes_only_counts_rows(tmp_path: Path, av_faces_dir: Path, av_labels, av_boxes, box_file, header, image_folder):
    rows = av_labels[10:14]
    _link_images(av_faces_dir, tmp_path / image_folder, [name for name, _ in rows])
    lines = [header]
    for name, _ in rows:
        for line in av_boxes[name]:
            coordinates = line.split(",", 1)[1]
            lines.append(f"{name},612,408,{coordinates}" if box_file == "bbox_train.csv" else f"{name},{coordinates}")
    (tmp_path / box_file).write_text("\n".join(lines) + "\n")

    dataset = load_dataset(tmp_path)
    assert dataset.format == "boxes-only"
    assert {sample.path.name: sample.count for sample in dataset.samples} == {name: float(count) for name, count in rows}


def test_load_dataset_boxes_only_invalid_box_skips_image(tmp_path: Path, av_faces_dir: Path, av_labels, av_boxes,
                                                         caplog: pytest.LogCaptureFixture):
    rows = [(name, count) for name, count in av_labels if count >= 2][:4]
    victim = rows[1][0]
    _link_images(av_faces_dir, tmp_path / "images", [name for name, _ in rows])
    lines = ["image,xmin,ymin,xmax,ymax"]
    for name, _ in rows:
        lines.extend(av_boxes[name])
    # xmax below xmin on the victim's first box row, which is line 2 + the rows of the image before it.
    bad_line = 2 + len(av_boxes[rows[0][0]])
    lines[bad_line - 1] = f"{victim},50,10,20,40"
    (tmp_path / "boxes.csv").write_text("\n".join(lines) + "\n")

    with caplog.at_level(logging.WARNING, logger="edgecount.datasets"):
        dataset = load_dataset(tmp_path)

    assert [sample.path.name for sample in dataset.samples] == sorted(name for name, _ in rows if name != victim)
    assert len(dataset.skipped) == 1
    message = dataset.skipped[0]
    assert f"boxes.csv, line {bad_line}" in message
    assert f"image {victim} is skipped" in message
    assert "count is its number of box rows" in message
    assert any(f"image {victim} is skipped" in record.getMessage() for record in caplog.records)


def test_load_dataset_missing_folder(tmp_path: Path):
    with pytest.raises(DatasetNotFoundError, match="not found"):
        load_dataset(tmp_path / "nowhere")


def test_load_dataset_unknown_layout_lists_files(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset(tmp_path)
    message = str(caught.value)
    for expected in ("labels.csv", "train.csv", "boxes.csv", "bbox_train.csv", "image_data/"):
        assert expected in message


# Each bad row kind: (edit to the labels-csv folder, message fragment).
def _missing_image(folder: Path) -> None:
    _append(folder / "labels.csv", "absent.jpg,3")


def _empty_image(folder: Path) -> None:
    (folder / "images" / "empty.jpg").write_bytes(b"")
    _append(folder / "labels.csv", "empty.jpg,2")


def _non_integer_count(folder: Path) -> None:
    _relabel(folder, 0, "2.5")


def _negative_count(folder: Path) -> None:
    _relabel(folder, 0, "-1")


def _text_count(folder: Path) -> None:
    _relabel(folder, 0, "many")


def _duplicate_name(folder: Path) -> None:
    first = (folder / "labels.csv").read_text().splitlines()[1]
    _append(folder / "labels.csv", first)


def _short_row(folder: Path) -> None:
    _append(folder / "labels.csv", "lonely.jpg")


def _box_count_mismatch(folder: Path) -> None:
    lines = (folder / "boxes.csv").read_text().splitlines()
    (folder / "boxes.csv").write_text("\n".join(lines[:-1]) + "\n")


def _invalid_box(folder: Path) -> None:
    lines = (folder / "boxes.csv").read_text().splitlines()
    name = lines[1].split(",")[0]
    lines[1] = f"{name},50,50,10,10"
    (folder / "boxes.csv").write_text("\n".join(lines) + "\n")


def _empty_boxes_file(folder: Path) -> None:
    (folder / "boxes.csv").write_text("")


def _boxes_missing_columns(folder: Path) -> None:
    (folder / "boxes.csv").write_text("image,x,y\na.jpg,1,2\n")


def _append(path: Path, line: str) -> None:
    with open(path, "a") as handle:
        handle.write(line + "\n")


def _relabel(folder: Path, row: int, value: str) -> None:
    lines = (folder / "labels.csv").read_text().splitlines()
    name = lines[row + 1].split(",")[0]
    lines[row + 1] = f"{name},{value}"
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")


BAD_ROWS = [
    (_missing_image, 6, "absent.jpg not found"),
    (_empty_image, 6, "empty or not a file"),
    (_non_integer_count, 5, "'2.5' is not a non-negative integer"),
    (_negative_count, 5, "'-1' is not a non-negative integer"),
    (_text_count, 5, "'many' is not a non-negative integer"),
    (_duplicate_name, 6, "duplicate image name"),
    (_short_row, 6, "empty image or count field"),
    (_box_count_mismatch, 5, "rows in boxes.csv"),
    (_invalid_box, 5, "invalid box"),
    (_empty_boxes_file, 6, "the file is empty"),
    (_boxes_missing_columns, 6, "missing columns xmin, ymin, xmax, ymax"),
]


@pytest.mark.parametrize("edit, usable, fragment", BAD_ROWS, ids=[edit.__name__.strip("_") for edit, _, _ in BAD_ROWS])
def test_load_dataset_skips_bad_row(labels_dir: Path, caplog: pytest.LogCaptureFixture, edit, usable, fragment):
    edit(labels_dir)
    with caplog.at_level(logging.WARNING, logger="edgecount.datasets"):
        dataset = load_dataset(labels_dir)
    assert len(dataset.samples) == usable
    assert any(fragment in message for message in dataset.skipped), dataset.skipped
    assert any(fragment in record.getMessage() for record in caplog.records)
    assert any("images are usable" in record.getMessage() for record in caplog.records)
    assert dataset.summary()["skipped"] == len(dataset.skipped)


@pytest.mark.parametrize("edit, usable, fragment", BAD_ROWS, ids=[edit.__name__.strip("_") for edit, _, _ in BAD_ROWS])
def test_load_dataset_strict_fails_on_bad_row(labels_dir: Path, edit, usable, fragment):
    edit(labels_dir)
    with pytest.raises(DatasetError) as caught:
        load_dataset(labels_dir, strict=True)
    message = str(caught.value)
    assert fragment in message
    assert "strict" in message
    assert ".csv" in message


def test_load_dataset_strict_names_line(labels_dir: Path):
    _relabel(labels_dir, 2, "x")
    with pytest.raises(DatasetError, match=r"labels\.csv, line 4: .*'x'"):
        load_dataset(labels_dir, strict=True)


@pytest.mark.parametrize("content, fragment", [
    ("", "no usable header"),
    ("image,faces\na.jpg,3\n", "no usable header"),
    ("image,count\n", "no usable labelled images"),
])
def test_load_dataset_unusable_labels_file(labels_dir: Path, content: str, fragment: str):
    (labels_dir / "labels.csv").write_text(content)
    with pytest.raises(DatasetError, match=fragment):
        load_dataset(labels_dir)


def test_load_dataset_all_rows_bad(labels_dir: Path):
    shutil.rmtree(labels_dir / "images")
    with pytest.raises(DatasetError, match=r"no usable labelled images .*\(6 rows skipped\)"):
        load_dataset(labels_dir)


def test_reject_drops_undecodable_image(labels_dir: Path):
    dataset = load_dataset(labels_dir)
    victim = dataset.samples[2].path
    dataset.reject(victim, "not a decodable image")
    assert victim not in [sample.path for sample in dataset.samples]
    assert victim not in dataset.boxes
    assert dataset.skipped == [f"{victim}: not a decodable image"]


def test_reject_names_image_once(labels_dir: Path):
    """A decode error from the runtime already starts with the path, so the message does not repeat it."""
    dataset = load_dataset(labels_dir)
    victim = dataset.samples[1].path
    dataset.reject(victim, f"{victim}: not a decodable image (3000 bytes)")
    assert dataset.skipped == [f"{victim}: not a decodable image (3000 bytes)"]


def test_reject_strict_raises(labels_dir: Path):
    dataset = load_dataset(labels_dir, strict=True)
    with pytest.raises(DatasetError, match="not a decodable image"):
        dataset.reject(dataset.samples[0].path, "not a decodable image")


def test_load_dataset_accepts_bom_and_integral_float(labels_dir: Path):
    text = (labels_dir / "labels.csv").read_text()
    lines = text.splitlines()
    name = lines[1].split(",")[0]
    count = lines[1].split(",")[1]
    lines[1] = f"{name},{count}.0"
    (labels_dir / "labels.csv").write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    dataset = load_dataset(labels_dir)
    assert len(dataset.samples) == 6
    assert dataset.skipped == []
