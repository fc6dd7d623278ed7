"""Test-time flip averaging: ``CountModel(..., tta="flip")`` and ``--tta`` on count, webcam and compare."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

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
    with pytest.raises(ValueError, match="tta must be one of None, none, flip, got 'rotate'"):
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
    assert "unknown mode 'mirror'; choose one of: none, flip" in " ".join(stderr.split())


def test_webcam_command_tta_flip(tiny_run: Path, real_photo_paths: list[Path], video_writer, tmp_path: Path, run_cli):
    video = video_writer(tmp_path / "group.avi", real_photo_paths[:3], frames=4, size=(320, 240))
    code, stdout, stderr = run_cli("webcam", tiny_run / "model_int8.tflite", "--source", video, "--json", "--tta", "flip")
    assert code == 0, stderr
    rows = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    assert len(rows) == 4
    assert all(row["count"] >= 0 for row in rows)


def test_compare_command_tta_rows(tiny_run: Path, run_cli):
    code, stdout, stderr = run_cli(
        "compare", tiny_run, "--threads", "1", "--runs", "2", "--warmup", "0", "--limit", "3", "--no-haar", "--no-keras",
        "--tta", "flip", "--json",
    )
    assert code == 0, stderr
    report = json.loads(stdout)
    names = [row["name"] for row in report["rows"]]
    assert names == ["float32", "float32+flip", "float16", "float16+flip", "dynamic", "dynamic+flip", "int8", "int8+flip"]
    rows = {row["name"]: row for row in report["rows"]}
    assert rows["int8+flip"]["tta"] == "flip"
    assert rows["int8"]["tta"] == "none"
    assert rows["float32+flip"]["latency"]["1"]
    assert rows["float32+flip"]["speedup_vs_float32"]["1"] > 0
    assert report["settings"]["tta"] == "flip"


def test_compare_command_unknown_tta(tiny_run: Path, run_cli):
    code, _, stderr = run_cli("compare", tiny_run, "--tta", "rotate")
    assert code == 2
    assert "unknown mode 'rotate'" in stderr
