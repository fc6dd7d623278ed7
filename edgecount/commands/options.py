"""Parameter types shared by several commands, so flags read the same everywhere."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

ModelArg = Annotated[
    Path,
    typer.Argument(help="A .tflite model written by 'edgecount convert' (or any model with one image input and one output)."),
]
TTA_CHOICES = ("none", "flip", "tiles")


def check_tta(tta: str) -> str:
    """Return a valid ``--tta`` value or raise ``typer.BadParameter`` listing the choices."""
    if tta not in TTA_CHOICES:
        raise typer.BadParameter(f"unknown mode {tta!r}; choose one of: {', '.join(TTA_CHOICES)}", param_hint="--tta")
    return tta


# More interpreter threads than cores only add context switches and a stack per thread. Timing an
# oversubscribed interpreter is still a fair benchmark, so the bound is a multiple of the cores. It
# rejects typos such as 100000, which would start that many threads.
THREADS_PER_CORE = 8


def max_threads() -> int:
    """Return the largest ``--threads`` value accepted on this machine: 8 times its CPU cores."""
    return THREADS_PER_CORE * (os.cpu_count() or 1)


def check_threads(value: int | None) -> int | None:
    """Return a valid interpreter thread count (None keeps the default) or raise ``typer.BadParameter``."""
    if value is None:
        return None
    cores, limit = os.cpu_count() or 1, max_threads()
    if not 1 <= value <= limit:
        problem = "below 1" if value < 1 else f"above the maximum of {limit}"
        raise typer.BadParameter(
            f"{value} threads is {problem}. The allowed range is 1 to {limit} ({THREADS_PER_CORE} x the {cores} "
            f"CPU cores of this machine); pass a value in it, usually {cores} or fewer",
            param_hint="--threads",
        )
    return value


THREADS_HELP = (
    f"Interpreter threads, 1 to {THREADS_PER_CORE} x the CPU cores ({max_threads()} here): more threads than cores "
    "only add switching overhead."
)
ThreadsOpt = Annotated[
    int | None,
    typer.Option("--threads", callback=check_threads, help=f"{THREADS_HELP} Default: all CPU cores."),
]
BackendOpt = Annotated[
    str,
    typer.Option(
        "--backend",
        help="Interpreter: auto (LiteRT, then tflite-runtime, then TensorFlow), litert, tflite-runtime or tensorflow.",
        rich_help_panel="Advanced",
    ),
]
TtaOpt = Annotated[
    str,
    typer.Option(
        "--tta",
        help=(
            "Test-time augmentation: none, flip or tiles. flip averages the counts of each frame and its mirror "
            "image (2 inferences per frame). tiles averages the whole-frame count and the sum of the counts of its 4 "
            "quadrants (5 inferences per frame), for models trained with 'edgecount train --quadrants'. compare adds a "
            "row per model with the mode, such as int8+tiles, beside the plain one."
        ),
        rich_help_panel="Advanced",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
