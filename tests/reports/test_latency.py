"""Latency statistics and memory readings."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecount.reports.latency import current_rss_bytes, measure_latency, peak_rss_bytes, summarize_times, time_calls


def test_summarize_times_values() -> None:
    stats = summarize_times([1.0, 2.0, 3.0, 4.0, 10.0])

    assert stats.median_ms == 3.0
    assert stats.p90_ms == pytest.approx(7.6)
    assert stats.min_ms == 1.0
    assert stats.fps == pytest.approx(1000 / 3)


def test_summarize_times_rejects_empty() -> None:
    with pytest.raises(ValueError, match="--runs"):
        summarize_times([])


def test_time_calls_excludes_warmup() -> None:
    calls = []

    times = time_calls(calls.append, runs=4, warmup=3)

    assert len(times) == 4
    assert calls == [0, 1, 2, 0, 1, 2, 3]


@pytest.mark.parametrize(("runs", "warmup", "fragment"), [(0, 1, "runs must be"), (1, -1, "warmup must be")])
def test_time_calls_rejects_counts(runs: int, warmup: int, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        time_calls(lambda i: None, runs=runs, warmup=warmup)


def test_measure_latency_int8(tiny_run: Path) -> None:
    latency = measure_latency(tiny_run / "model_int8.tflite", 1, runs=5, warmup=2)

    assert latency.num_threads == 1
    assert latency.invoke.runs == 5
    assert latency.load_ms > 0
    assert latency.pipeline.median_ms >= latency.invoke.min_ms


def test_measure_latency_tiles_covers_inferences(tiny_run: Path) -> None:
    path = tiny_run / "model_int8.tflite"
    plain = measure_latency(path, 1, runs=10, warmup=2)
    tiled = measure_latency(path, 1, runs=10, warmup=2, tta="tiles")

    assert tiled.invoke.runs == 10
    assert tiled.pipeline.runs == 10
    # Each timed call runs 5 inferences instead of 1. The bound leaves room for a busy machine.
    assert tiled.invoke.min_ms > 2 * plain.invoke.min_ms
    assert tiled.pipeline.min_ms > plain.pipeline.min_ms
    assert tiled.pipeline.median_ms >= tiled.invoke.min_ms


def test_memory_readings_positive() -> None:
    assert peak_rss_bytes() > 10 * 2**20
    assert current_rss_bytes() > 10 * 2**20
