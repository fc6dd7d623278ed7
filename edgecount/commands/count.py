"""``edgecount count``: count faces in image files, folders and glob patterns."""

from __future__ import annotations

import csv
import glob
import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from edgecount.commands.options import BackendOpt, ModelArg, ThreadsOpt, TtaOpt, check_tta
from edgecount.runtime import BACKENDS, IMAGE_SUFFIXES, CountModel, EdgecountError, collect_image_paths, load_image


def count(
    model: ModelArg,
    paths: Annotated[list[str], typer.Argument(help="Image files, folders or glob patterns such as 'photos/*.jpg'.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object with every result instead of a table.")] = False,
    csv_output: Annotated[bool, typer.Option("--csv", help="Print CSV (path,count,latency_ms,error) instead of a table.")] = False,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Scan folders recursively.")] = False,
    threads: ThreadsOpt = None,
    backend: BackendOpt = "auto",
    tta: TtaOpt = "none",
) -> None:
    """Count faces in images with a TFLite model, without TensorFlow.

    A file that cannot be decoded is reported with its reason and the others are still counted; the
    exit code is 1 when any input failed.

    Examples:

        edgecount count runs/av/model_int8.tflite photos/

        edgecount count model.tflite 'party/*.jpg' --json

        edgecount count model.tflite group.jpg --threads 4 --csv > counts.csv

        edgecount count model.tflite photos/ --tta flip
    """
    if json_output and csv_output:
        raise typer.BadParameter("choose one of --json and --csv")
    if backend not in ("auto", *BACKENDS):
        raise typer.BadParameter(f"unknown backend {backend!r}; choose one of: auto, {', '.join(BACKENDS)}", param_hint="--backend")
    count_model = CountModel(model, num_threads=threads, backend=backend, tta=check_tta(tta))

    image_paths, unmatched = collect_image_paths(paths, recursive=recursive)
    results = [{"path": item, "count": None, "latency_ms": None, "error": _unmatched_reason(item)} for item in unmatched]
    for image_path in image_paths:
        results.append(_count_one(count_model, image_path))

    _print_results(results, json_output, csv_output, count_model)
    failed = sum(1 for result in results if result["error"])
    if failed:
        print(f"{failed} of {len(results)} inputs failed; their errors are in the output above", file=sys.stderr)
        raise typer.Exit(code=1)


def _unmatched_reason(item: str) -> str:
    """Say why an input matched no image file, and what to pass instead."""
    path = Path(item)
    if path.is_dir():
        return f"{item}: the folder has no image files ({', '.join(IMAGE_SUFFIXES)}); use --recursive for subfolders"
    if glob.has_magic(item):
        return f"{item}: the pattern matched no files; check the folder and the pattern, and quote it so the shell does not expand it"
    return f"{item}: no such file or folder; check the path"


def _count_one(count_model: CountModel, image_path: Path) -> dict:
    try:
        frame = load_image(image_path)
        start = time.perf_counter()
        value = count_model.predict(frame)
        latency_ms = (time.perf_counter() - start) * 1000.0
    except EdgecountError as error:
        return {"path": str(image_path), "count": None, "latency_ms": None, "error": str(error)}
    return {"path": str(image_path), "count": round(value, 3), "latency_ms": round(latency_ms, 2), "error": None}


def _print_results(results: list[dict], json_output: bool, csv_output: bool, count_model: CountModel) -> None:
    if json_output:
        counted = [r["count"] for r in results if r["count"] is not None]
        document = {
            "model": str(count_model.path),
            "backend": count_model.backend.name,
            "tta": count_model.tta or "none",
            "results": results,
            "total_count": round(sum(counted), 3),
        }
        print(json.dumps(document, indent=2))
        return
    if csv_output:
        writer = csv.DictWriter(sys.stdout, fieldnames=["path", "count", "latency_ms", "error"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(results)
        return

    width = max([len("path")] + [len(r["path"]) for r in results])
    print(f"{'path':<{width}}  {'count':>7}  {'rounded':>7}  {'ms':>7}  error")
    for result in results:
        if result["error"]:
            print(f"{result['path']:<{width}}  {'-':>7}  {'-':>7}  {'-':>7}  {result['error']}")
        else:
            print(
                f"{result['path']:<{width}}  {result['count']:>7.2f}  {round(result['count']):>7d}  "
                f"{result['latency_ms']:>7.1f}"
            )
