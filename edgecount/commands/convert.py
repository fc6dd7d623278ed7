"""``edgecount convert``: write float32, float16, dynamic-range and int8 TFLite models for a training run."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from edgecount.commands.options import BackendOpt, JsonOpt

_log = logging.getLogger(__name__)

# convert warns when int8 RMSE exceeds float32's by more than this fraction, whatever --max-drift is set to.
WARN_DRIFT = 0.05


def convert(
    run_dir: Annotated[Path, typer.Argument(help="The run folder 'edgecount train' wrote (run.json, split.csv, model.keras).")],
    quantize: Annotated[
        str, typer.Option("--quantize", help="Which models to write: float32, float16, dynamic, int8, a comma list of them, or all.")
    ] = "all",
    calibration_size: Annotated[
        int, typer.Option("--calibration-size", min=1, help="Training images used to calibrate int8, stratified by count.")
    ] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the calibration image draw.")] = 0,
    out: Annotated[Path | None, typer.Option("--out", help="Write the models here instead of the run folder.")] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Evaluate on this labelled dataset instead of the run's validation split. When the run's images "
            "moved, their new folder: the validation split and the int8 calibration images are then read from it.",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing model files.")] = False,
    max_drift: Annotated[
        float,
        typer.Option(
            "--max-drift",
            min=0.0,
            help="Relative int8 RMSE increase over float32 (0.03 = 3%) above which the quantization debugger runs.",
            rich_help_panel="int8 accuracy",
        ),
    ] = 0.03,
    keep_float: Annotated[
        list[str] | None,
        typer.Option(
            "--keep-float",
            help="Also write model_int8_mixed.tflite with these tensors left in float ('auto': the 5 worst). Repeatable.",
            rich_help_panel="int8 accuracy",
        ),
    ] = None,
    bias_correction: Annotated[
        bool,
        typer.Option(
            "--bias-correction/--no-bias-correction",
            help="Correct each int8 layer's bias towards the float32 model on 64 calibration images (about 1 minute "
            "for alpha 0.35 at 224x224 on 2 cores). It brings int8 RMSE close to float32's.",
            rich_help_panel="int8 accuracy",
        ),
    ] = True,
    debug_samples: Annotated[
        int,
        typer.Option("--debug-samples", min=1, help="Calibration images the quantization debugger runs on.", rich_help_panel="int8 accuracy"),
    ] = 32,
    json_output: JsonOpt = False,
    backend: BackendOpt = "auto",
) -> None:
    """Convert a trained run's model.keras to TFLite and check each model's accuracy.

    Writes `model_<mode>.tflite` with embedded metadata (input size, channel order, quantization,
    validation RMSE, calibration), then runs each file with the TFLite interpreter on the validation
    images and prints RMSE, MAE and the difference from the Keras model. When int8 RMSE exceeds
    float32's by more than --max-drift, the quantization debugger lists the layers that lose most.

    Examples:

        edgecount convert runs/av

        edgecount convert runs/av --quantize int8 --calibration-size 400 --force

        edgecount convert runs/av --quantize float32,int8 --out converted/

        edgecount convert runs/av --quantize int8 --keep-float auto --force

        edgecount convert runs/av --quantize int8 --data /mnt/photos/av-faces  # the dataset moved
    """
    from edgecount.converters import QuantMode
    from edgecount.reports.conversion import ConvertSettings, run_conversion
    from edgecount.runs import RunDir

    try:
        requested = {mode for part in quantize.split(",") for mode in QuantMode.parse(part.strip())}
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--quantize") from error
    modes = [mode for mode in QuantMode if mode in requested]
    keep = [name for value in (keep_float or []) for name in value.split(",") if name.strip()]

    run = RunDir(run_dir)
    settings = ConvertSettings(
        modes=modes,
        out_dir=out or run.path,
        calibration_size=calibration_size,
        seed=seed,
        data_dir=data,
        force=force,
        max_drift=max_drift,
        warn_drift=WARN_DRIFT,
        keep_float=keep,
        debug_samples=debug_samples,
        bias_correction=bias_correction,
        backend=backend,
        on_phase=None if os.environ.get("EDGECOUNT_QUIET") == "1" else _print_phase,
    )
    report = run_conversion(run, settings)

    if json_output:
        print(json.dumps(report, indent=2, default=str))
    else:
        _print_report(report)


def _print_phase(message: str) -> None:
    print(f"{message}...", file=sys.stderr, flush=True)


def _number(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _print_report(report: dict[str, Any]) -> None:
    evaluation = report["evaluation"]
    print(f"Evaluated on {evaluation['images']} images ({evaluation['source']})")
    keras = report.get("keras") or {}
    if keras.get("rmse") is not None:
        print(f"Keras model: RMSE {keras['rmse']:.3f}, MAE {keras['mae']:.3f}")
    rows = [["mode", "file", "size MB", "RMSE", "MAE", "max |diff|", "mean |diff|", "vs float32"]]
    for model in report["models"]:
        drift = model.get("drift_vs_float32")
        rows.append(
            [
                model["mode"],
                model["file"],
                f"{model['size_bytes'] / 1e6:.2f}",
                _number(model.get("rmse")),
                _number(model.get("mae")),
                _number(model.get("max_abs_difference"), 4),
                _number(model.get("mean_abs_difference"), 4),
                "-" if drift is None else f"{drift * 100:+.1f}%",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))

    debugger = report.get("debugger")
    if debugger:
        print()
        print(f"int8 layers with the largest quantization error (rmse/scale; {debugger['rounding_floor']:.2f} is rounding alone):")
        from edgecount.converters.debugger import LayerError, format_layer_table

        fields = ("tensor_name", "op_name", "num_elements", "rmse", "max_abs_error", "scale")
        layers = [LayerError(**{key: layer[key] for key in fields}) for layer in debugger["layers"]]
        print(format_layer_table(layers))
        if not report.get("mixed"):
            print("Leave the worst layers in float with: --keep-float auto (or --keep-float TENSOR_NAME ...) --force", file=sys.stderr)
