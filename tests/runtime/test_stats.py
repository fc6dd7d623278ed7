"""Moving averages, frame rates and latency percentiles of live counting."""

from __future__ import annotations

import pytest

from edgecount.runtime.stats import LatencyStats, MovingAverage, RateMeter


def test_moving_average_window():
    average = MovingAverage(3)
    assert [average.add(value) for value in (3.0, 6.0, 9.0, 12.0)] == pytest.approx([3.0, 4.5, 6.0, 9.0])


def test_moving_average_size_one_is_identity():
    average = MovingAverage(1)
    assert [average.add(value) for value in (1.5, 7.0)] == [1.5, 7.0]


def test_moving_average_rejects_zero():
    with pytest.raises(ValueError, match="size of 1 or more, got 0"):
        MovingAverage(0)


def test_rate_meter_steady_rate():
    meter = RateMeter(window_s=2.0)
    rates = [meter.tick(now=index * 0.1) for index in range(50)]
    assert rates[0] == 0.0
    assert rates[-1] == pytest.approx(10.0)


def test_rate_meter_follows_a_slowdown():
    meter = RateMeter(window_s=1.0)
    for index in range(20):
        meter.tick(now=index * 0.05)
    rate = 0.0
    for index in range(1, 6):
        rate = meter.tick(now=1.0 + index * 0.5)
    assert rate == pytest.approx(2.0)


def test_latency_stats_mean_and_p90():
    stats = LatencyStats()
    for value in range(1, 101):
        stats.add(float(value))
    assert stats.count == 100
    assert stats.mean == pytest.approx(50.5)
    assert stats.percentile(90) == pytest.approx(90.1)


def test_latency_stats_window_bounds_memory():
    stats = LatencyStats(window=10)
    for value in range(1000):
        stats.add(float(value))
    assert stats.count == 1000
    assert stats.mean == pytest.approx(499.5)
    assert stats.percentile(0) == 990.0


def test_latency_stats_empty():
    assert LatencyStats().percentile(90) == 0.0
    assert LatencyStats().mean == 0.0
