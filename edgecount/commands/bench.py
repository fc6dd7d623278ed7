"""``edgecount bench``: latency and memory of one TFLite model, without labels or TensorFlow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edgecount.commands.compare import default_threads, parse_threads
from edgecount.commands.options import THREADS_HELP, BackendOpt, JsonOpt, ModelArg


def bench(
    model: ModelArg,
    image: Annotated[
        Path | None, typer.Option("--image", help="Time on this photo instead of a random 612x408 frame.")
    ] = None,
    threads: Annotated[
        str, typer.Option("--threads", help=f"Comma list of interpreter thread counts, e.g. 1,2,4. {THREADS_HELP}")
    ] = default_threads(),
    runs: Annotated[int, typer.Option("--runs", min=1, help="Timed runs per measurement.")] = 100,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed runs before each measurement.")] = 10,
    json_output: JsonOpt = False,
    backend: BackendOpt = "auto",
) -> None:
    """Measure a model's latency: median, p90 and standard deviation per thread count, load time and memory.

    Times the bare interpreter call (invoke) and the whole pipeline (preprocess + invoke) after
    warm-up runs, which are left out. Peak memory is the process's high-water mark.

    Examples:

        edgecount bench runs/av/model_int8.tflite

        edgecount bench model.tflite --threads 1,2,4 --runs 200 --json

        edgecount bench model.tflite --image group.jpg --warmup 20
    """
    from edgecount.reports.environment import system_info
    from edgecount.reports.latency import current_rss_bytes, measure_latency, peak_rss_bytes
    from edgecount.runtime import CountModel, load_image

    thread_counts = parse_threads(threads)
    frames = [load_image(image)] if image is not None else None
    rss_before = current_rss_bytes()
    # Loading once first validates the model and reports its tensors; each thread count loads it again.
    count_model = CountModel(model, num_threads=thread_counts[0], backend=backend)
    results = [measure_latency(model, n, frames, runs=runs, warmup=warmup, backend=backend) for n in thread_counts]
    rss_after = current_rss_bytes()

    document = {
        "model": str(model),
        "size_bytes": count_model.size_bytes,
        "quantization": count_model.quantization,
        "input_shape": list(count_model.input.shape),
        "input_dtype": str(count_model.input.dtype),
        "input": str(image) if image is not None else "random 612x408 frame",
        "system": system_info(count_model.backend, thread_counts),
        "runs": runs,
        "warmup": warmup,
        "results": [result.to_dict() for result in results],
        "peak_rss_mb": round(peak_rss_bytes() / 2**20, 1),
        "rss_growth_mb": None if rss_before is None or rss_after is None else round((rss_after - rss_before) / 2**20, 1),
    }
    if json_output:
        print(json.dumps(document, indent=2))
        return

    system = document["system"]
    print(f"{model} ({count_model.quantization}, {count_model.size_bytes / 1e6:.2f} MB, input {document['input_dtype']} {document['input_shape']})")
    print(f"CPU: {system['cpu']} ({system['cores']} cores, {system['architecture']}); {system['backend']} {system['backend_version']}")
    print(f"input: {document['input']}; {runs} runs after {warmup} warm-up; times in ms")
    header = ["threads", "load", "invoke p50", "p90", "std", "pipeline p50", "p90", "std", "FPS"]
    rows = [header]
    for result in results:
        rows.append(
            [
                str(result.num_threads),
                f"{result.load_ms:.1f}",
                f"{result.invoke.median_ms:.2f}",
                f"{result.invoke.p90_ms:.2f}",
                f"{result.invoke.std_ms:.2f}",
                f"{result.pipeline.median_ms:.2f}",
                f"{result.pipeline.p90_ms:.2f}",
                f"{result.pipeline.std_ms:.2f}",
                f"{result.pipeline.fps:.1f}",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths)))
    growth = document["rss_growth_mb"]
    print(f"peak RSS: {document['peak_rss_mb']} MB" + ("" if growth is None else f"; RSS growth while benchmarking: {growth} MB"))
