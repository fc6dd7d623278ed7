"""Benchmark: do the quantized models of a trained run meet edgecount's size, speed and accuracy goals?

Goals, as ratios measured in one run on the run's validation split:

- int8 RMSE at most 1.03x float32 RMSE;
- int8 bare invoke at least 2.0x faster than float32 at 1 thread;
- int8 file at most 0.30x the float32 file.

The speed ratio comes from an interleaved measurement: float32 and int8 take turns in rounds of
invokes, so load from other processes on a shared machine hits both alike. The full comparison
table (every mode, every thread count, the Haar baseline) is printed as Markdown.

Usage:

    python benchmarks/compare_quantization.py runs/av [--threads 1,2] [--convert] [--out DIR]

``--convert`` first runs ``edgecount convert RUN --quantize all --force``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from edgecount.reports.comparison import KerasReference, compare_models
from edgecount.reports.environment import system_info
from edgecount.reports.evaluation import clip_counts, count_metrics, load_evaluation_images, predict_keras
from edgecount.reports.writers import format_markdown, write_reports
from edgecount.runs import RunDir
from edgecount.runtime import CountModel, load_backend

RMSE_GOAL = 1.03
SPEED_GOAL = 2.0
SIZE_GOAL = 0.30
MODES = ("float32", "float16", "dynamic", "int8", "int8_mixed")


def interleaved_invoke_ms(paths: dict[str, Path], frame: np.ndarray, rounds: int, per_round: int) -> dict[str, float]:
    """Return each model's median invoke time at 1 thread, measured in alternating rounds."""
    models = {name: CountModel(path, num_threads=1) for name, path in paths.items()}
    tensors = {name: model.prepare(frame) for name, model in models.items()}
    for name, model in models.items():
        for _ in range(10):
            model.invoke(tensors[name])
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            for _ in range(per_round):
                start = time.perf_counter()
                model.invoke(tensors[name])
                times[name].append((time.perf_counter() - start) * 1000.0)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the trained run folder")
    parser.add_argument("--threads", default="1,2", help="comma list of thread counts for the table (default 1,2)")
    parser.add_argument("--runs", type=int, default=100, help="timed runs per table measurement (default 100)")
    parser.add_argument("--rounds", type=int, default=20, help="rounds of the interleaved speed measurement (default 20)")
    parser.add_argument("--convert", action="store_true", help="convert the run in all modes first (overwrites)")
    parser.add_argument("--out", type=Path, help="also write comparison.md/.csv/.json here")
    args = parser.parse_args()

    run = RunDir(args.run)
    if args.convert:
        from edgecount.cli import main as cli_main

        try:
            cli_main(["convert", str(run.path), "--quantize", "all", "--force"])
        except SystemExit as exit_:
            if exit_.code not in (0, None):
                return int(exit_.code)

    # Accuracy and latency of every model on the validation split.
    images = load_evaluation_images(run.samples("validation"))
    keras_model = run.load_keras_model()
    keras_outputs = predict_keras(keras_model, images)
    keras = KerasReference(keras_outputs, "", count_metrics(clip_counts(keras_outputs), images.true_counts, images.paths))
    threads = [int(value) for value in args.threads.split(",")]
    paths = [run.tflite_path(mode) for mode in MODES if run.tflite_path(mode).is_file()]
    comparison = compare_models(paths, images, threads, keras, system_info(load_backend(), threads), runs=args.runs, warmup=10)
    rows = {row.name: row for row in comparison.rows}

    # The three goals.
    float32, int8 = rows["float32"], rows["int8"]
    speed = interleaved_invoke_ms({"float32": run.tflite_path("float32"), "int8": run.tflite_path("int8")}, images.frames[0], args.rounds, 25)
    rmse_ratio = int8.metrics.rmse / float32.metrics.rmse
    speed_ratio = speed["float32"] / speed["int8"]
    size_ratio = int8.size_bytes / float32.size_bytes
    goals = [
        ("int8 RMSE / float32 RMSE", rmse_ratio, f"<= {RMSE_GOAL}", rmse_ratio <= RMSE_GOAL),
        ("float32 invoke / int8 invoke, 1 thread", speed_ratio, f">= {SPEED_GOAL}", speed_ratio >= SPEED_GOAL),
        ("int8 size / float32 size", size_ratio, f"<= {SIZE_GOAL}", size_ratio <= SIZE_GOAL),
    ]

    print(format_markdown(comparison))
    print("## Goals\n")
    print("| goal | measured | target | met |\n|---|---|---|---|")
    for name, value, target, met in goals:
        print(f"| {name} | {value:.3f} | {target} | {'yes' if met else 'no'} |")
    print(
        f"\nInterleaved 1-thread invoke medians ({args.rounds} rounds x 25 calls): float32 {speed['float32']:.2f} ms, "
        f"int8 {speed['int8']:.2f} ms."
    )
    if args.out:
        write_reports(comparison, args.out)
    return 0 if all(met for *_, met in goals) else 1


if __name__ == "__main__":
    sys.exit(main())
