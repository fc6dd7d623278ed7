"""Parameter types shared by several commands, so flags read the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ModelArg = Annotated[
    Path,
    typer.Argument(help="A .tflite model written by 'edgecount convert' (or any model with one image input and one output)."),
]
TTA_CHOICES = ("none", "flip")


def check_tta(tta: str) -> str:
    """Return a valid ``--tta`` value or raise ``typer.BadParameter`` listing the choices."""
    if tta not in TTA_CHOICES:
        raise typer.BadParameter(f"unknown mode {tta!r}; choose one of: {', '.join(TTA_CHOICES)}", param_hint="--tta")
    return tta


ThreadsOpt = Annotated[
    int | None,
    typer.Option("--threads", min=1, help="Interpreter threads. Default: all CPU cores."),
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
        help="Test-time augmentation: none, or flip (average the counts of each frame and its mirror image; about twice the inference time).",
        rich_help_panel="Advanced",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
