"""Options shared by several commands: the ``--threads`` bound."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import typer

from edgecount.commands.options import THREADS_HELP, THREADS_PER_CORE, check_threads, max_threads

CORES = os.cpu_count() or 1


def _arguments(command: str, model: Path, photo: Path) -> list[str | Path]:
    return {
        "count": ["count", model, photo],
        "bench": ["bench", model],
        "compare": ["compare", "--models", model, "--data", photo.parent.parent],
        "webcam": ["webcam", model, "--source", "0"],
    }[command]


@pytest.mark.parametrize("command", ["count", "bench", "compare", "webcam"])
@pytest.mark.parametrize("value", ["100000", "0"])
def test_threads_out_of_range_rejected(command: str, value: str, tiny_run: Path, real_photo_paths: list[Path], run_cli):
    code, stdout, stderr = run_cli(*_arguments(command, tiny_run / "model_int8.tflite", real_photo_paths[0]), "--threads", value)
    # Typer draws the message in a box: drop its borders and line breaks.
    message = " ".join(stderr.replace("│", " ").split())

    assert code == 2
    assert stdout == ""
    assert f"{value} threads is {'below 1' if value == '0' else f'above the maximum of {max_threads()}'}." in message
    assert f"The allowed range is 1 to {max_threads()}" in message
    assert f"{THREADS_PER_CORE} x the {CORES} CPU cores of this machine" in message


def test_threads_list_checks_every_value(tiny_run: Path, run_cli):
    code, _, stderr = run_cli("bench", tiny_run / "model_int8.tflite", "--threads", f"1,{max_threads() + 1}")

    assert code == 2
    assert f"{max_threads() + 1} threads is above the maximum" in " ".join(stderr.replace("│", " ").split())


def test_check_threads_accepts_range():
    assert check_threads(None) is None
    assert check_threads(1) == 1
    assert check_threads(max_threads()) == max_threads()
    assert max_threads() == THREADS_PER_CORE * CORES
    assert f"({max_threads()} here)" in THREADS_HELP
    with pytest.raises(typer.BadParameter, match=f"{max_threads() + 1} threads"):
        check_threads(max_threads() + 1)

