"""Measure the live counting pipeline against the interpreter alone, in one run on one machine.

On a recorded 640x480 MJPG video (written from real photos), this script measures, for each
interpreter thread setting (``--threads``, default 1 and 2) and in interleaved rounds:

1. the bare ``invoke`` time of the interpreter on a set input;
2. the pipelined per-frame time: the steady-state wall time between two counts of the pipeline that
   ``edgecount webcam`` runs (a ``FramePreparer`` thread resizes the next decoded frame while the
   counting thread runs ``CountModel.predict_prepared`` on the current one);
3. inside the pipeline, the counting thread's wall time in ``predict_prepared`` and its wait for the
   prepared frame, and with one interpreter thread the CPU time of the counting thread per frame
   against the CPU time of a bare invoke. CPU time does not grow when other processes take the
   cores, so this ratio shows what the pipeline adds to the counting thread even on a busy machine;
4. the sequential per-frame time, ``CountModel.predict`` (resize and invoke in one thread), for reference;
5. the time to decode one frame of the video, for reference, because ``webcam`` decodes it too;
6. the sustained FPS of ``edgecount webcam --every 1 --json`` on the video, in a subprocess, from the
   timestamps of its output lines after the first ten;
7. the peak memory (RSS) of that subprocess.

Goals: pipelined time at most 1.15x bare invoke; webcam FPS at least 80% of 1/(pipelined time); peak
RSS under 200 MB with an int8 model. Within a round, the bare, pipelined and sequential timings
alternate in blocks of 50 frames, so that each ratio compares timings taken under nearly the same load
from other processes; the pipeline ratio is the median of the per-block ratios. The webcam FPS ratio
is computed per round. The medians over the rounds are checked against the goals. The absolute
numbers describe this machine only.

Usage:
    python benchmarks/webcam_pipeline.py [--model runs/av/model_int8.tflite] [--frames 300] [--rounds 5]
        [--threads 1 2] [--record]

Without ``--model`` it uses ``runs/av/model_int8.tflite`` beside the checkout when present. Else it
builds an untrained alpha 0.35 224x224 int8 model, which needs TensorFlow and the ImageNet weights.
Its counts are meaningless, but it runs the same ops on the same tensor sizes as a trained one.
``--record`` appends the results to ``benchmarks/RESULTS.md`` under the "Live counting" heading.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
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
# Frames per block of the alternating timings (see time_in_blocks).
BLOCK = 50


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


def decode_video(video: Path) -> tuple[list[np.ndarray], float]:
    """Decode every frame of the video in this thread; return the frames and the ms per frame."""
    capture = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    frames = []
    start = time.perf_counter()
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    elapsed = time.perf_counter() - start
    capture.release()
    return frames, elapsed * 1000.0 / max(1, len(frames))


def run_queue_wait_ms() -> float:
    """Return how long the calling thread has waited for a core so far, in ms, from the kernel's schedstat.

    The second field of ``/proc/thread-self/schedstat`` is the time that the thread was runnable but
    not running. It grows when other processes take the cores. It returns NaN where the file is missing.
    """
    try:
        return int(Path("/proc/thread-self/schedstat").read_text().split()[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return float("nan")


def time_bare_invoke(model, frames: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Time the interpreter's ``invoke`` alone, once per frame, on the input of the first frame.

    Returns:
        A dict of arrays in ms:

        - ``bare``: wall time per invoke.
        - ``bare_cpu``: CPU time of the calling thread per invoke, which is all of the invoke's CPU
          time with one interpreter thread.
        - ``bare_queued``: one value, the calling thread's mean run-queue wait per invoke.
    """
    interpreter = model._interpreter
    interpreter.set_tensor(model.input.index, model.prepare(frames[0]))
    interpreter.invoke()
    wall, cpu = np.empty(len(frames)), np.empty(len(frames))
    queued_before = run_queue_wait_ms()
    for index in range(len(frames)):
        start, start_cpu = time.perf_counter(), time.thread_time()
        interpreter.invoke()
        wall[index], cpu[index] = time.perf_counter() - start, time.thread_time() - start_cpu
    queued = (run_queue_wait_ms() - queued_before) / len(frames)
    return {"bare": wall * 1000.0, "bare_cpu": cpu * 1000.0, "bare_queued": np.array([queued])}


