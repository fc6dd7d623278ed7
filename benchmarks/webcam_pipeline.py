"""Measure the live counting pipeline against the interpreter alone, in one run on one machine.

On a recorded 640x480 MJPG video (written from real photos), this script measures:

1. the per-frame time of the whole pipeline: resize, BGR to RGB, quantize, invoke, read the output
   (``CountModel.predict`` on decoded frames);
2. the bare ``invoke`` time of the interpreter on the same input, right after each pipeline run;
3. the sustained FPS of ``edgecount webcam --every 1`` on the video, in a subprocess;
4. the peak memory (RSS) of that subprocess.

Goals: pipeline time at most 1.15x bare invoke; webcam FPS at least 80% of 1/(pipeline time); peak
RSS under 200 MB with an int8 model. Only ratios measured in the same run are compared; the
absolute numbers describe this machine only.

Usage:
    python benchmarks/webcam_pipeline.py [--model runs/av/model_int8.tflite] [--frames 300] [--record]

Without ``--model`` it uses ``runs/av/model_int8.tflite`` beside the checkout when present. Else it
builds an untrained alpha 0.35 224x224 int8 model, which needs TensorFlow and the ImageNet weights.
Its counts are meaningless, but it runs the same ops on the same tensor sizes as a trained one.
``--record`` appends the results to ``benchmarks/RESULTS.md`` under the "Live counting" heading.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("EDGECOUNT_SHARED", REPO_ROOT.parent / "shared"))
TRAINED_MODEL = REPO_ROOT.parent / "runs" / "av" / "model_int8.tflite"
RESULTS = REPO_ROOT / "benchmarks" / "RESULTS.md"
HEADING = "## Live counting"

PIPELINE_GOAL = 1.15
FPS_GOAL = 0.80
RSS_GOAL_MB = 200.0
WARMUP = 10


def build_int8_model(path: Path) -> Path:
    """Convert an untrained alpha 0.35 224x224 counting model to int8, calibrated on 64 real photos."""
    import shutil

    keras_home = path.parent / "keras_home"
    (keras_home / "models").mkdir(parents=True, exist_ok=True)
    for weights in (SHARED_DIR / "weights").glob("*.h5"):
        shutil.copy(weights, keras_home / "models" / weights.name)
    os.environ["KERAS_HOME"] = str(keras_home)

    from edgecount.converters import convert_keras_model, embed_metadata, load_calibration_frames, representative_samples
    from edgecount.training.model import build_count_model

    weights = SHARED_DIR / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
    model = build_count_model(0.35, 224, weights)
    photos = sorted((SHARED_DIR / "data" / "av-faces" / "images").glob("*.jpg"))[:64]
    frames, _ = load_calibration_frames(photos)
    data = convert_keras_model(model, "int8", representative_samples(frames, (224, 224)))
    path.write_bytes(embed_metadata(data, {"quantization": "int8", "alpha": 0.35, "input_size": [224, 224], "untrained": True}))
    return path


def write_video(path: Path, frames: int) -> Path:
    photos = sorted((SHARED_DIR / "data" / "av-faces" / "images").glob("*.jpg"))[:30]
    images = [cv2.resize(cv2.imread(str(photo)), (640, 480), interpolation=cv2.INTER_AREA) for photo in photos]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 480))
    for index in range(frames):
        writer.write(images[index % len(images)])
    writer.release()
    return path


def time_pipeline_and_invoke(model, frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Time ``CountModel.predict`` on each frame and a bare ``invoke`` right after it, as pairs.

    The pipeline is resize, BGR to RGB, quantize, invoke and reading the output. The bare invoke
    runs the interpreter again on the input that ``predict`` just set. Measuring both for every
    frame puts each pair under the same load from other processes. Each frame is copied first,
    untimed, so that it is in the CPU cache like a frame fresh from the decoder.

    Returns:
        ``(pipeline ms, bare invoke ms)``, one value per frame.
    """
    interpreter = model._interpreter
    for frame in frames[:WARMUP]:
        model.predict(frame)
    pipeline, bare = np.empty(len(frames)), np.empty(len(frames))
    for index, frame in enumerate(frames):
        fresh = frame.copy()
        start = time.perf_counter()
        model.predict(fresh)
        pipeline[index] = time.perf_counter() - start
        start = time.perf_counter()
        interpreter.invoke()
        bare[index] = time.perf_counter() - start
    return pipeline * 1000.0, bare * 1000.0


def run_webcam(model_path: Path, video: Path, threads: int) -> tuple[float, float, str]:
    """Run ``edgecount webcam`` on the video; return (FPS from its summary, peak RSS in MB, summary)."""
    command = [sys.executable, "-m", "edgecount", "webcam", str(model_path), "--source", str(video), "--every", "1", "--threads", str(threads), "--json"]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        # VmHWM is the peak RSS of the process since its exec. ru_maxrss of children would also
        # count the pages the child shared with this process between fork and exec.
        peak_kb = 0
        while process.poll() is None:
            peak_kb = max(peak_kb, _peak_rss_kb(process.pid))
            time.sleep(0.05)
        err.seek(0)
        stderr = err.read()
    if process.returncode != 0:
        raise RuntimeError(f"edgecount webcam failed with exit code {process.returncode}: {stderr[-2000:]}")
    summary = next(line for line in stderr.splitlines() if line.startswith("summary"))
    fps = float(re.search(r"([\d.]+) FPS over", summary).group(1))
    return fps, peak_kb / 1024.0, summary


