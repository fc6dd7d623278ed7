"""``edgecount bench``: latency table, JSON and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path


def test_bench_table(tiny_run: Path, run_cli) -> None:
    code, stdout, stderr = run_cli("bench", tiny_run / "model_int8.tflite", "--threads", "1,2", "--runs", "5", "--warmup", "1")
    lines = stdout.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("threads"))

    assert code == 0, stderr
    assert "invoke p50" in header
    assert "std" in header
    assert len([line for line in lines if line.split() and line.split()[0] in ("1", "2")]) == 2
    assert "peak RSS:" in stdout
    assert "int8" in lines[0]


def test_bench_json_with_image(tiny_run: Path, real_photo_paths: list[Path], run_cli) -> None:
    code, stdout, stderr = run_cli(
        "bench", tiny_run / "model_float32.tflite", "--image", real_photo_paths[0], "--threads", "1", "--runs", "4", "--json"
    )
    document = json.loads(stdout)

    assert code == 0, stderr
    assert document["input"] == str(real_photo_paths[0])
    assert document["results"][0]["invoke"]["runs"] == 4
    assert document["results"][0]["load_ms"] > 0
    assert document["peak_rss_mb"] > 0
    assert document["system"]["cores"] >= 1


def test_bench_rejects_classifier(classifier_tflite: Path, run_cli) -> None:
    code, stdout, stderr = run_cli("bench", classifier_tflite, "--runs", "1")

    assert code == 1
    assert stdout == ""
    assert "1001 values" in stderr


def test_bench_rejects_missing_image(tiny_run: Path, tmp_path: Path, run_cli) -> None:
    code, _, stderr = run_cli("bench", tiny_run / "model_int8.tflite", "--image", tmp_path / "none.jpg")

    assert code == 1
    assert "none.jpg: image file not found" in stderr


def test_bench_rejects_zero_threads(tiny_run: Path, run_cli) -> None:
    code, _, stderr = run_cli("bench", tiny_run / "model_int8.tflite", "--threads", "0")

    assert code == 2
    assert "below 1" in stderr
