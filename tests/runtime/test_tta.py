"""Test-time flip averaging with ``CountModel(..., tta="flip")``, and ``--tta`` on count, webcam and compare.

The webcam and compare tests run both modes, flip and tiles. ``test_tta_tiles.py`` covers tiling itself.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from edgecount.runs import RunDir
from edgecount.runtime import CountModel, load_image

MODES = ("float32", "float16", "dynamic", "int8")


@pytest.mark.parametrize("mode", MODES)
def test_count_model_flip_averages_mirror(tiny_run: Path, real_photo_paths: list[Path], mode: str):
    path = tiny_run / f"model_{mode}.tflite"
    plain, flipped = CountModel(path, num_threads=1), CountModel(path, num_threads=1, tta="flip")
    frame = load_image(real_photo_paths[0])
    mirror = np.ascontiguousarray(frame[:, ::-1])
    expected = max(0.0, (plain.invoke(plain.prepare(frame)) + plain.invoke(plain.prepare(mirror))) / 2.0)
    assert flipped.predict(frame) == pytest.approx(expected, abs=1e-6)
    # The mirror of the mirror is the frame, so both give the same average.
    assert flipped.predict(mirror) == pytest.approx(expected, abs=1e-6)


def test_count_model_flip_symmetric_frame_unchanged(tiny_run: Path, real_photo_paths: list[Path]):
    half = load_image(real_photo_paths[1])[:, :200]
    symmetric = np.ascontiguousarray(np.concatenate([half, half[:, ::-1]], axis=1))
    path = tiny_run / "model_float32.tflite"
    assert CountModel(path, tta="flip").predict(symmetric) == pytest.approx(CountModel(path).predict(symmetric), abs=1e-5)


@pytest.mark.parametrize("tta", [None, "none"])
def test_count_model_no_tta(tiny_run: Path, tta):
    model = CountModel(tiny_run / "model_float32.tflite", tta=tta)
    assert model.tta is None
    assert model.describe()["tta"] == "none"


def test_count_model_describe_flip(tiny_run: Path):
    assert CountModel(tiny_run / "model_int8.tflite", tta="flip").describe()["tta"] == "flip"


def test_count_model_unknown_tta(tiny_run: Path):
    with pytest.raises(ValueError, match="tta must be one of None, none, flip, tiles, got 'rotate'"):
        CountModel(tiny_run / "model_float32.tflite", tta="rotate")


def test_count_command_tta_flip(tiny_run: Path, real_photo_paths: list[Path], run_cli):
    model = tiny_run / "model_float32.tflite"
    code, stdout, stderr = run_cli("count", model, real_photo_paths[0], real_photo_paths[2], "--tta", "flip", "--json")
    assert code == 0, stderr
    flipped = CountModel(model, tta="flip")
    document = json.loads(stdout)
    results = document["results"] if isinstance(document, dict) else document
    for result, photo in zip(results, (real_photo_paths[0], real_photo_paths[2]), strict=True):
        assert result["count"] == pytest.approx(flipped.predict(load_image(photo)), abs=1e-3)


def test_count_command_unknown_tta(tiny_run: Path, real_photo_paths: list[Path], run_cli):
    code, _, stderr = run_cli("count", tiny_run / "model_float32.tflite", real_photo_paths[0], "--tta", "mirror")
    assert code == 2
    assert "unknown mode 'mirror'; choose one of: none, flip, tiles" in " ".join(stderr.replace("│", " ").split())


@pytest.mark.parametrize("tta", ["flip", "tiles"])
def test_webcam_command_tta(tiny_run: Path, real_photo_paths: list[Path], video_writer, tmp_path: Path, run_cli, tta: str):
    video = video_writer(tmp_path / "group.avi", real_photo_paths[:3], frames=4, size=(320, 240))
    code, stdout, stderr = run_cli("webcam", tiny_run / "model_int8.tflite", "--source", video, "--json", "--tta", tta)
    assert code == 0, stderr
    rows = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    assert len(rows) == 4
    assert all(row["count"] >= 0 for row in rows)


@pytest.mark.parametrize("tta", ["flip", "tiles"])
def test_compare_command_tta_rows(tiny_run: Path, run_cli, tta: str):
    code, stdout, stderr = run_cli(
        "compare", tiny_run, "--threads", "1", "--runs", "2", "--warmup", "0", "--limit", "3", "--no-haar", "--no-keras",
        "--tta", tta, "--json",
    )
    assert code == 0, stderr
    report = json.loads(stdout)
    names = [row["name"] for row in report["rows"]]
    assert names == [name for mode in MODES for name in (mode, f"{mode}+{tta}")]
    rows = {row["name"]: row for row in report["rows"]}
    assert rows[f"int8+{tta}"]["tta"] == tta
    assert rows["int8"]["tta"] == "none"
    assert rows[f"float32+{tta}"]["latency"]["1"]["invoke"]["runs"] == 2
    assert rows[f"float32+{tta}"]["speedup_vs_float32"]["1"] > 0
    assert report["settings"]["tta"] == tta

    # The row's RMSE is that of CountModel(..., tta=tta) on the same 3 validation images.
    model = CountModel(tiny_run / "model_float32.tflite", tta=tta)
    samples = RunDir(tiny_run).samples("validation")[:3]
    errors = [model.predict(load_image(sample.path)) - sample.count for sample in samples]
    expected_rmse = math.sqrt(sum(error**2 for error in errors) / len(errors))
    assert rows[f"float32+{tta}"]["metrics"]["rmse"] == pytest.approx(expected_rmse, abs=1e-6)


def test_compare_command_unknown_tta(tiny_run: Path, run_cli):
    code, _, stderr = run_cli("compare", tiny_run, "--tta", "rotate")
    assert code == 2
    assert "unknown mode 'rotate'" in stderr
