"""Finding a run's split images after the dataset folder moved, on real photos copied to tmp_path."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from edgecount.datasets import SplitImagesNotFoundError, locate_split
from edgecount.runs import RUN_FILE, SPLIT_FILE, RunDir, RunDirError, Sample, write_json_atomically, write_split


def _make_run(tmp_path: Path, av_faces_dir: Path, av_labels, images: int = 8, record_dir: bool = True) -> tuple[RunDir, Path]:
    """Copy real photos to ``tmp_path/old/images`` and write a run folder whose split points at them."""
    old = tmp_path / "old"
    (old / "images").mkdir(parents=True)
    samples = []
    for name, count in av_labels[:images]:
        shutil.copy(av_faces_dir / "images" / name, old / "images" / name)
        samples.append(Sample(old / "images" / name, float(count)))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_split(run_dir / SPLIT_FILE, samples[2:], samples[:2])
    write_json_atomically(run_dir / RUN_FILE, {"data": {"dir": str(old.resolve())}} if record_dir else {})
    return RunDir(run_dir), old


def test_locate_split_recorded_paths(tmp_path: Path, av_faces_dir: Path, av_labels):
    run, old = _make_run(tmp_path, av_faces_dir, av_labels)

    split = locate_split(run, tmp_path / "elsewhere")

    assert split.status == "recorded"
    assert not split.relocated
    assert split.samples("train") == run.samples("train")
    assert split.samples("validation") == run.samples("validation")


def test_locate_split_relative_to_recorded_dir(tmp_path: Path, av_faces_dir: Path, av_labels):
    run, old = _make_run(tmp_path, av_faces_dir, av_labels)
    new = old.rename(tmp_path / "new")

    split = locate_split(run, new)

    assert split.relocated
    assert split.data_dir == new
    assert [sample.path for sample in split.samples("train")] == [new / "images" / sample.path.name for sample in run.samples("train")]
    assert [sample.count for sample in split.samples("validation")] == [sample.count for sample in run.samples("validation")]


def test_locate_split_by_file_name(tmp_path: Path, av_faces_dir: Path, av_labels):
    # No dataset folder in run.json, and --data names the image folder itself: only file names match.
    run, old = _make_run(tmp_path, av_faces_dir, av_labels, record_dir=False)
    new = old.rename(tmp_path / "new")

    split = locate_split(run, new / "images")

    assert split.relocated
    assert all(sample.path.parent == new / "images" for sample in split.samples("train") + split.samples("validation"))
    assert len(split.samples("train")) == 6


def test_locate_split_leaves_out_missing_images(tmp_path: Path, av_faces_dir: Path, av_labels, caplog: pytest.LogCaptureFixture):
    run, old = _make_run(tmp_path, av_faces_dir, av_labels)
    new = old.rename(tmp_path / "new")
    deleted = run.samples("train")[0].path.name
    (new / "images" / deleted).unlink()

    with caplog.at_level(logging.WARNING, logger="edgecount.datasets"):
        split = locate_split(run, new)

    assert len(split.samples("train")) == 5
    assert deleted not in [sample.path.name for sample in split.samples("train")]
    assert any("1 of the 8 images" in record.getMessage() and deleted in record.getMessage() for record in caplog.records)


def test_locate_split_ambiguous_name_is_missing(tmp_path: Path, av_faces_dir: Path, av_labels):
    run, old = _make_run(tmp_path, av_faces_dir, av_labels, record_dir=False)
    new = old.rename(tmp_path / "new")
    twice = run.samples("validation")[0].path.name
    (new / "copy").mkdir()
    shutil.copy(new / "images" / twice, new / "copy" / twice)

    split = locate_split(run, new)

    assert len(split.samples("validation")) == 1
    assert twice not in [sample.path.name for sample in split.samples("validation")]


def test_locate_split_moved_without_data(tmp_path: Path, av_faces_dir: Path, av_labels):
    run, old = _make_run(tmp_path, av_faces_dir, av_labels)
    old.rename(tmp_path / "new")

    split = locate_split(run)

    assert split.status == "missing"
    with pytest.raises(SplitImagesNotFoundError) as caught:
        split.samples("validation")
    message = str(caught.value)
    assert "none of the 8 images" in message
    assert str(run.samples("train")[0].path) in message
    assert f"If the dataset folder ({old.resolve()}) moved" in message
    assert "--data NEWDIR" in message


def test_locate_split_wrong_data_folder(tmp_path: Path, av_faces_dir: Path, av_labels):
    run, old = _make_run(tmp_path, av_faces_dir, av_labels)
    old.rename(tmp_path / "new")
    wrong = tmp_path / "wrong"
    wrong.mkdir()

    with pytest.raises(SplitImagesNotFoundError) as caught:
        locate_split(run, wrong).samples("train")
    message = str(caught.value)
    first = run.samples("train")[0].path
    assert f"is under {wrong}" in message
    assert f"{first} is not at {wrong / 'images' / first.name}" in message
    assert f"no file under {wrong} is named {first.name}" in message
    assert f"recorded as {old.resolve()}" in message


def test_locate_split_wrong_data_without_recorded_dir(tmp_path: Path, av_faces_dir: Path, av_labels):
    run, old = _make_run(tmp_path, av_faces_dir, av_labels, record_dir=False)
    old.rename(tmp_path / "new")
    wrong = tmp_path / "wrong"
    wrong.mkdir()

    with pytest.raises(SplitImagesNotFoundError) as caught:
        locate_split(run, wrong).samples("validation")
    message = str(caught.value)
    first = run.samples("train")[0].path
    assert f"no file under {wrong} is named {first.name} (recorded as {first})" in message
    assert "run.json" not in message


def test_run_split_rejects_unknown_subset(tmp_path: Path, av_faces_dir: Path, av_labels):
    run, _ = _make_run(tmp_path, av_faces_dir, av_labels, images=3)

    with pytest.raises(ValueError, match="'test'"):
        locate_split(run).samples("test")


def test_locate_split_without_split_file(tmp_path: Path, av_faces_dir: Path, av_labels):
    run, old = _make_run(tmp_path, av_faces_dir, av_labels, images=3)
    (run.path / SPLIT_FILE).unlink()

    split = locate_split(run, old)

    assert split.status == "missing"
    assert not split.relocated
    with pytest.raises(SplitImagesNotFoundError, match="split.csv not found"):
        split.samples("train")
    with pytest.raises(RunDirError, match="split.csv not found"):
        locate_split(run)
