"""``edgecount -q`` hides LiteRT's own INFO line, which C++ writes to file descriptor 2.

Each test runs a new process, because only the real file descriptor 2 shows what the C++ code prints.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DELEGATE_LINE = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


def _count(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgecount", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def test_count_quiet_hides_delegate_line(tiny_run: Path, real_photo_paths: list[Path]):
    model, photo = tiny_run / "model_int8.tflite", real_photo_paths[0]

    loud = _count("count", model, photo)
    quiet = _count("-q", "count", model, photo)

    assert loud.returncode == 0, loud.stderr
    assert DELEGATE_LINE in loud.stderr
    assert quiet.returncode == 0, quiet.stderr
    assert "XNNPACK" not in quiet.stderr
    assert photo.name in quiet.stdout


def test_count_quiet_keeps_error_line(classifier_tflite: Path, real_photo_paths: list[Path]):
    # The classifier loads, so the interpreter is created inside the hidden block, and is then rejected.
    result = _count("-q", "count", classifier_tflite, real_photo_paths[0])

    assert result.returncode == 1
    assert f"error: {classifier_tflite}: the output has shape" in result.stderr
    assert "XNNPACK" not in result.stderr


def test_hide_native_info_lines_restores_stderr_after_error():
    code = (
        "import os\n"
        "from edgecount.runtime.native_stderr import hide_native_info_lines\n"
        "try:\n"
        "    with hide_native_info_lines():\n"
        "        os.write(2, b'INFO: hidden line\\nWARNING: kept line\\n')\n"
        "        raise RuntimeError('interpreter failed')\n"
        "except RuntimeError:\n"
        "    pass\n"
        "os.write(2, b'after the block\\n')\n"
        "with hide_native_info_lines(enabled=False):\n"
        "    os.write(2, b'INFO: shown when disabled\\n')\n"
    )

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr
    assert result.stderr == "WARNING: kept line\nafter the block\nINFO: shown when disabled\n"
