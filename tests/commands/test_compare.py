"""``edgecount compare`` on the tiny real run: tables, report files, failed rows and a TensorFlow-free process."""

from __future__ import annotations

import csv
import json
from pathlib import Path


def test_compare_run_writes_reports(tiny_run: Path, tmp_path: Path, run_cli) -> None:
    out = tmp_path / "report"

    code, stdout, stderr = run_cli("compare", tiny_run, "--threads", "1", "--runs", "3", "--warmup", "1", "--out", out)

    assert code == 0, stderr
    for mode in ("float32", "float16", "dynamic", "int8"):
        assert f"\n{mode} " in stdout
    assert "haar-cascade" in stdout
    assert "Keras model: RMSE" in stdout
    assert sorted(path.name for path in out.iterdir()) == ["comparison.csv", "comparison.json", "comparison.md", "comparison.png"]
    rows = list(csv.DictReader((out / "comparison.csv").open()))
    assert all(row["rmse_change_vs_keras"] != "n/a" for row in rows if row["kind"] == "tflite")


def test_compare_missing_data_folder(tiny_run: Path, run_cli) -> None:
    code, stdout, stderr = run_cli(
        "compare", "--models", tiny_run / "model_int8.tflite", "--data", tiny_run.parent / "missing", "--threads", "1"
    )

    assert code == 1
    assert "not found" in stderr


def test_compare_failed_model_rows(tiny_run: Path, classifier_tflite: Path, tmp_path: Path, av_faces_dir: Path, av_labels, run_cli) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "labels.csv").write_text("image,count\n" + "".join(f"{name},{count}\n" for name, count in av_labels[:5]))
    (data / "images").symlink_to(av_faces_dir / "images")
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")

    code, stdout, stderr = run_cli(
        "compare", "--models", tiny_run / "model_int8.tflite", "--models", classifier_tflite, "--models", empty,
        "--data", data, "--threads", "1", "--runs", "2", "--warmup", "0", "--no-haar", "--json",
    )
    rows = {row["name"]: row for row in json.loads(stdout)["rows"]}

    assert code == 1
    assert "2 model(s) failed" in stderr
    assert rows["int8"]["status"] == "ok"
    assert rows["int8"]["metrics"]["images"] == 5
    assert rows["mobilenet_v2_1.0_224_quant"]["status"] == "failed"
    assert "1001 values" in rows["mobilenet_v2_1.0_224_quant"]["reason"]
    assert rows["empty"]["status"] == "failed"
    assert "empty" in rows["empty"]["reason"]
    assert rows["int8"]["keras_note"] == "no run folder, so no model.keras"


def test_compare_needs_run_or_models(run_cli) -> None:
    code, _, stderr = run_cli("compare", "--threads", "1")

    assert code == 2
    assert "--models and --data" in stderr


def test_compare_rejects_bad_threads(tiny_run: Path, run_cli) -> None:
    code, _, stderr = run_cli("compare", tiny_run, "--threads", "1,zero")

    assert code == 2
    assert "'zero' is not a whole number" in stderr


def test_compare_without_tensorflow(tiny_run: Path, tmp_path: Path, python_without_tensorflow) -> None:
    out = tmp_path / "report"
    code = (
        "from edgecount.cli import main\n"
        f"main(['compare', {str(tiny_run)!r}, '--threads', '1', '--runs', '2', '--warmup', '0', '--out', {str(out)!r}])\n"
    )

    result = python_without_tensorflow(code)

    assert result.returncode == 0, result.stderr
    assert "Keras model: n/a (TensorFlow is not installed" in result.stdout
    assert "int8" in result.stdout
    document = json.loads((out / "comparison.json").read_text())
    assert document["keras"]["note"].startswith("TensorFlow is not installed")
    assert all(row["status"] != "failed" for row in document["rows"])
    assert (out / "comparison.png").stat().st_size > 0


def test_compare_reads_moved_dataset(moved_run: tuple[Path, Path, Path], run_cli):
    run, _, new = moved_run

    code, stdout, stderr = run_cli(
        "compare", run, "--data", new, "--threads", "1", "--runs", "1", "--warmup", "0", "--no-haar", "--no-keras", "--json",
    )
    rows = {row["name"]: row for row in json.loads(stdout)["rows"]}

    assert code == 0, stderr
    assert rows["int8"]["metrics"]["images"] == 10
    assert rows["float32"]["metrics"]["worst_image"].startswith(str(new / "images"))


def test_compare_warns_once_per_bad_row(tiny_run: Path, tmp_path: Path, av_faces_dir: Path, av_labels, run_cli) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "labels.csv").write_text("image,count\n" + "".join(f"{name},{count}\n" for name, count in av_labels[:3]) + "bad.jpg,many\n")
    (data / "images").symlink_to(av_faces_dir / "images")

    code, _, stderr = run_cli(
        "compare", "--models", tiny_run / "model_int8.tflite", "--data", data, "--threads", "1", "--runs", "1",
        "--warmup", "0", "--no-haar",
    )

    assert code == 0, stderr
    assert stderr.count("'many' is not a non-negative integer") == 1
