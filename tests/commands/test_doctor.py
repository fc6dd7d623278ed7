"""Tests of ``edgecount doctor`` and the checks in ``edgecount.diagnostics``, on this machine's real
OpenCV, LiteRT and device files."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import pytest

from edgecount.diagnostics import (
    collect_diagnostics,
    find_backend_problems,
    find_platform_problems,
    probe_camera,
    read_os_release,
)

BOOKWORM = {"ID": "debian", "VERSION_CODENAME": "bookworm", "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)"}


def _backends(litert: bool | None, tflite_runtime: bool | None, tflite_version: str | None = None) -> dict:
    def entry(ok: bool | None, version: str | None) -> dict:
        return {"ok": ok, "version": version, "error": None if ok else "fails to import", "imported": True}

    return {
        "litert": entry(litert, "2.3.0" if litert else None),
        "tflite-runtime": entry(tflite_runtime, tflite_version),
        "tensorflow": entry(None, None),
    }


def test_doctor_prints_every_section(run_cli):
    code, out, err = run_cli("doctor", "--no-devices")

    assert code == 0, err
    for title in ("Platform", "Python", "OpenCV", "Interpreter backends", "Cameras"):
        assert title in out
    assert platform.machine() in out
    assert "litert          ok" in out
    assert "No problems found." in out


def test_doctor_json_reports_versions(run_cli):
    import cv2

    code, out, _ = run_cli("doctor", "--json", "--no-devices")

    assert code == 0
    report = json.loads(out)
    assert report["platform"]["machine"] == platform.machine()
    assert report["python"]["numpy"] == np.__version__
    assert report["opencv"]["version"] == cv2.__version__
    assert report["opencv"]["headless"] is True
    assert "FFMPEG" in report["opencv"]["video_backends"]
    assert report["backends"]["auto"] == "litert"
    assert report["backends"]["available"]["litert"]["ok"] is True
    assert report["cameras"] is None
    assert report["problems"] == []


def test_doctor_model_describes_tensors(run_cli, tiny_run: Path):
    code, out, err = run_cli("doctor", tiny_run / "model_int8.tflite", "--json", "--no-devices")

    assert code == 0, err
    model = json.loads(out)["model"]
    assert model["loaded"] is True
    assert model["quantization"] == "int8"
    assert model["input"]["dtype"] == "uint8"
    assert model["input"]["shape"] == [1, 96, 96, 3]
    assert model["output"]["dtype"] == "float32"
    assert model["metadata"]["alpha"] == 0.35
    assert model["test_count"] >= 0.0


def test_doctor_model_text_lists_metadata(run_cli, tiny_run: Path):
    code, out, _ = run_cli("doctor", tiny_run / "model_float32.tflite", "--no-devices")

    assert code == 0
    assert "Model" in out
    assert "float32 [1, 96, 96, 3]" in out
    assert "metadata.quantization" in out
    assert "metadata.input_size" in out
    assert "[96, 96]" in out
    assert "test inference" in out


def test_doctor_classifier_model_exits_1(run_cli, classifier_tflite: Path):
    code, out, _ = run_cli("doctor", classifier_tflite, "--no-devices")

    assert code == 1
    assert "error: the model cannot be used" in out
    assert "1001 values" in out
    assert "fix: pass a face-counting model" in out


def test_doctor_missing_model_exits_1(run_cli, tmp_path: Path):
    code, out, _ = run_cli("doctor", tmp_path / "absent.tflite", "--json", "--no-devices")

    assert code == 1
    report = json.loads(out)
    assert report["model"]["loaded"] is False
    assert "model file not found" in report["model"]["error"]
    assert report["problems"][0]["level"] == "error"
    assert "check the path" in report["problems"][0]["fix"]


def test_doctor_unknown_backend_usage_error(run_cli):
    code, _, err = run_cli("doctor", "--backend", "onnx", "--no-devices")

    assert code == 2
    assert "unknown backend 'onnx'" in err


def test_doctor_runs_without_tensorflow(tiny_run: Path, python_without_tensorflow):
    code = (
        "import json, sys\n"
        "from edgecount.cli import main\n"
        f"try:\n    main(['doctor', {str(tiny_run / 'model_int8.tflite')!r}, '--json', '--no-devices'])\n"
        "except SystemExit as stop:\n    assert stop.code in (0, None), stop.code\n"
        "print('TENSORFLOW_IMPORTED', 'tensorflow' in sys.modules, file=sys.stderr)\n"
    )
    completed = python_without_tensorflow(code)

    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["model"]["loaded"] is True
    assert report["backends"]["auto"] == "litert"
    assert report["backends"]["available"]["tensorflow"]["imported"] is False
    assert "TENSORFLOW_IMPORTED False" in completed.stderr


def test_doctor_probes_devices_without_hanging():
    report = collect_diagnostics(probe_devices=True)

    assert isinstance(report["cameras"], list)
    assert set(report["picamera2"]) >= {"importable", "version", "cameras", "error"}
    if not report["picamera2"]["importable"]:
        assert report["picamera2"]["error"]


def test_probe_camera_rejects_non_camera():
    result = probe_camera(Path("/dev/null"), timeout=10)

    assert result["opens"] is False
    assert result["frame"] is None
    assert result["error"]


def test_read_os_release_parses_quoted_values(tmp_path: Path):
    path = tmp_path / "os-release"
    path.write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n# comment\nVERSION_CODENAME=bookworm\n\n')

    fields = read_os_release(path)

    assert fields["PRETTY_NAME"] == "Debian GNU/Linux 12 (bookworm)"
    assert fields["ID"] == "debian"
    assert fields["VERSION_CODENAME"] == "bookworm"
    assert read_os_release(tmp_path / "absent") == {}


@pytest.mark.parametrize(("machine", "bits"), [("armv7l", 32), ("aarch64", 32)])
def test_platform_problems_32_bit_needs_64_bit_os(machine: str, bits: int):
    problems = find_platform_problems(machine, bits, BOOKWORM)

    assert [problem.level for problem in problems] == ["error"]
    assert "32-bit" in problems[0].message
    assert "64-bit Raspberry Pi OS" in problems[0].fix


def test_platform_problems_64_bit_bookworm_is_clean():
    assert find_platform_problems("aarch64", 64, BOOKWORM) == []


def test_platform_problems_bullseye_warns():
    problems = find_platform_problems("aarch64", 64, {"ID": "debian", "VERSION_CODENAME": "bullseye"})

    assert [problem.level for problem in problems] == ["warning"]
    assert "Bookworm" in problems[0].fix


def test_backend_problems_numpy_2_breaks_tflite_runtime():
    results = _backends(litert=False, tflite_runtime=False, tflite_version="2.14.0")

    problems = find_backend_problems(results, None, (3, 11), "2.1.0", "aarch64", 64)

    messages = [problem.message for problem in problems]
    assert any("NumPy 2.1.0" in message for message in messages)
    assert any("numpy<2" in problem.fix for problem in problems)
    assert problems[-1].level == "error"
    assert "no TFLite interpreter backend" in problems[-1].message


def test_backend_problems_python_312_has_no_tflite_runtime():
    results = _backends(litert=False, tflite_runtime=False)

    problems = find_backend_problems(results, None, (3, 12), "1.26.4", "aarch64", 64)

    assert any("Python 3.12 has no tflite-runtime wheels" in problem.message for problem in problems)
    assert problems[-1].fix == "pip install ai-edge-litert"


def test_backend_problems_32_bit_without_backend_needs_64_bit_os():
    problems = find_backend_problems(_backends(litert=False, tflite_runtime=False), None, (3, 11), "1.26.4", "armv7l", 32)

    assert problems[-1].level == "error"
    assert "64-bit Raspberry Pi OS" in problems[-1].fix


def test_backend_problems_litert_alone_is_clean():
    assert find_backend_problems(_backends(litert=True, tflite_runtime=False), "litert", (3, 12), "2.1.0", "aarch64", 64) == []


def test_backend_problems_tensorflow_only_warns():
    results = _backends(litert=False, tflite_runtime=False)
    results["tensorflow"] = {"ok": True, "version": "2.21.0", "error": None, "imported": True}

    problems = find_backend_problems(results, "tensorflow", (3, 11), "2.1.0", "x86_64", 64)

    assert [problem.level for problem in problems] == ["warning"]
    assert "pip install ai-edge-litert" in problems[0].fix
