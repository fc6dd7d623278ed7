"""``examples/count_images.py`` on real photos, in a process where TensorFlow cannot be imported."""

from __future__ import annotations

import os
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "count_images.py"


def _run_example(python_without_tensorflow, *args: str | Path):
    code = (
        "import runpy, sys\n"
        f"sys.argv = {[str(EXAMPLE), *map(str, args)]!r}\n"
        f"runpy.run_path({str(EXAMPLE)!r}, run_name='__main__')\n"
    )
    return python_without_tensorflow(code)


def test_count_images_labelled_folder(tiny_run: Path, tmp_path: Path, av_faces_dir: Path, av_labels, python_without_tensorflow):
    rows = av_labels[:5]
    (tmp_path / "images").mkdir()
    for name, _ in rows:
        os.symlink(av_faces_dir / "images" / name, tmp_path / "images" / name)
    (tmp_path / "images" / "broken.jpg").write_bytes(b"not a jpeg at all")
    lines = [f"{name},{count}" for name, count in rows] + ["broken.jpg,2", "missing.jpg,3", f"{rows[0][0]},x"]
    (tmp_path / "labels.csv").write_text("image,count\n" + "\n".join(lines) + "\n")

    result = _run_example(python_without_tensorflow, tiny_run / "model_int8.tflite", tmp_path, "--limit", "10")

    assert result.returncode == 0, result.stderr
    counted = [line for line in result.stdout.splitlines() if ": count " in line]
    assert [line.split(":")[0] for line in counted] == sorted(name for name, _ in rows)
    assert f"{rows[0][0]}: count " in result.stdout
    assert f", true {rows[0][1]}" in result.stdout
    assert "RMSE over 5 images: " in result.stdout
    assert "missing.jpg not found" in result.stderr
    assert "'x' is not a non-negative integer" in result.stderr
    assert "broken.jpg: skipped: " in result.stderr


def test_count_images_limit(tiny_run: Path, av_faces_dir: Path, python_without_tensorflow):
    result = _run_example(python_without_tensorflow, tiny_run / "model_int8.tflite", av_faces_dir, "--limit", "3")

    assert result.returncode == 0, result.stderr
    assert "RMSE over 3 images: " in result.stdout


def test_count_images_missing_folder(tiny_run: Path, tmp_path: Path, python_without_tensorflow):
    result = _run_example(python_without_tensorflow, tiny_run / "model_int8.tflite", tmp_path / "nowhere")

    assert result.returncode == 1
    assert "error: dataset folder" in result.stderr
    assert "not found" in result.stderr
    assert "Traceback" not in result.stderr
