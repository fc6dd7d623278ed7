"""The footprint and comparison helpers of scripts/check-arm64.sh, on venvs and probe results made here.

The check itself needs root and qemu and takes 20 to 45 minutes on two cores, so it runs by hand and
its last result is in benchmarks/RESULTS.md. These tests cover the Python that turns its measurements
into summary lines.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts" / "arm64"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"arm64_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


probe = _load("probe")
compare = _load("compare")


def _write(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)


def _fake_venv(root: Path) -> Path:
    """A venv with one distribution "Fake_Pkg" (a .so, a source file, a test) and bytecode Python wrote later."""
    site = root / "lib" / "python3.11" / "site-packages"
    _write(site / "fake_pkg" / "__init__.py", 100)
    _write(site / "fake_pkg" / "_core.cpython-311-aarch64-linux-gnu.so", 5000)
    _write(site / "fake_pkg" / "libs" / "libblas.so.3", 3000)
    _write(site / "fake_pkg" / "tests" / "test_core.py", 200)
    # Not in RECORD: written on first import after pip install --no-compile.
    _write(site / "fake_pkg" / "__pycache__" / "__init__.cpython-311.pyc", 400)
    dist_info = site / "fake_pkg-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: Fake_Pkg\nVersion: 1.0\n")
    records = [
        "fake_pkg/__init__.py",
        "fake_pkg/_core.cpython-311-aarch64-linux-gnu.so",
        "fake_pkg/libs/libblas.so.3",
        "fake_pkg/tests/test_core.py",
        "fake_pkg-1.0.dist-info/METADATA",
        "fake_pkg-1.0.dist-info/RECORD",
    ]
    (dist_info / "RECORD").write_text("".join(f"{record},,\n" for record in records))
    (root / "pyvenv.cfg").write_text("home = /usr/bin\n")
    return root


def test_footprint_sorts_files_by_kind(tmp_path: Path):
    footprint = probe.footprint(_fake_venv(tmp_path / "venv"))

    kinds = footprint["kinds"]
    assert kinds["shared libraries"] == 8000
    assert kinds["bytecode"] == 400
    assert kinds["tests"] == 200
    assert kinds["Python sources"] == 100


def test_footprint_assigns_bytecode_to_its_distribution(tmp_path: Path):
    venv = _fake_venv(tmp_path / "venv")

    distributions = probe.footprint(venv)["distributions"]

    metadata_bytes = sum(path.stat().st_size for path in venv.glob("lib/python3.11/site-packages/*.dist-info/*"))
    assert distributions["fake-pkg"] == 100 + 5000 + 3000 + 200 + 400 + metadata_bytes
    assert distributions["venv"] == len("home = /usr/bin\n")


def test_describe_footprint_groups_by_use():
    footprint = {
        "kinds": {"shared libraries": 90_000_000, "bytecode": 5_000_000},
        "distributions": {"opencv-python-headless": 60_000_000, "pydantic-core": 20_000_000, "pip": 10_000_000, "unknown-thing": 5_000_000},
    }

    by_use, by_type = compare.describe_footprint(footprint)

    assert by_use.startswith("OpenCV 60.0, CLI (typer and its rich, pygments, pydantic) 20.0, pip and setuptools 10.0")
    assert "other 5.0" in by_use
    assert by_type == "shared libraries 90.0, bytecode 5.0"


def test_describe_footprint_without_measurement():
    assert compare.describe_footprint(None) == ("not measured", "not measured")


def test_reference_kernels_line_names_the_differing_side():
    step = 0.1
    arm = {"output_step": step, "results": [{"image": "a.jpg", "raw": 2.0, "reference_raw": 2.0}]}
    x86 = {"output_step": step, "results": [{"image": "a.jpg", "raw": 2.3, "reference_raw": 2.0}]}
    summary = compare.Summary()

    compare.describe_reference_kernels(summary, "tflite-runtime", "model_int8.tflite", arm, x86)

    (line,) = summary.lines
    assert "max |arm64 ref - x86 ref| = 0.000000 (0.0 output steps)" in line
    assert "arm64 default vs ref 0.000000 (0.0 output steps)" in line
    assert "x86 default vs ref 0.300000 (3.0 output steps)" in line
    assert summary.failed == 0


def test_reference_kernels_line_skipped_without_reference():
    model = {"output_step": 0.1, "results": [{"image": "a.jpg", "raw": 2.0}]}
    summary = compare.Summary()

    compare.describe_reference_kernels(summary, "litert", "model_float32.tflite", model, model)

    assert summary.lines == []


@pytest.mark.parametrize(
    ("mode", "step", "expected"),
    [("float32", None, 1e-3), ("float16", 0.5, 1e-3), ("int8", 0.0885, 0.0885), ("int8", None, 1e-3), ("dynamic", None, None)],
)
def test_tolerance_for_each_mode(mode: str, step: float | None, expected: float | None):
    assert compare.tolerance_for(mode, step)[0] == expected


def test_compare_reports_missing_probe(tmp_path: Path):
    (tmp_path / "results").mkdir()
    (tmp_path / "inputs.json").write_text(json.dumps({"photos": [], "video_frames": 0}))

    completed = subprocess.run(
        [sys.executable, str(SCRIPTS / "compare.py"), "--work", str(tmp_path), "--wheel", "w.whl", "--mirror", "m", "--run", "r"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert completed.returncode == 1
    assert "FAIL  litert: the arm64 venv was not installed or its probe failed" in completed.stdout
    assert "RESULT: FAIL (2 of 2 checks failed)" in completed.stdout


def test_probe_error_hint_for_new_op_version():
    error = "ModelError: m.tflite: Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'."

    assert "edgecount convert RUN --quantize MODE --force" in compare.hint_for_probe_error(error)
    assert compare.hint_for_probe_error("ModelError: truncated") == ""
