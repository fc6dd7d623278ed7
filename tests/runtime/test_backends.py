"""Interpreter backend selection, including the real tflite-runtime 2.14 wheel under NumPy 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgecount.runtime import BackendError, load_backend


@pytest.fixture(scope="session")
def tflite_runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tflite-runtime 2.14.0 installed from the package index into a private folder (not the venv)."""
    if sys.version_info >= (3, 12):
        pytest.skip("tflite-runtime 2.14 has no wheels for Python 3.12 or newer")
    target = tmp_path_factory.mktemp("tflite_runtime")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), "tflite-runtime==2.14.0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        pytest.skip(f"tflite-runtime 2.14.0 cannot be installed here (no package index?): {result.stderr.strip()[-300:]}")
    return target


def _run_with(target: Path, code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(target))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_load_backend_litert():
    backend = load_backend("litert")
    assert backend.name == "litert"
    assert backend.version != "unknown"


def test_load_backend_auto_prefers_litert():
    assert load_backend("auto").name == "litert"


def test_load_backend_unknown_name():
    with pytest.raises(ValueError, match="unknown backend 'tpu'; choose one of: auto, litert, tflite-runtime, tensorflow"):
        load_backend("tpu")


def test_load_backend_tflite_runtime_missing():
    try:
        import tflite_runtime  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("tflite-runtime is installed in this environment")
    with pytest.raises(BackendError, match="'tflite-runtime' is not installed .*pip install 'edgecount\\[tflite-runtime\\]'"):
        load_backend("tflite-runtime")


def test_load_backend_tflite_runtime_under_numpy2(tflite_runtime_dir):
    result = _run_with(
        tflite_runtime_dir,
        "import numpy\n"
        "from edgecount.runtime import BackendError, load_backend\n"
        "assert int(numpy.__version__.split('.')[0]) >= 2, numpy.__version__\n"
        "try:\n"
        "    load_backend('tflite-runtime')\n"
        "except BackendError as error:\n"
        "    print(error)\n"
        "print('auto:', load_backend('auto').name)\n",
    )
    assert result.returncode == 0, result.stderr
    assert "'tflite-runtime' 2.14.0 is installed but was built against NumPy 1.x" in result.stdout
    assert "pip install 'numpy<2'" in result.stdout
    assert "--backend litert" in result.stdout
    assert "auto: litert" in result.stdout


def test_count_model_tflite_runtime_interpreter_failure(tflite_runtime_dir, tiny_run):
    # Skip our version check to reach the real failure inside the tflite-runtime interpreter.
    result = _run_with(
        tflite_runtime_dir,
        "import edgecount.runtime.backends as backends\n"
        "backends._check_numpy_abi = lambda version: None\n"
        "from edgecount.runtime import BackendError, CountModel\n"
        "try:\n"
        f"    CountModel({str(tiny_run / 'model_int8.tflite')!r}, backend='tflite-runtime')\n"
        "except BackendError as error:\n"
        "    print(error)\n",
    )
    assert result.returncode == 0, result.stderr
    assert "'tflite-runtime' 2.14.0 imports but cannot create an interpreter (SystemError" in result.stdout
    assert "numpy.core.multiarray failed to import" in result.stdout
    assert "pip install 'numpy<2'" in result.stdout


def test_count_cli_tflite_runtime_backend(tflite_runtime_dir, tiny_run, real_photo_paths):
    env = dict(os.environ, PYTHONPATH=str(tflite_runtime_dir))
    result = subprocess.run(
        [sys.executable, "-m", "edgecount", "count", str(tiny_run / "model_int8.tflite"), str(real_photo_paths[0]), "--backend", "tflite-runtime"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "error: the interpreter backend 'tflite-runtime' 2.14.0 is installed but was built against NumPy 1.x" in result.stderr
