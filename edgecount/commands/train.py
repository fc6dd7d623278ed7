"""``edgecount train``: train a MobileNetV2 face counter on a labelled folder and write a run folder."""

from __future__ import annotations

import inspect
import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from edgecount.training.mosaic import DEFAULT_MOSAIC

ADVANCED = "Advanced"
DISTRIBUTED = "Scaling out"
CROSS_VALIDATION = "Cross-validation"


def train(
    data: Annotated[Path | None, typer.Option("--data", help="Dataset folder: labels.csv + images/, the challenge's train.csv + image_data/, or a box file alone. Required unless --resume.", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder to write (model.keras, run.json, split.csv, history.csv, loss.png). Required unless --resume.", show_default=False)] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue the interrupted run RUN_DIR (its --out folder or the .<name>.partial folder) from its last epoch checkpoint, with the settings it was started with.", metavar="RUN_DIR", show_default=False)] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="MobileNetV2 width multiplier: 0.35, 0.5, 0.75 or 1.0. Default 0.35.")] = 0.35,
    image_size: Annotated[int, typer.Option("--image-size", min=32, help="Square model input size in pixels. Default 448: in 5-fold cross-validation it counted better than 320 and 224 (mean RMSE 1.41 against 1.48 and 1.65), for about 2 and 4 times their compute per image.")] = 448,
    weights: Annotated[str, typer.Option("--weights", help="Base weights: 'imagenet' (Keras downloads them), 'none' (random initialisation; both keywords in any case), or the path of a no-top MobileNetV2 .h5. Default imagenet.")] = "imagenet",
    validation_split: Annotated[float, typer.Option("--validation-split", help="Share of images held out for validation, stratified by count. Default 0.2.")] = 0.2,
    seed: Annotated[int, typer.Option("--seed", help="Seed for the split, initial weights, shuffling and dropout. Default 0.")] = 0,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Maximum phase 1 epochs (head on cached features); early stopping usually ends sooner. Default 100.")] = 100,
    fine_tune_layers: Annotated[int, typer.Option("--fine-tune-layers", min=0, help="Trailing MobileNetV2 layers unfrozen in phase 2 (batch normalisation stays frozen); 0 skips fine-tuning, and 1 or 2 are rejected because they unfreeze no weight. Default 39: the last four inverted residual blocks (block_13 to block_16) and the 1280-channel convolution. 12 is block_16 and the convolution.")] = 39,
    fine_tune_epochs: Annotated[int, typer.Option("--fine-tune-epochs", min=0, help="Maximum phase 2 epochs; 0 skips fine-tuning. Default 15, which suits --fine-tune-on maps; over images an epoch costs a full pass of the base.")] = 15,
    fine_tune_on: Annotated[str, typer.Option("--fine-tune-on", help="What phase 2 trains on: maps (the output of the frozen front of the base, computed once per image and its mirror image, so an epoch is cheap) or images (decoded and augmented every epoch, with colour jitter and recounted crops). Streamed images always use images. Default maps.")] = "maps",
    augment: Annotated[bool, typer.Option("--augment/--no-augment", help="Augment: phase 1 takes the features of each image or of its mirror image at random (a second feature pass), phase 2 flips, jitters colour and brightness, and crops recounted from face boxes when the dataset has them. Default on.")] = True,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on the first bad row or image instead of skipping it with a warning.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing run folder.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per step and replica. Default 32.", rich_help_panel=ADVANCED)] = 32,
    learning_rate: Annotated[float, typer.Option("--learning-rate", help="Phase 1 Adam learning rate (one replica). Default 0.001.", rich_help_panel=ADVANCED)] = 1e-3,
    fine_tune_learning_rate: Annotated[float, typer.Option("--fine-tune-learning-rate", help="Phase 2 Adam learning rate (one replica). Default 0.0001.", rich_help_panel=ADVANCED)] = 1e-4,
    patience: Annotated[int, typer.Option("--patience", min=0, help="Epochs without a lower validation loss before a phase stops. Default 8.", rich_help_panel=ADVANCED)] = 8,
    head_units: Annotated[int, typer.Option("--head-units", min=0, help="Hidden ReLU units in the head; 0 for a linear head. Default 256.", rich_help_panel=ADVANCED)] = 256,
    dropout: Annotated[float, typer.Option("--dropout", min=0.0, max=0.95, help="Dropout rate before the output unit. Default 0.5.", rich_help_panel=ADVANCED)] = 0.5,
    loss: Annotated[str, typer.Option("--loss", help="Training loss: mse (early stopping then tracks the validation RMSE) or huber (delta 1 face, less pull from the rare crowded photo). Default mse, which had the lower RMSE in cross-validation.", rich_help_panel=ADVANCED)] = "mse",
    target: Annotated[str, typer.Option("--target", help="What the head fits: count, sqrt (square root of the count) or log (log of 1 + count). The model ends in the inverse, so it always outputs the count. Default count, which had the lowest RMSE in cross-validation.", rich_help_panel=ADVANCED)] = "count",
    count_weighting: Annotated[str, typer.Option("--count-weighting", help="Sample weights against the long tail of counts: none, or sqrt-inverse (each training image weighs 1 over the square root of how common its count is, smoothed over neighbouring counts, so rare crowded photos pull harder on the fit). Default none: in 5-fold cross-validation on the challenge photos, sqrt-inverse raised the mean RMSE from 1.29 to 1.48 and barely reduced the undercount of crowds.", rich_help_panel=ADVANCED)] = "none",
    mosaic: Annotated[float, typer.Option("--mosaic", help="Phase 2 mosaics per training photo, 0 to 4: each is four random training photos at half size, tiled 2x2, whose count is the sum of theirs, so crowded scenes are no longer rare. 0 (default) turns them off. On maps they cost one pass of the frozen front per mosaic and as much memory as a photo's maps. In cross-validation on the challenge photos with --alpha 0.5, 0.5 cut the undercount of photos with 15 or more faces by a quarter and raised the mean RMSE from 1.20 to 1.28; alpha 0.35 was not measured.")] = DEFAULT_MOSAIC,
    quadrants: Annotated[int, typer.Option("--quadrants", help="Phase 2 quadrant crops per training photo, 0 to 4: each is a quarter of the photo at the input size, so its faces are twice as large, with its count recounted from the face boxes (the dataset needs boxes.csv). A model trained with them can also count by tiles at run time (--tta tiles). 0 (default) turns them off. They cost one pass of the frozen front per quadrant of every photo, cached.")] = 0,
    features_dir: Annotated[Path | None, typer.Option("--features-dir", help="Feature cache folder to use instead of RUN_DIR/features; runs with the same images, base, weights and input size can share one.", rich_help_panel=ADVANCED, show_default=False)] = None,
    tensorboard: Annotated[bool, typer.Option("--tensorboard", help="Also write TensorBoard logs into RUN_DIR/logs.", rich_help_panel=ADVANCED)] = False,
    stream: Annotated[bool | None, typer.Option("--stream/--in-memory", help="Stream images through tf.data, or hold them in memory. Default: stream above 2 GiB of preprocessed pixels.", rich_help_panel=DISTRIBUTED, show_default=False)] = None,
    strategy: Annotated[str, typer.Option("--strategy", help="default (one device), mirrored (all local GPUs) or multi-worker (cluster from TF_CONFIG). Batch and learning rate scale with the replicas.", rich_help_panel=DISTRIBUTED)] = "default",
    folds: Annotated[int, typer.Option("--folds", help="Cross-validate instead of training one model: K folds stratified by count, one model per fold trained on the others with these settings. Writes cv.json, cv.md and predictions.csv into --out; the fold models are not kept. At least 2; 0 (default) trains one run.", rich_help_panel=CROSS_VALIDATION)] = 0,
    cv_int8: Annotated[bool, typer.Option("--cv-int8", help="With --folds: also convert each fold's model to int8 (calibrated on its training folds) and report its RMSE against the float model's.", rich_help_panel=CROSS_VALIDATION)] = False,
) -> None:
    """Train a face-counting MobileNetV2 on a labelled folder.

    Phase 1 trains the head on base features computed once and cached; phase 2 fine-tunes the last
    base layers on cached maps of the frozen front of the base (or over the images). The run folder is written atomically, and the final metrics are
    printed as JSON on stdout.

    Examples:

        edgecount train --data data/av-faces --out runs/av

        edgecount train --data data/av-faces --out runs/av --alpha 0.35 --weights mobilenet_v2_0.35_no_top.h5

        edgecount train --data challenge/ --out runs/small --image-size 128 --fine-tune-epochs 0

        edgecount train --data big/ --out runs/big --stream --strategy mirrored --force

        edgecount train --resume runs/av

        edgecount train --data data/av-faces --out runs/av-cv --folds 5 --cv-int8
    """
    from edgecount.training.config import TrainConfig
    from edgecount.training.run_folder import load_resume_config
    from edgecount.training.trainer import train as run_training

    quiet = os.environ.get("EDGECOUNT_QUIET") == "1"
    interactive = sys.stderr.isatty() and not quiet
    if resume is not None:
        # The interrupted run's settings decide everything, so any other setting would be ignored.
        arguments = locals()
        changed = [name for name, default in _DEFAULTS.items() if arguments[name] != default]
        if changed:
            flags = ", ".join("--" + name.replace("_", "-") for name in changed)
            raise typer.BadParameter(f"--resume continues with the settings the run was started with; drop {flags}")
        config = load_resume_config(resume)
        config.verbose = 1 if interactive else 2
        if quiet:
            config.verbose = 0
        document = _train_with_progress(config, run_training, True) if interactive else run_training(config, resume=True)
        _print_summary(config.out_dir, document)
        return
    if data is None or out is None:
        raise typer.BadParameter("--data and --out are required to start a run (or pass --resume RUN_DIR to continue one)")
    if folds == 1 or folds < 0:
        raise typer.BadParameter(f"--folds must be 0 (train one run) or at least 2, got {folds}; 5 is usual", param_hint="--folds")
    if cv_int8 and not folds:
        raise typer.BadParameter("--cv-int8 needs --folds K; convert a single run with: edgecount convert RUN_DIR --quantize int8", param_hint="--cv-int8")
    if folds and strategy != "default":
        raise typer.BadParameter(f"--folds trains on one device only, got --strategy {strategy}; drop --strategy", param_hint="--strategy")
    if folds and tensorboard:
        raise typer.BadParameter("--folds does not write TensorBoard logs; drop --tensorboard", param_hint="--tensorboard")
    config = TrainConfig(
        data_dir=data, out_dir=out, alpha=alpha, image_size=image_size, weights=weights,
        validation_split=validation_split, seed=seed, batch_size=batch_size, epochs=epochs,
        learning_rate=learning_rate, patience=patience, fine_tune_layers=fine_tune_layers,
        fine_tune_epochs=fine_tune_epochs, fine_tune_learning_rate=fine_tune_learning_rate,
        head_units=head_units, dropout=dropout, loss=loss, stream=stream, strategy=strategy,
        augment=augment, strict=strict, force=force, tensorboard=tensorboard, verbose=2,
        target=target, features_dir=features_dir, fine_tune_on=fine_tune_on, count_weighting=count_weighting,
        mosaic=mosaic, quadrants=quadrants,
    )
    # Keras draws a progress bar (verbose=1) only on a terminal without -q. Otherwise fit logs one
    # line per epoch (verbose=2), which is what a log file or CI output needs, and -q hides both.
    if interactive:
        config.verbose = 1
    if quiet:
        config.verbose = 0
    try:
        config.validate()
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error

    if folds:
        _cross_validate(config, folds, cv_int8, interactive, quiet)
        return
    if interactive:
        document = _train_with_progress(config, run_training)
    else:
        document = run_training(config)
    _print_summary(out, document)


