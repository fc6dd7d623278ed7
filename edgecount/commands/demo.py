"""``edgecount demo``: the whole job in one command: train, convert, compare and count."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from edgecount.runtime import CountModel, load_image

# The entries a demo folder holds: the synthetic dataset and the run.
DEMO_ENTRIES = ("data", "run")


def demo(
    data: Annotated[
        Path | None,
        typer.Option("--data", help="A labelled folder of real photos. Default: write a synthetic dataset first."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for the dataset, the run and the report.")] = Path("demo-run"),
    images: Annotated[int, typer.Option("--images", min=10, help="Images in the synthetic dataset.")] = 400,
    image_size: Annotated[
        int | None,
        typer.Option("--image-size", min=32, help="Model input size in pixels. Default: 128 for the synthetic set, 224 with --data."),
    ] = None,
    weights: Annotated[
        str,
        typer.Option("--weights", help="Base weights: 'imagenet' (Keras downloads them), 'none', or a no-top MobileNetV2 .h5 path."),
    ] = "imagenet",
    threads: Annotated[str, typer.Option("--threads", help="Comma list of interpreter thread counts for the comparison.")] = "1",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing demo folder.")] = False,
) -> None:
    """Run train, convert, compare and count end to end on a default dataset.

    Without --data the dataset is synthetic: scikit-image's bundled LFW face crops pasted onto its
    bundled photos, counts known by construction. It checks that the pipeline works on this machine
    in a few minutes; a model trained on it does not count faces in real photos. With --data the same
    steps run on real photos.

    Examples:

        edgecount demo

        edgecount demo --data ../shared/data/av-faces --out demo-av --force

        edgecount demo --weights mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5
    """
    from edgecount.commands.compare import compare
    from edgecount.commands.convert import convert
    from edgecount.commands.train import train
    from edgecount.datasets.synthetic import write_synthetic_dataset

    if out.exists() and any(out.iterdir()):
        if not force:
            raise typer.BadParameter(f"{out} already exists and is not empty; pass --force to replace it", param_hint="--out")
        # --force replaces only what a demo wrote, so a mistyped --out never deletes other files.
        foreign = sorted(entry.name for entry in out.iterdir() if entry.name not in DEMO_ENTRIES)
        if foreign:
            raise typer.BadParameter(
                f"{out} is not a demo folder (it contains {', '.join(foreign[:5])}), so --force does not replace it; "
                "choose another --out",
                param_hint="--out",
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    run_dir = out / "run"

    # Step 1: the dataset.
    if data is None:
        _step(f"writing a SYNTHETIC dataset of {images} images to {out / 'data'} (scikit-image LFW faces on bundled photos)")
        summary = write_synthetic_dataset(out / "data", images=images)
        data = summary.folder
        _step(f"{summary.images} images, {summary.faces} faces; counts are known by construction, not real photos")
        size = image_size or 128
    else:
        size = image_size or 224

    # Step 2: train. Step 3: convert to every mode. Step 4: compare them. Step 5: count.
    _step(f"training MobileNetV2 alpha 0.35 at {size}x{size} into {run_dir}")
    train(data=data, out=run_dir, alpha=0.35, image_size=size, weights=weights, fine_tune_epochs=0, force=True)
    _step("converting to float32, float16, dynamic-range and int8 TFLite")
    convert(run_dir=run_dir, quantize="all", calibration_size=100, force=True)
    _step(f"comparing the four models on the validation images; report in {run_dir / 'report'}")
    compare(run_dir=run_dir, threads=threads, out=run_dir / "report", runs=20, haar=False)
    _step("counting faces in five validation images with the int8 model, without TensorFlow")
    _count_examples(run_dir)
    _step(f"done. Next: edgecount count {run_dir / 'model_int8.tflite'} YOUR_PHOTOS/")


def _step(message: str) -> None:
    print(f"[demo] {message}", file=sys.stderr, flush=True)


def _count_examples(run_dir: Path) -> None:
    from edgecount.runs import RunDir

    model = CountModel(run_dir / "model_int8.tflite")
    for sample in RunDir(run_dir).samples("validation")[:5]:
        count = model.predict(load_image(sample.path))
        print(f"{sample.path.name}: count {count:.2f} (true {sample.count:g})")
