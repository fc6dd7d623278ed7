"""``edgecount compare``: accuracy, latency and size of the converted models on the same labelled images."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from edgecount.commands.options import THREADS_HELP, BackendOpt, JsonOpt, TtaOpt, check_threads, check_tta

_log = logging.getLogger(__name__)

# The files compare looks for in a run folder, in report order.
RUN_MODEL_NAMES = ("float32", "float16", "dynamic", "int8", "int8_mixed")


def parse_threads(text: str) -> list[int]:
    """Parse a comma list of thread counts such as ``1,2,4``.

    Raises:
        typer.BadParameter: for an empty list, a value that is not a whole number, or one outside 1 to
            ``max_threads()``.
    """
    values = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = int(part)
        except ValueError:
            raise typer.BadParameter(f"thread count {part!r} is not a whole number; pass a list such as 1,2,4", param_hint="--threads") from None
        values.append(check_threads(value))
    if not values:
        raise typer.BadParameter("no thread count given; pass a list such as 1,2,4", param_hint="--threads")
    return sorted(set(values))


def default_threads() -> str:
    cores = os.cpu_count() or 1
    return "1" if cores == 1 else f"1,{cores}"


def compare(
    run_dir: Annotated[
        Path | None, typer.Argument(help="A run folder with model_MODE.tflite files; optional with --models and --data.")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Labelled dataset to evaluate on. Default: the run's validation split. When the run's images moved, "
            "their new folder: the validation split is then read from it.",
        ),
    ] = None,
    models: Annotated[
        list[Path] | None, typer.Option("--models", help="TFLite models to compare instead of the run's. Repeatable.")
    ] = None,
    threads: Annotated[
        str, typer.Option("--threads", help=f"Comma list of interpreter thread counts to time, e.g. 1,2,4. {THREADS_HELP}")
    ] = default_threads(),
    out: Annotated[Path | None, typer.Option("--out", help="Also write comparison.md, .csv, .json and .png here.")] = None,
    runs: Annotated[int, typer.Option("--runs", min=1, help="Timed runs per latency measurement.")] = 50,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed runs before each latency measurement.")] = 5,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Evaluate on the first N images only.", rich_help_panel="Advanced")
    ] = None,
    keras: Annotated[
        bool, typer.Option("--keras/--no-keras", help="Compare against model.keras (needs TensorFlow).", rich_help_panel="Advanced")
    ] = True,
    haar: Annotated[
        bool, typer.Option("--haar/--no-haar", help="Add OpenCV's Haar cascade face-detector baseline.", rich_help_panel="Advanced")
    ] = True,
    cascade: Annotated[
        Path | None, typer.Option("--cascade", help="Haar cascade XML. Default: OpenCV's frontal-face cascade.", rich_help_panel="Advanced")
    ] = None,
    json_output: JsonOpt = False,
    backend: BackendOpt = "auto",
    tta: TtaOpt = "none",
) -> None:
    """Compare float32, float16, dynamic and int8 models: RMSE, MAE, latency, FPS and file size.

    Every model runs on the same labelled images (default: the run's validation split). A model that
    fails to load or run is reported with its reason and the others are still measured. Needs no
    TensorFlow, except for the column comparing with model.keras.

    Examples:

        edgecount compare runs/av

        edgecount compare runs/av --threads 1,2,4 --out report/

        edgecount compare --models a.tflite --models b.tflite --data photos/labelled

        edgecount compare runs/av --tta flip

        edgecount compare runs/av --tta tiles
    """
    from edgecount.reports.comparison import compare_models
    from edgecount.reports.environment import system_info
    from edgecount.reports.evaluation import load_evaluation_images
    from edgecount.reports.writers import format_json, format_text, write_reports
    from edgecount.runtime import load_backend

    thread_counts = parse_threads(threads)
    check_tta(tta)
    if run_dir is None and (not models or data is None):
        raise typer.BadParameter("pass a run folder, or both --models and --data", param_hint="RUN_DIR")

    # Which models and which images.
    run = None
    if run_dir is not None:
        from edgecount.runs import RunDir

        run = RunDir(run_dir)
    paths = _model_paths(run, models)
    samples = _samples(run, data)
    if limit is not None:
        samples = samples[:limit]
    _log.info("decoding %d evaluation images", len(samples))
    try:
        images = load_evaluation_images(samples)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--data") from error

    # The Keras reference, when TensorFlow and model.keras are there.
    keras_reference = _keras_reference(run, images, keras)

    system = system_info(load_backend(backend), thread_counts)
    comparison = compare_models(
        paths, images, thread_counts, keras_reference, system, runs=runs, warmup=warmup, backend=backend,
        haar=haar, cascade_path=cascade, on_model=lambda name: _log.info("measuring %s", name), tta=tta,
    )

    print(format_json(comparison) if json_output else format_text(comparison), end="")
    if out is not None:
        written = write_reports(comparison, out)
        _write_plot(comparison, out / "comparison.png")
        _log.info("wrote %s", ", ".join(str(path) for path in written.values()))
    failed = [row.name for row in comparison.rows if row.status == "failed"]
    if failed:
        print(f"{len(failed)} model(s) failed: {', '.join(failed)}; see the status column", file=sys.stderr)
        raise typer.Exit(code=1)


def _model_paths(run, models: list[Path] | None) -> list[Path]:
    if models:
        # A missing file still becomes a failed row, so the others are measured.
        return [Path(part) for model in models for part in str(model).split(",") if part]
    paths = [run.tflite_path(name) for name in RUN_MODEL_NAMES if run.tflite_path(name).is_file()]
    if not paths:
        from edgecount.runs import RunDirError

        raise RunDirError(f"{run.path} has no model_<mode>.tflite files; convert first with: edgecount convert {run.path}")
    return paths


def _samples(run, data: Path | None):
    from edgecount.datasets import load_dataset, locate_split

    split = locate_split(run, data) if run is not None else None
    if data is not None and (split is None or not split.relocated):
        # load_dataset logs each skipped row itself.
        return list(load_dataset(data).samples)
    samples = split.samples("validation")
    if not samples:
        raise typer.BadParameter(f"the validation split of {run.path} is empty; pass --data DIR", param_hint="--data")
    return samples


def _keras_reference(run, images, enabled: bool):
    from edgecount.reports.comparison import KerasReference
    from edgecount.reports.evaluation import clip_counts, count_metrics, predict_keras
    from edgecount.tensorflow_import import TensorFlowMissingError

    if not enabled:
        return KerasReference(None, "turned off with --no-keras")
    if run is None:
        return KerasReference(None, "no run folder, so no model.keras")
    if not run.keras_model_path.is_file():
        return KerasReference(None, f"{run.keras_model_path} not found")
    try:
        from edgecount.converters.streams import stdout_to_stderr

        with stdout_to_stderr():
            keras_model = run.load_keras_model()
            outputs = predict_keras(keras_model, images)
    except TensorFlowMissingError:
        return KerasReference(None, "TensorFlow is not installed (pip install 'edgecount[train]')")
    metrics = count_metrics(clip_counts(outputs), images.true_counts, images.paths)
    return KerasReference(outputs, "", metrics)


def _write_plot(comparison, path: Path) -> None:
    from edgecount.reports.plot import PlotUnavailableError, plot_rmse_latency

    try:
        plot_rmse_latency(comparison, path)
    except PlotUnavailableError as error:
        _log.warning("%s; the other report files were written", error)
    except ValueError as error:
        _log.warning("no plot written: %s", error)