def _cross_validate(config, folds: int, int8: bool, interactive: bool, quiet: bool) -> None:
    from edgecount.training.crossval import cross_validate

    config.verbose = 2
    if interactive:
        document = _train_with_progress(config, lambda settings, on_step, _resume: cross_validate(settings, folds, int8, on_step))
    else:
        # Without a terminal there are no progress bars, and a cross-validation can run for an hour,
        # so a log file gets one line per finished fold (-q hides them).
        document = cross_validate(config, folds, int8, None if quiet else _fold_lines(time.perf_counter()))
    summary = {
        "cv": str(config.out_dir),
        "folds": folds,
        "rmse_mean": document["mean"]["rmse"]["mean"],
        "rmse_std": document["mean"]["rmse"]["std"],
        "mae_mean": document["mean"]["mae"]["mean"],
        "bias_mean": document["mean"]["bias"]["mean"],
        "rmse_15_plus": document["buckets"][-1]["rmse"],
    }
    if "int8" in document:
        summary["int8_rmse_mean"] = document["int8"]["mean"]["rmse"]["mean"]
        summary["int8_rmse_ratio_mean"] = (document["int8"]["rmse_ratio"] or {}).get("mean")
    if "tiles" in document:
        summary["tiles_rmse_mean"] = document["tiles"]["mean"]["rmse"]["mean"]
    summary["seconds"] = document["timing"]["total_seconds"]
    print(json.dumps(summary, indent=2))