def _peak_rss_kb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="int8 .tflite model; default: the trained run's, else a built one")
    parser.add_argument("--frames", type=int, default=300, help="video length in frames (default 300)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="interpreter threads (default all cores)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the three measures; each uses its best (default 3)")
    parser.add_argument("--record", action="store_true", help="append the results to benchmarks/RESULTS.md")
    args = parser.parse_args()

    from edgecount.runtime import CountModel
    from edgecount.runtime.sources import VideoSource

    work = Path(tempfile.mkdtemp(prefix="edgecount-webcam-bench-"))
    source_model = args.model or (TRAINED_MODEL if TRAINED_MODEL.exists() else build_int8_model(work / "built_int8.tflite"))
    # A private copy, so that a run folder rewritten during the benchmark does not change the model.
    model_path = work / "model_int8.tflite"
    model_path.write_bytes(source_model.read_bytes())
    video = write_video(work / "bench_640x480.avi", args.frames)
    with VideoSource(video) as source:
        frames = list(source)

    # The measures alternate for --rounds rounds and the best round of each is kept, so that load
    # from other processes during one phase skews the ratios between phases less.
    model = CountModel(model_path, num_threads=args.threads)
    rounds = []
    for _ in range(args.rounds):
        pipeline, bare = time_pipeline_and_invoke(model, frames)
        fps, peak_mb, summary = run_webcam(model_path, video, args.threads)
        rounds.append((bare, pipeline, fps, peak_mb, summary))
    del model, frames

    # The pipeline and bare invoke times come from the same round because they are paired per frame.
    bare, pipeline = min(((r[0], r[1]) for r in rounds), key=lambda pair: np.median(pair[1]))
    fps, _, summary = max(((r[2], r[3], r[4]) for r in rounds), key=lambda r: r[0])
    peak_mb = max(r[3] for r in rounds)
    bare_ms, pipeline_ms = float(np.median(bare)), float(np.median(pipeline))
    pipeline_ratio = pipeline_ms / bare_ms
    fps_ratio = fps / (1000.0 / pipeline_ms)
    rows = [
        ("bare invoke, median ms", f"{bare_ms:.2f}", f"p90 {np.percentile(bare, 90):.2f}"),
        ("pipeline per frame, median ms", f"{pipeline_ms:.2f}", f"p90 {np.percentile(pipeline, 90):.2f}"),
        ("pipeline / bare invoke", f"{pipeline_ratio:.3f}", f"goal <= {PIPELINE_GOAL}: {'met' if pipeline_ratio <= PIPELINE_GOAL else 'MISSED'}"),
        ("webcam sustained FPS", f"{fps:.1f}", f"1/(pipeline time) = {1000.0 / pipeline_ms:.1f}"),
        ("webcam FPS / (1/pipeline)", f"{fps_ratio:.3f}", f"goal >= {FPS_GOAL}: {'met' if fps_ratio >= FPS_GOAL else 'MISSED'}"),
        ("webcam peak RSS (max of rounds), MB", f"{peak_mb:.0f}", f"goal < {RSS_GOAL_MB:.0f}: {'met' if peak_mb < RSS_GOAL_MB else 'MISSED'}"),
    ]
    table = "| measure | value | note |\n|---|---|---|\n" + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    context = (
        f"Model `{source_model}` ({model_path.stat().st_size / 1e6:.2f} MB), {args.frames} frames of 640x480 MJPG, "
        f"{args.threads} threads, best of {args.rounds} rounds, {platform.machine()} `{_cpu_name()}`, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n\n"
        f"`webcam` summary: `{summary}`"
    )
    print(table)
    print()
    print(context)
    if args.record:
        _record(table, context, args)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _record(table: str, context: str, args: argparse.Namespace) -> None:
    command = "nice -n 10 python benchmarks/webcam_pipeline.py --record" + (f" --frames {args.frames}" if args.frames != 300 else "")
    if args.rounds != 3:
        command += f" --rounds {args.rounds}"
    if args.model:
        command += f" --model {args.model}"
    entry = f"\n### Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\nCommand: `{command}`\n\n{context}\n\n{table}\n"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if HEADING not in text:
        text = text.rstrip("\n") + f"\n\n{HEADING}\n\nRecorded by `benchmarks/webcam_pipeline.py`; newest run last.\n"
    # Insert at the end of this heading's section, before the next top-level "## " heading if any.
    start = text.index(HEADING) + len(HEADING)
    following = text.find("\n## ", start)
    end = len(text) if following == -1 else following
    text = text[:end].rstrip("\n") + "\n" + entry + text[end:]
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