def time_sequential(model, frames: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Time ``CountModel.predict`` (resize, convert, invoke, read the output in one thread) per frame.

    Each frame is copied first, untimed, so that it is in the CPU cache like a frame fresh from the decoder.

    Returns:
        ``sequential``: wall ms per frame.
    """
    times = np.empty(len(frames))
    for index, frame in enumerate(frames):
        fresh = frame.copy()
        start = time.perf_counter()
        model.predict(fresh)
        times[index] = time.perf_counter() - start
    return {"sequential": times * 1000.0}


def time_pipelined(model, frames: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Run the pipeline of ``edgecount webcam`` on the frames and time the counting thread.

    A ``FramePreparer`` thread copies each frame (as a decoder would deliver it) and prepares it while
    this thread runs the interpreter on the previous one. The first two counts, while the thread
    starts and fills the pipeline, are left out.

    Returns:
        A dict of arrays in ms:

        - ``pipelined``: wall time between consecutive counts.
        - ``wait``: wall time that the counting thread waited in ``take`` for the prepared frame.
        - ``inference``: wall time of ``predict_prepared`` (set_tensor, invoke, get_tensor).
        - ``rest``: the remainder of each interval, spent in the loop's own few lines.
        - ``inference_cpu``: CPU time of the counting thread in ``predict_prepared``.
        - ``pipelined_queued``: one value, the counting thread's mean run-queue wait per frame.
    """
    from edgecount.runtime.frame_preparer import FramePreparer

    remaining = iter(frames)

    def read_frame() -> np.ndarray | None:
        frame = next(remaining, None)
        return None if frame is None else frame.copy()

    counted_at, waits, inference, inference_cpu = [], [], [], []
    queued_before = run_queue_wait_ms()
    with FramePreparer(read_frame, model.prepare, name="benchmark") as preparer:
        while True:
            start = time.perf_counter()
            prepared = preparer.take()
            if prepared is None:
                break
            waits.append(time.perf_counter() - start)
            start, start_cpu = time.perf_counter(), time.thread_time()
            model.predict_prepared(prepared.tensor)
            counted_at.append(time.perf_counter())
            inference.append(counted_at[-1] - start)
            inference_cpu.append(time.thread_time() - start_cpu)
    queued = (run_queue_wait_ms() - queued_before) / max(1, len(counted_at))
    # Interval i runs from count i - 1 to count i and contains wait i and inference i.
    intervals = np.diff(counted_at[2:]) * 1000.0
    waits_ms, inference_ms = np.array(waits[3:]) * 1000.0, np.array(inference[3:]) * 1000.0
    return {
        "pipelined": intervals,
        "wait": waits_ms,
        "inference": inference_ms,
        "rest": intervals - waits_ms - inference_ms,
        "inference_cpu": np.array(inference_cpu[3:]) * 1000.0,
        "pipelined_queued": np.array([queued]),
    }


def time_in_blocks(model, frames: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Alternate the three timings in blocks of ``BLOCK`` frames; return all times and the per-block ratios.

    Load from other processes changes within seconds on a shared machine. Blocks of a fraction of a
    second put the bare invoke and the pipeline that it is compared with under nearly the same load.

    Returns:
        The arrays of ``time_bare_invoke``, ``time_pipelined`` and ``time_sequential`` over all blocks,
        and per block ``pipelined_ratio`` (median pipelined / median bare) and ``sequential_ratio``.
    """
    for frame in frames[:WARMUP]:
        model.predict(frame)
    blocks: dict[str, list[np.ndarray]] = {}
    pipelined_ratios, sequential_ratios = [], []
    for first in range(0, len(frames) - BLOCK + 1, BLOCK):
        block = frames[first : first + BLOCK]
        measured = {**time_bare_invoke(model, block), **time_pipelined(model, block), **time_sequential(model, block)}
        for key, values in measured.items():
            blocks.setdefault(key, []).append(values)
        pipelined_ratios.append(np.median(measured["pipelined"]) / np.median(measured["bare"]))
        sequential_ratios.append(np.median(measured["sequential"]) / np.median(measured["bare"]))
    result = {key: np.concatenate(values) for key, values in blocks.items()}
    result["pipelined_ratio"] = np.array(pipelined_ratios)
    result["sequential_ratio"] = np.array(sequential_ratios)
    return result


def run_webcam(model_path: Path, video: Path, threads: int) -> tuple[float, float, str]:
    """Run ``edgecount webcam`` on the video; return (sustained FPS, peak RSS in MB, its summary line).

    The sustained FPS is the rate of the output lines after the first ``WARMUP``, from their
    millisecond timestamps, so that the interpreter's start-up does not count.
    """
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
        out.seek(0)
        rows = [json.loads(line) for line in out if line.strip()]
    if process.returncode != 0:
        raise RuntimeError(f"edgecount webcam failed with exit code {process.returncode}: {stderr[-2000:]}")
    summary = next(line for line in stderr.splitlines() if line.startswith("summary"))
    times = [datetime.fromisoformat(row["timestamp"]).timestamp() for row in rows[WARMUP:]]
    fps = (len(times) - 1) / max(times[-1] - times[0], 1e-3)
    return fps, peak_kb / 1024.0, summary


def _peak_rss_kb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else 0


def measure_round(model, model_path: Path, video: Path, threads: int) -> dict[str, float | str]:
    """Measure everything once for one thread setting; return medians, p90s and the ratios."""
    frames, decode_ms = decode_video(video)
    timed = time_in_blocks(model, frames)
    del frames
    fps, peak_mb, summary = run_webcam(model_path, video, threads)
    result: dict[str, float | str] = {"decode_ms": decode_ms, "fps": fps, "peak_mb": peak_mb, "summary": summary}
    for key, values in timed.items():
        result[key] = float(np.median(values))
        result[f"{key}_p90"] = float(np.percentile(values, 90))
        result[f"{key}_mean"] = float(np.mean(values))
    result["fps_ratio"] = fps * result["pipelined"] / 1000.0
    result["cpu_ratio"] = result["inference_cpu"] / result["bare_cpu"]
    return result


def summarize(rounds: list[dict[str, float | str]]) -> dict[str, float | str]:
    """Take the median of every number over the rounds, the maximum of the peak RSS, the median round's summary."""
    result: dict[str, float | str] = {key: float(np.median([r[key] for r in rounds])) for key in rounds[0] if key != "summary"}
    result["peak_mb"] = max(float(r["peak_mb"]) for r in rounds)
    result["threads"] = rounds[0]["threads"]
    by_fps = sorted(rounds, key=lambda r: r["fps"])
    result["summary"] = by_fps[len(by_fps) // 2]["summary"]
    return result


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def format_table(results: dict[int, dict[str, float | str]]) -> str:
    settings = sorted(results)
    columns = [results[t] for t in settings]

    def row(label: str, cell) -> str:
        return f"| {label} | " + " | ".join(cell(c) for c in columns) + " |"

    def with_p90(key: str):
        return lambda c: f"{c[key]:.2f} ({c[key + '_p90']:.2f})"

    def cpu_cell(key: str, digits: int = 2):
        # With more than one interpreter thread, the pool's other threads do part of the invoke, and
        # the calling thread's CPU time leaves that part out.
        return lambda c: f"{c[key]:.{digits}f}" if c["threads"] == 1 else "n/a"

    lines = [
        "| measure | " + " | ".join(f"--threads {t}" for t in settings) + " |",
        "|---|" + "---|" * len(settings),
        row("bare invoke, median (p90) ms", with_p90("bare")),
        row("pipelined per frame, median (p90) ms", with_p90("pipelined")),
        row(f"pipelined / bare invoke, median of blocks (goal <= {PIPELINE_GOAL})", lambda c: f"{c['pipelined_ratio']:.3f} {verdict(c['pipelined_ratio'] <= PIPELINE_GOAL)}"),
        row("counting thread: set_tensor + invoke + get_tensor, median (p90) ms", with_p90("inference")),
        row("counting thread: wait for the prepared frame, median (p90) ms", with_p90("wait")),
        row(
            "counting thread, means: interval = wait + inference + rest of the loop, ms",
            lambda c: f"{c['pipelined_mean']:.2f} = {c['wait_mean']:.2f} + {c['inference_mean']:.2f} + {c['rest_mean']:.2f}",
        ),
        row("CPU ms of bare invoke (one interpreter thread)", cpu_cell("bare_cpu")),
        row("CPU ms of the counting thread per pipelined frame", cpu_cell("inference_cpu")),
        row("counting-thread CPU / bare invoke CPU", cpu_cell("cpu_ratio", 3)),
        row(
            "run-queue wait (no free core) per frame, bare / pipelined, ms",
            lambda c: f"{c['bare_queued']:.2f} / {c['pipelined_queued']:.2f}",
        ),
        row("sequential per frame, median (p90) ms", with_p90("sequential")),
        row("sequential / bare invoke, median of blocks (reference)", lambda c: f"{c['sequential_ratio']:.3f}"),
        row("video decode per frame, ms (reference)", lambda c: f"{c['decode_ms']:.2f}"),
        row("webcam sustained FPS", lambda c: f"{c['fps']:.1f}"),
        row("1 / (pipelined per frame), FPS", lambda c: f"{1000.0 / c['pipelined']:.1f}"),
        row(f"webcam FPS / (1 / pipelined) (goal >= {FPS_GOAL})", lambda c: f"{c['fps_ratio']:.3f} {verdict(c['fps_ratio'] >= FPS_GOAL)}"),
        row(f"webcam peak RSS, max of rounds, MB (goal < {RSS_GOAL_MB:.0f})", lambda c: f"{c['peak_mb']:.0f} {verdict(c['peak_mb'] < RSS_GOAL_MB)}"),
    ]
    return "\n".join(lines)


def goals_met(result: dict[str, float | str]) -> bool:
    return result["pipelined_ratio"] <= PIPELINE_GOAL and result["fps_ratio"] >= FPS_GOAL and result["peak_mb"] < RSS_GOAL_MB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="int8 .tflite model; default: the trained run's, else a built one")
    parser.add_argument("--frames", type=int, default=300, help="video length in frames (default 300)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="interpreter thread settings to compare (default 1 2)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of all measures; medians are reported (default 5)")
    parser.add_argument("--record", action="store_true", help="append the results to benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.frames < max(BLOCK, 2 * WARMUP):
        parser.error(f"--frames must be {max(BLOCK, 2 * WARMUP)} or more, got {args.frames}")

    from edgecount.runtime import CountModel

    work = Path(tempfile.mkdtemp(prefix="edgecount-webcam-bench-"))
    source_model = args.model or (TRAINED_MODEL if TRAINED_MODEL.exists() else build_int8_model(work / "built_int8.tflite"))
    # A private copy, so that a run folder rewritten during the benchmark does not change the model.
    model_path = work / "model_int8.tflite"
    model_path.write_bytes(source_model.read_bytes())
    video = write_video(work / "bench_640x480.avi", args.frames)

    # Every round measures each thread setting once, so that load from other processes that changes
    # during the run affects all settings and all measures alike.
    models = {threads: CountModel(model_path, num_threads=threads) for threads in args.threads}
    rounds: dict[int, list[dict[str, float | str]]] = {threads: [] for threads in args.threads}
    for number in range(1, args.rounds + 1):
        for threads, model in models.items():
            rounds[threads].append({"threads": threads, **measure_round(model, model_path, video, threads)})
        print(f"round {number} of {args.rounds} done", file=sys.stderr)
    results = {threads: summarize(measured) for threads, measured in rounds.items()}

    table = format_table(results)
    meeting = [f"--threads {t}" for t in sorted(results) if goals_met(results[t])]
    conclusion = f"All three goals met with: {', '.join(meeting)}." if meeting else "No thread setting met all three goals."
    summaries = "\n".join(f"- `--threads {t}`: `{results[t]['summary']}`" for t in sorted(results))
    context = (
        f"Model `{source_model}` ({model_path.stat().st_size / 1e6:.2f} MB), {args.frames} frames of 640x480 MJPG, "
        f"threads {', '.join(str(t) for t in args.threads)}, medians of {args.rounds} interleaved rounds, {platform.machine()} "
        f"`{_cpu_name()}`, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end, Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n\n"
        f"`webcam` summary of the median round:\n\n{summaries}"
    )
    print(table)
    print()
    print(conclusion)
    print()
    print(context)
    if args.record:
        _record(table + "\n\n" + conclusion, context, args)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _record(table: str, context: str, args: argparse.Namespace) -> None:
    # Record the niceness this process really ran with, not the one the docs suggest.
    niceness = os.nice(0)
    command = (f"nice -n {niceness} " if niceness else "") + "python benchmarks/webcam_pipeline.py --record"
    command += f" --frames {args.frames}" if args.frames != 300 else ""
    if args.rounds != 5:
        command += f" --rounds {args.rounds}"
    if args.threads != [1, 2]:
        command += " --threads " + " ".join(str(t) for t in args.threads)
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