def _fold_lines(started: float):
    """Return an ``on_step`` callback that writes ``fold K/N done after M min`` to stderr after each fold."""

    def on_step(stage: str, done: int, total: int) -> None:
        if stage == "fold":
            print(f"fold {done}/{total} done after {(time.perf_counter() - started) / 60:.1f} min", file=sys.stderr, flush=True)

    return on_step


def _print_summary(out: Path, document: dict) -> None:
    summary = {"run": str(out), **{key: value for key, value in document["metrics"].items() if key != "note"}}
    summary["seconds"] = document["training"]["total_seconds"]
    print(json.dumps(summary, indent=2))


def _train_with_progress(config, run_training, resume: bool = False) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=_stderr_console()) as progress:
        tasks: dict[str, int] = {}

        def on_step(stage: str, done: int, total: int) -> None:
            # Keras prints its own per-epoch progress, so the bars stop before training starts.
            if stage == "features-done":
                progress.stop()
                return
            if stage.startswith("phase"):
                return
            if stage not in tasks:
                label = {
                    "decode": "decoding images", "features": "base features", "mirrored-features": "mirrored base features",
                    "maps": "phase 2 maps", "mirrored-maps": "mirrored phase 2 maps", "mosaics": "phase 2 mosaics",
                    "quadrants": "phase 2 quadrants", "fold": "folds",
                }.get(stage, stage)
                tasks[stage] = progress.add_task(label, total=total)
            progress.update(tasks[stage], completed=done)

        return run_training(config, on_step, resume)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


# Every setting that --resume takes from the interrupted run instead, with its command-line default.
_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(train).parameters.items()
    if name not in ("resume", "data", "out")
}
_DEFAULTS.update(data=None, out=None)
