"""The comparison plot: RMSE against latency, one marker per model, marker area by file size."""

from __future__ import annotations

import math
from pathlib import Path

from edgecount.reports.comparison import Comparison
from edgecount.runtime import EdgecountError

INSTALL_HINT = "pip install 'edgecount[train]' (or pip install matplotlib)"


class PlotUnavailableError(EdgecountError, ImportError):
    """matplotlib is not installed, so no PNG plot can be written."""


def plot_rmse_latency(comparison: Comparison, path: Path, threads: int | None = None) -> Path:
    """Write a PNG scatter plot of RMSE against median pipeline latency.

    Args:
        comparison: the measured comparison.
        path: the PNG file to write.
        threads: the thread count whose latency is plotted; default None uses the lowest measured.

    Returns:
        The PNG path.

    Raises:
        PlotUnavailableError: if matplotlib is not installed.
        ValueError: if no row has both an RMSE and a latency.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise PlotUnavailableError(f"writing the plot needs matplotlib, which is not installed; install it with: {INSTALL_HINT}") from error

    measured = comparison.settings["threads"]
    threads = threads if threads is not None else min(measured)
    points = [
        (row.name, row.latency[threads].pipeline.median_ms, row.metrics.rmse, row.size_bytes or 0)
        for row in comparison.rows
        if row.status == "ok" and row.metrics is not None and threads in row.latency
    ]
    if not points:
        raise ValueError(f"no model has both an RMSE and a latency at {threads} threads to plot")

    largest = max(size for *_, size in points) or 1
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    try:
        for name, latency_ms, rmse, size in points:
            # Marker area grows with file size, from 40 to 640 square points.
            area = 40 + 600 * math.sqrt(size / largest)
            axes.scatter(latency_ms, rmse, s=area, alpha=0.6)
            axes.annotate(f"{name} ({size / 1e6:.2f} MB)", (latency_ms, rmse), textcoords="offset points", xytext=(8, 6), fontsize=8)
        if comparison.keras.metrics is not None:
            axes.axhline(comparison.keras.metrics.rmse, color="gray", linestyle="--", linewidth=1, label="Keras RMSE")
            axes.legend(loc="best", fontsize=8)
        axes.set_xlabel(f"median latency per photo, preprocess + invoke (ms, {threads} thread{'s' if threads != 1 else ''})")
        axes.set_ylabel("count RMSE (faces)")
        axes.set_title(f"Accuracy against latency on {comparison.images} images; marker area ~ file size", fontsize=10)
        axes.grid(True, alpha=0.3)
        axes.margins(0.15)
        figure.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png")
    finally:
        plt.close(figure)
    return path
