"""Converting a run: which images a conversion evaluates on, and the warnings while reading them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edgecount.datasets import locate_split
from edgecount.reports.conversion import _evaluation_samples
from edgecount.runs import RunDir


def test_conversion_evaluation_samples_warn_once(tiny_run: Path, tmp_path: Path, av_faces_dir: Path, av_labels,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "labels.csv").write_text("image,count\n" + "".join(f"{name},{count}\n" for name, count in av_labels[:3]) + "bad.jpg,many\n")
    (data / "images").symlink_to(av_faces_dir / "images")
    run = RunDir(tiny_run)

    with caplog.at_level(logging.WARNING):
        samples, source = _evaluation_samples(run, locate_split(run, data), data)

    assert len(samples) == 3
    assert source == f"labelled dataset {data}"
    assert sum("'many' is not a non-negative integer" in record.getMessage() for record in caplog.records) == 1


def test_conversion_evaluation_samples_moved_dataset(moved_run: tuple[Path, Path, Path]) -> None:
    run_dir, _, new = moved_run
    run = RunDir(run_dir)

    samples, source = _evaluation_samples(run, locate_split(run, new), new)

    assert [sample.path for sample in samples] == [new / "images" / sample.path.name for sample in run.samples("validation")]
    assert source == f"validation split of {run_dir}, images read from {new}"
