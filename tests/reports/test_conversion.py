"""Converting a run: which images a conversion evaluates on, and the warnings while reading them."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from edgecount.datasets import locate_split
from edgecount.reports.conversion import _evaluation_samples, _metadata
from edgecount.runs import RUN_FILE, RunDir


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


def _training_metadata(run_dir: Path) -> dict:
    """Return the ``training`` entry of the metadata that ``convert`` would embed for a run folder."""
    evaluation = {"source": "validation split", "images": 3}
    return _metadata("float32", RunDir(run_dir), (96, 96), {}, {}, {}, evaluation, None, {})["training"]


def _run_with_training(tiny_run: Path, folder: Path, training: dict) -> Path:
    """Write a run folder whose run.json is tiny_run's with ``training`` added."""
    config = json.loads((tiny_run / RUN_FILE).read_text())
    config["training"] = training
    (folder / RUN_FILE).write_text(json.dumps(config))
    return folder


def _phase_two(phase_two_kept: bool, quadrants_per_epoch: int) -> list[dict]:
    return [{"phase": 1}, {"phase": 2, "kept": phase_two_kept, "quadrants_per_epoch": quadrants_per_epoch}]


def test_conversion_metadata_records_quadrants(tiny_run: Path, tmp_path: Path) -> None:
    run_dir = _run_with_training(tiny_run, tmp_path, {"settings": {"quadrants": 4, "epochs": 2}, "phases": _phase_two(True, 512)})
    assert _training_metadata(run_dir)["quadrants"] == 4


@pytest.mark.parametrize(
    "training",
    [
        {"settings": {"epochs": 2}, "phases": _phase_two(True, 0)},
        {"settings": {"quadrants": 2}, "phases": _phase_two(False, 512)},
        {"settings": {"quadrants": 2}, "phases": _phase_two(True, 0)},
        {"settings": {"quadrants": 2}, "phases": [{"phase": 1}]},
    ],
    ids=["before-the-option", "phase-2-rolled-back", "no-crops-trained", "no-phase-2"],
)
def test_conversion_metadata_quadrants_zero(tiny_run: Path, tmp_path: Path, training: dict) -> None:
    run_dir = _run_with_training(tiny_run, tmp_path, training)
    assert _training_metadata(run_dir)["quadrants"] == 0


def test_conversion_metadata_quadrants_old_run(tiny_run: Path) -> None:
    # tiny_run's run.json has no training entry.
    assert _training_metadata(tiny_run)["quadrants"] == 0
