"""The ``edgecount`` command: registers the subcommands and turns known errors into one-line messages.

Each subcommand lives in ``edgecount/commands/<name>.py``. Those modules import TensorFlow only inside
the command body, so ``edgecount count`` and ``edgecount webcam`` start on a board without it.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Annotated

import typer

from edgecount import __version__
from edgecount.runtime.errors import EdgecountError

app = typer.Typer(
    name="edgecount",
    help="Train a MobileNetV2 face counter, convert it to TFLite and count faces on small boards.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)

# (module in edgecount.commands, function name); each module's function docstring is its help text.
COMMANDS = [
    ("demo", "demo"),
    ("train", "train"),
    ("convert", "convert"),
    ("count", "count"),
    ("webcam", "webcam"),
    ("compare", "compare"),
    ("bench", "bench"),
    ("doctor", "doctor"),
]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"edgecount {__version__}")
        raise typer.Exit()


@app.callback()
def configure(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="Log more on stderr (-v info, -vv debug).")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log only errors and hide progress bars.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Set up logging for every subcommand: warnings by default, on stderr."""
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr, force=True)
    os.environ["EDGECOUNT_QUIET"] = "1" if quiet else ""


def _register_commands() -> None:
    for module_name, function_name in COMMANDS:
        try:
            module = importlib.import_module(f"edgecount.commands.{module_name}")
        except ModuleNotFoundError as error:
            if error.name == f"edgecount.commands.{module_name}":
                continue  # a command that this build does not have yet
            raise
        app.command(name=module_name.replace("_", "-"))(getattr(module, function_name))


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Run the command line and exit: 0 on success, 1 on an edgecount error, 2 on a usage error.

    Args:
        argv: the arguments after the program name; default None reads ``sys.argv``.
    """
    try:
        app(args=argv, prog_name="edgecount")
    except EdgecountError as error:
        print(f"error: {error}", file=sys.stderr)
        if os.environ.get("EDGECOUNT_DEBUG") == "1":
            raise
        print("hint: set EDGECOUNT_DEBUG=1 to see the traceback", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
