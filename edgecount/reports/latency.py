"""Latency and memory of a TFLite model: bare ``invoke`` and the whole preprocess-and-invoke pipeline.

Each measurement runs ``warmup`` calls first and leaves them out, because the first invocations
allocate buffers and fill caches (XNNPACK packs weights on the first run). Times are wall-clock
``time.perf_counter`` per call, reported as median and 90th percentile in milliseconds.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecount.runtime import CountModel

DEFAULT_RUNS = 50
DEFAULT_WARMUP = 5


@dataclass(frozen=True)
class LatencyStats:
    """Summary of per-call times in milliseconds; ``fps`` is ``1000 / median_ms``."""

    runs: int
    median_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float

    @property
    def fps(self) -> float:
        return 1000.0 / self.median_ms if self.median_ms > 0 else float("inf")

    def to_dict(self) -> dict[str, float]:
        return {
            "runs": self.runs,
            "median_ms": self.median_ms,
            "p90_ms": self.p90_ms,
            "mean_ms": self.mean_ms,
            "std_ms": self.std_ms,
            "min_ms": self.min_ms,
            "max_ms": self.max_ms,
            "fps": self.fps,
        }


def summarize_times(times_ms: Sequence[float]) -> LatencyStats:
    """Summarise per-call times.

    Raises:
        ValueError: if there are no times.
    """
    if len(times_ms) == 0:
        raise ValueError("no timed runs to summarise; pass --runs 1 or more")
    values = np.asarray(times_ms, dtype=np.float64)
    return LatencyStats(
        runs=int(values.size),
        median_ms=float(np.median(values)),
        p90_ms=float(np.percentile(values, 90)),
        mean_ms=float(values.mean()),
        std_ms=float(values.std()),
        min_ms=float(values.min()),
        max_ms=float(values.max()),
    )


def time_calls(call: Callable[[int], Any], runs: int, warmup: int) -> list[float]:
    """Call ``call(i)`` ``warmup`` times untimed, then ``runs`` times, and return each timed call in ms.

    Raises:
        ValueError: if ``runs`` is below 1 or ``warmup`` below 0.
    """
    if runs < 1:
        raise ValueError(f"runs must be 1 or more, got {runs}")
    if warmup < 0:
        raise ValueError(f"warmup must be 0 or more, got {warmup}")
    for i in range(warmup):
        call(i)
    times = []
    for i in range(runs):
        start = time.perf_counter()
        call(i)
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def random_frame(seed: int = 0) -> np.ndarray:
    """Return a random HxWx3 uint8 BGR frame of 612x408 pixels, the size of most av-faces photos.

    The pipeline timing resizes it, so its size, not the model's, sets the preprocessing cost.
    """
    return np.random.default_rng(seed).integers(0, 256, size=(408, 612, 3), dtype=np.uint8)


@dataclass(frozen=True)
class ModelLatency:
    """Latency of one model at one thread count."""

    num_threads: int
    load_ms: float
    invoke: LatencyStats
    pipeline: LatencyStats

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_threads": self.num_threads,
            "load_ms": self.load_ms,
            "invoke": self.invoke.to_dict(),
            "pipeline": self.pipeline.to_dict(),
        }


def measure_latency(
    path: str | os.PathLike[str],
    num_threads: int,
    frames: Sequence[np.ndarray] | None = None,
    runs: int = DEFAULT_RUNS,
    warmup: int = DEFAULT_WARMUP,
    backend: str = "auto",
    tta: str | None = None,
) -> ModelLatency:
    """Load a model with ``num_threads`` and time bare ``invoke`` and preprocess-plus-invoke.

    Args:
        path: the ``.tflite`` file.
        num_threads: interpreter threads.
        frames: BGR frames cycled through by the pipeline timing; default None uses one random
            612x408 frame. The bare ``invoke`` timing feeds the prepared tensor of the first frame.
        runs: timed calls per measurement. Default 50.
        warmup: untimed calls before each measurement. Default 5.
        backend: the interpreter backend, as for ``CountModel``.
        tta: test-time augmentation, as for ``CountModel``. With ``"flip"`` the invoke timing covers
            both calls (the frame and its mirror image). With ``"tiles"`` it covers all 5 calls (the
            frame and its 4 quadrants) and the pipeline timing preprocesses the frame and its 4 crops.
            Default None.

    Raises:
        ModelError, BackendError: if the model does not load.
        ValueError: for ``runs`` below 1 or ``warmup`` below 0.
    """
    start = time.perf_counter()
    model = CountModel(path, num_threads=num_threads, backend=backend, tta=tta)
    load_ms = (time.perf_counter() - start) * 1000.0

    frames = list(frames) if frames else [random_frame()]
    tensor = model.prepare(frames[0])
    # Each row of the prepared tensor is one inference: 5 rows with tiles, 1 otherwise.
    inputs = [tensor[row : row + 1] for row in range(len(tensor))]
    if model.tta == "flip":
        inputs.append(model.prepare(np.ascontiguousarray(frames[0][:, ::-1])))
    invoke_times = time_calls(lambda i: [model.invoke(item) for item in inputs], runs, warmup)
    pipeline_times = time_calls(lambda i: model.predict(frames[i % len(frames)]), runs, warmup)
    return ModelLatency(num_threads, load_ms, summarize_times(invoke_times), summarize_times(pipeline_times))


def peak_rss_bytes() -> int:
    """Return the process's peak resident memory (high-water mark) in bytes.

    ``getrusage`` reports kilobytes on Linux and bytes on macOS.
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def current_rss_bytes() -> int | None:
    """Return the current resident memory in bytes, from psutil when installed, else ``/proc``; None if neither works."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        return int(psutil.Process().memory_info().rss)
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return None
