"""Errors that reach the command line as one ``error:`` line instead of a traceback."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path


def test_train_too_few_images_error(tmp_path: Path, av_faces_dir: Path, av_labels, weights_035: Path, run_cli):
    data = tmp_path / "two"
    (data / "images").mkdir(parents=True)
    with open(data / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "count"])
        for name, count in av_labels[:2]:
            shutil.copy(av_faces_dir / "images" / name, data / "images" / name)
            writer.writerow([name, count])

    code, _, stderr = run_cli("train", "--data", data, "--out", tmp_path / "run", "--image-size", "64", "--weights", weights_035)

    assert code == 1
    assert "error: " in stderr
    assert "both need at least one image" in stderr
    assert "Traceback" not in stderr


def test_convert_corrupt_keras_model_error(tmp_path: Path, tiny_run: Path, run_cli):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    keras_file = run / "model.keras"
    keras_file.write_bytes(keras_file.read_bytes()[:50_000])

    code, _, stderr = run_cli("convert", run, "--quantize", "float32", "--force")

    assert code == 1
    assert "corrupt or truncated" in stderr
    assert "Traceback" not in stderr


def test_webcam_zero_duration_rejected(tiny_run: Path, run_cli):
    code, _, stderr = run_cli("webcam", tiny_run / "model_int8.tflite", "--source", "0", "--duration", "0")

    assert code == 2
    assert "above 0 seconds" in " ".join(stderr.split())


def test_convert_moved_dataset_error(moved_run: tuple[Path, Path, Path], tmp_path: Path, run_cli):
    run, old, _ = moved_run
    missing = old.resolve() / "images" / "10001.jpg"

    code, stdout, stderr = run_cli("convert", run, "--quantize", "float32", "--out", tmp_path / "out")
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]

    assert code == 1
    assert stdout == ""
    assert len(errors) == 1
    assert f"for example {missing}" in errors[0]
    assert "pass its new place with --data NEWDIR" in errors[0]
    assert "Traceback" not in stderr


def test_compare_moved_dataset_error(moved_run: tuple[Path, Path, Path], run_cli):
    run, old, _ = moved_run

    code, stdout, stderr = run_cli("compare", run, "--threads", "1")
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]

    assert code == 1
    assert stdout == ""
    assert len(errors) == 1
    assert f"for example {old.resolve() / 'images'}" in errors[0]
    assert "--data NEWDIR" in errors[0]
    assert "Traceback" not in stderr
