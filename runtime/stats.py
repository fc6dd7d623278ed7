"""Running statistics for live counting: smoothed counts, frame rate and latency percentiles.

Every structure has a fixed size, so a counter that runs for weeks on a board uses constant memory.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

# Latency percentiles are computed over the newest 10,000 frames (about 15 minutes at 10 FPS), which
# keeps the summary of a long run about its recent behaviour and its memory at 80 kB.
LATENCY_WINDOW = 10_000


class MovingAverage:
    """The mean of the last ``size`` values.

    Args:
        size: how many values to average; 1 returns each value unchanged.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"the moving average needs a size of 1 or more, got {size}")
        self._values: deque[float] = deque(maxlen=size)
        self._total = 0.0

    def add(self, value: float) -> float:
        """Add a value and return the mean of the last ``size`` values, fewer at the start."""
        if len(self._values) == self._values.maxlen:
            self._total -= self._values[0]
        self._values.append(value)
        self._total += value
        # Recompute now and then so that float rounding in the running total cannot build up.
        if len(self._values) == self._values.maxlen and abs(self._total) > 1e6:
            self._total = float(sum(self._values))
        return self._total / len(self._values)


class RateMeter:
    """Events per second over a sliding time window.

    Args:
        window_s: the window in seconds; default 2.0, long enough to average a few slow frames and
            short enough to show a change within seconds.
    """

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()

    def tick(self, now: float | None = None) -> float:
        """Record an event at ``now`` (default ``time.monotonic()``) and return the current rate."""
        now = time.monotonic() if now is None else now
        self._times.append(now)
        while len(self._times) > 2 and now - self._times[0] > self.window_s:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        return (len(self._times) - 1) / max(now - self._times[0], 1e-9)


class LatencyStats:
    """Count, mean and percentiles of per-frame latencies in milliseconds.

    The count and mean cover every value; percentiles cover the newest ``LATENCY_WINDOW`` values.
    """

    def __init__(self, window: int = LATENCY_WINDOW) -> None:
        self._window: deque[float] = deque(maxlen=window)
        self.count = 0
        self._total = 0.0

    def add(self, latency_ms: float) -> None:
        self._window.append(latency_ms)
        self.count += 1
        self._total += latency_ms

    @property
    def mean(self) -> float:
        return self._total / self.count if self.count else 0.0

    def percentile(self, q: float) -> float:
        """Return the ``q``-th percentile (0..100) of the recent latencies, 0.0 before the first one."""
        if not self._window:
            return 0.0
        return float(np.percentile(np.fromiter(self._window, dtype=np.float64), q))
