"""``edgecount convert`` on the tiny real run: metadata, the accuracy report, overwrite rules, int8 drift."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecount.converters import QuantMode
from edgecount.runtime import CountModel, read_edgecount_metadata

MODES = [mode.value for mode in QuantMode]


@pytest.fixture(scope="module")
def converted(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Convert the tiny run once in every mode, forcing the drift path and a mixed int8 model.

    The command runs in a new process, so that stdout is the real file descriptor 1, where TensorFlow's
    C++ code prints: parsing it as JSON checks that only results reach it.
    """
    out = tmp_path_factory.mktemp("converted")
    result = subprocess.run(
        [
            sys.executable, "-m", "edgecount", "convert", str(tiny_run), "--out", str(out), "--max-drift", "0",
            "--keep-float", "auto", "--debug-samples", "4", "--json",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out, json.loads(result.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_convert_writes_metadata(converted: tuple[Path, dict], mode: str) -> None:
    out, _ = converted
    metadata = read_edgecount_metadata((out / f"model_{mode}.tflite").read_bytes())

    assert metadata["quantization"] == mode
    assert metadata["alpha"] == 0.35
    assert metadata["input_size"] == [96, 96]
    assert metadata["channel_order"] == "RGB"
    assert metadata["validation"]["images"] == 8
    assert metadata["validation"]["rmse"] > 0
    assert metadata["validation"]["keras_rmse"] > 0
    assert metadata["training"]["data"]["images"] == 24
    assert metadata["edgecount_version"]
    assert metadata["created"].endswith("+00:00")


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_convert_metadata_matches_interpreter(converted: tuple[Path, dict], mode: str) -> None:
    out, _ = converted
    model = CountModel(out / f"model_{mode}.tflite")

    assert model.metadata["input"]["dtype"] == str(model.input.dtype)
    assert model.metadata["input"]["scale"] == model.input.scale
    assert model.metadata["input"]["zero_point"] == model.input.zero_point
    if mode == "int8":
        assert model.input.dtype.name == "uint8"
        assert model.output.dtype.name == "float32"
        assert model.metadata["calibration"]["size"] == 16
        assert model.metadata["calibration"]["seed"] == 0
        assert "strata" in model.metadata["calibration"]["method"]
    else:
        assert model.metadata["calibration"] is None


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_convert_report_rmse_matches_metadata(converted: tuple[Path, dict], mode: str) -> None:
    out, report = converted
    entry = next(model for model in report["models"] if model["mode"] == mode)
    metadata = read_edgecount_metadata((out / f"model_{mode}.tflite").read_bytes())

    assert entry["rmse"] == pytest.approx(metadata["validation"]["rmse"])
    assert entry["mae"] <= entry["rmse"] + 1e-9
    assert entry["max_abs_difference"] >= entry["mean_abs_difference"] >= 0
    assert entry["size_bytes"] == (out / f"model_{mode}.tflite").stat().st_size


@pytest.mark.slow
def test_convert_float32_matches_keras(converted: tuple[Path, dict]) -> None:
    _, report = converted
    float32 = next(model for model in report["models"] if model["mode"] == "float32")

    assert float32["max_abs_difference"] < 1e-3
    assert float32["rmse"] == pytest.approx(report["keras"]["rmse"], abs=1e-3)


@pytest.mark.slow
def test_convert_drift_runs_debugger_and_mixed(converted: tuple[Path, dict]) -> None:
    out, report = converted
    layers = report["debugger"]["layers"]
    mixed = out / "model_int8_mixed.tflite"
    metadata = read_edgecount_metadata(mixed.read_bytes())

    assert len(layers) == 10
    assert layers[0]["rmse_per_scale"] >= layers[-1]["rmse_per_scale"]
    assert report["mixed"]["keep_float"] == [layer["tensor_name"] for layer in layers[:5]]
    assert metadata["quantization"] == "int8_mixed"
    assert metadata["keep_float"] == report["mixed"]["keep_float"]
    assert CountModel(mixed).predict(np.zeros((96, 96, 3), dtype=np.uint8)) >= 0.0
    assert "drift_vs_float32" in next(m for m in report["models"] if m["mode"] == "int8")


@pytest.mark.slow
def test_convert_leaves_no_temporary_files(converted: tuple[Path, dict]) -> None:
    out, _ = converted

    assert sorted(path.name for path in out.iterdir() if path.name.startswith(".")) == []


def test_convert_rejects_existing_file(tiny_run: Path, run_cli) -> None:
    before = (tiny_run / "model_float32.tflite").read_bytes()

    code, out, err = run_cli("convert", tiny_run, "--quantize", "float32")

    assert code == 1
    assert out == ""
    assert "model_float32.tflite already exists" in err
    assert "--force" in err
    assert (tiny_run / "model_float32.tflite").read_bytes() == before


@pytest.mark.slow
def test_convert_force_overwrites(tiny_run: Path, tmp_path: Path, run_cli) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    old = (run / "model_float16.tflite").read_bytes()

    code, out, err = run_cli("convert", run, "--quantize", "float16", "--force")

    assert code == 0, err
    assert "float16" in out
    assert "RMSE" in out
    assert (run / "model_float16.tflite").read_bytes() != old
    assert read_edgecount_metadata((run / "model_float16.tflite").read_bytes())["validation"]["rmse"] is not None


def test_convert_failed_calibration_keeps_existing_file(tiny_run: Path, tmp_path: Path, run_cli) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    split = run / "split.csv"
    split.write_text("\n".join(line for line in split.read_text().splitlines() if not line.endswith(",train")) + "\n")
    old = (run / "model_int8.tflite").read_bytes()

    code, out, err = run_cli("convert", run, "--quantize", "int8", "--force")

    assert code == 1
    assert "training split" in err
    assert "--quantize dynamic" in err
    assert (run / "model_int8.tflite").read_bytes() == old


def test_convert_unknown_mode(tiny_run: Path, run_cli) -> None:
    code, _, err = run_cli("convert", tiny_run, "--quantize", "int4")

    assert code == 2
    assert "int4" in err


def test_convert_missing_run(tmp_path: Path, run_cli) -> None:
    code, _, err = run_cli("convert", tmp_path / "nope")

    assert code == 1
    assert "not found" in err


def test_convert_unknown_mode_in_list(tiny_run: Path, run_cli) -> None:
    code, _, err = run_cli("convert", tiny_run, "--quantize", "float32,int4")

    assert code == 2
    assert "'int4'" in err
    assert "float32, float16, dynamic, int8, all" in err


@pytest.mark.slow
def test_convert_int8_reads_moved_dataset(moved_run: tuple[Path, Path, Path], tmp_path: Path, run_cli) -> None:
    run, old, new = moved_run
    split_before = (run / "split.csv").read_text()
    out = tmp_path / "out"

    code, stdout, stderr = run_cli(
        "convert", run, "--quantize", "int8", "--data", new, "--out", out, "--calibration-size", "20", "--max-drift", "100",
    )
    metadata = read_edgecount_metadata((out / "model_int8.tflite").read_bytes())

    assert code == 0, stderr
    assert "Evaluated on 10 images" in stdout
    assert metadata["calibration"]["size"] == 20
    assert metadata["calibration"]["failed"] == 0
    assert metadata["validation"]["images"] == 10
    assert metadata["validation"]["source"] == f"validation split of {run}, images read from {new}"
    assert "calibration image skipped" not in stderr
    assert (run / "split.csv").read_text() == split_before


def test_convert_moved_dataset_wrong_data(moved_run: tuple[Path, Path, Path], tmp_path: Path, run_cli) -> None:
    run, old, new = moved_run
    wrong = tmp_path / "wrong"
    wrong.mkdir()

    code, stdout, stderr = run_cli("convert", run, "--quantize", "int8", "--data", wrong, "--out", tmp_path / "out")

    assert code == 1
    assert stdout == ""
    assert f"none of the 40 images in {run / 'split.csv'} is under {wrong}" in stderr
    assert f"recorded as {old.resolve()} in run.json" in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "out").exists()
