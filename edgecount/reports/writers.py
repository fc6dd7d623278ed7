"""Writing a comparison as a text table, Markdown, CSV and JSON.

Every format has the same two parts: an accuracy table with one row per model, and a latency table
with one row per model and thread count. CSV puts both in one flat table, one row per model and thread
count, so a spreadsheet can filter it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from edgecount.reports.comparison import Comparison, ModelRow

CSV_COLUMNS = [
    "model",
    "kind",
    "status",
    "reason",
    "size_mb",
    "images",
    "rmse",
    "mae",
    "bias",
    "worst_error",
    "rmse_change_vs_keras",
    "max_abs_difference_vs_keras",
    "threads",
    "load_ms",
    "invoke_median_ms",
    "invoke_p90_ms",
    "pipeline_median_ms",
    "pipeline_p90_ms",
    "fps",
    "speedup_vs_float32",
    "path",
]

LEGEND = (
    "RMSE, MAE, bias (mean of count - true count) and worst error are in faces. dRMSE is the change of RMSE "
    "against the Keras model. invoke = bare interpreter call; pipeline = preprocessing plus invoke on a "
    "photo; p50/p90 = median and 90th percentile in ms after warm-up; FPS = 1000 / pipeline p50; "
    "speed-up = float32 invoke p50 / this invoke p50 at the same thread count."
)


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _size_mb(row: ModelRow) -> str:
    return "-" if row.size_bytes is None else f"{row.size_bytes / 1e6:.2f}"


def _keras_change(row: ModelRow) -> str:
    if row.rmse_change_vs_keras is not None:
        return f"{row.rmse_change_vs_keras:+.3f}"
    return "n/a"


def _status(row: ModelRow) -> str:
    return row.status if row.status == "ok" else f"{row.status}: {row.reason}"


def accuracy_rows(comparison: Comparison) -> list[list[str]]:
    """Return the accuracy table as rows of strings, header first."""
    rows = [["model", "size MB", "RMSE", "MAE", "bias", "worst", "dRMSE vs Keras", "status"]]
    for row in comparison.rows:
        metrics = row.metrics
        rows.append(
            [
                row.name,
                _size_mb(row),
                _number(metrics.rmse if metrics else None),
                _number(metrics.mae if metrics else None),
                _number(metrics.bias if metrics else None, 3) if metrics else "-",
                _number(metrics.worst_error if metrics else None, 2),
                _keras_change(row),
                _status(row),
            ]
        )
    return rows


def latency_rows(comparison: Comparison) -> list[list[str]]:
    """Return the latency table as rows of strings, header first; failed rows are left out."""
    rows = [["model", "threads", "invoke p50", "invoke p90", "pipeline p50", "pipeline p90", "FPS", "speed-up"]]
    for row in comparison.rows:
        for threads, latency in sorted(row.latency.items()):
            speedup = row.speedup.get(threads)
            rows.append(
                [
                    row.name,
                    str(threads),
                    _number(latency.invoke.median_ms, 2),
                    _number(latency.invoke.p90_ms, 2),
                    _number(latency.pipeline.median_ms, 2),
                    _number(latency.pipeline.p90_ms, 2),
                    _number(latency.pipeline.fps, 1),
                    "-" if speedup is None else f"{speedup:.2f}x",
                ]
            )
    return rows


def header_lines(comparison: Comparison) -> list[str]:
    """Return the report header: machine, interpreter, images and settings."""
    system, settings = comparison.system, comparison.settings
    lines = [
        f"CPU: {system.get('cpu')} ({system.get('cores')} cores, {system.get('architecture')}); OS: {system.get('os')}",
        f"Interpreter: {system.get('backend', '?')} {system.get('backend_version', '?')}; threads: "
        f"{', '.join(map(str, settings['threads']))}; runs: {settings['runs']} after {settings['warmup']} warm-up",
        f"Images: {comparison.images} labelled"
        + (f", {len(comparison.failed_images)} failed to decode" if comparison.failed_images else ""),
    ]
    keras = comparison.keras
    if keras.metrics is not None:
        lines.append(f"Keras model: RMSE {keras.metrics.rmse:.3f}, MAE {keras.metrics.mae:.3f}")
    else:
        lines.append(f"Keras model: n/a ({keras.note})")
    return lines


def _aligned(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) if i == 0 or i == len(row) - 1 else cell.rjust(width) for i, (cell, width) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def format_text(comparison: Comparison) -> str:
    """Format the comparison as plain-text tables for a terminal."""
    parts = ["\n".join(header_lines(comparison)), _aligned(accuracy_rows(comparison))]
    latency = latency_rows(comparison)
    if len(latency) > 1:
        parts.append(_aligned(latency))
    return "\n\n".join(parts) + "\n"


def _markdown_table(rows: list[list[str]]) -> str:
    def escape(cell: str) -> str:
        return cell.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(escape(c) for c in rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(escape(c) for c in row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def format_markdown(comparison: Comparison, title: str = "Quantization comparison") -> str:
    """Format the comparison as a Markdown document."""
    parts = [
        f"# {title}",
        "\n".join(f"- {line}" for line in header_lines(comparison)),
        "## Accuracy",
        _markdown_table(accuracy_rows(comparison)),
    ]
    latency = latency_rows(comparison)
    if len(latency) > 1:
        parts += ["## Latency (ms)", _markdown_table(latency)]
    parts.append(LEGEND)
    return "\n\n".join(parts) + "\n"


def csv_records(comparison: Comparison) -> list[dict[str, Any]]:
    """Return one record per model and thread count (one per model when it has no latency)."""
    records = []
    for row in comparison.rows:
        metrics = row.metrics
        base = {
            "model": row.name,
            "kind": row.kind,
            "status": row.status,
            "reason": row.reason,
            "size_mb": None if row.size_bytes is None else round(row.size_bytes / 1e6, 4),
            "images": metrics.images if metrics else None,
            "rmse": metrics.rmse if metrics else None,
            "mae": metrics.mae if metrics else None,
            "bias": metrics.bias if metrics else None,
            "worst_error": metrics.worst_error if metrics else None,
            "rmse_change_vs_keras": row.rmse_change_vs_keras if row.rmse_change_vs_keras is not None else "n/a",
            "max_abs_difference_vs_keras": row.output_difference["max_abs_difference"] if row.output_difference else None,
            "path": row.path,
        }
        if not row.latency:
            records.append(base)
        for threads, latency in sorted(row.latency.items()):
            records.append(
                {
                    **base,
                    "threads": threads,
                    "load_ms": latency.load_ms,
                    "invoke_median_ms": latency.invoke.median_ms,
                    "invoke_p90_ms": latency.invoke.p90_ms,
                    "pipeline_median_ms": latency.pipeline.median_ms,
                    "pipeline_p90_ms": latency.pipeline.p90_ms,
                    "fps": latency.pipeline.fps,
                    "speedup_vs_float32": row.speedup.get(threads),
                }
            )
    return records


def format_csv(comparison: Comparison) -> str:
    """Format the comparison as CSV with ``CSV_COLUMNS``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in csv_records(comparison):
        writer.writerow({key: ("" if value is None else value) for key, value in record.items()})
    return buffer.getvalue()


def format_json(comparison: Comparison) -> str:
    """Format the comparison as indented JSON."""
    return json.dumps(comparison.to_dict(), indent=2, sort_keys=False, default=str) + "\n"


def write_text_atomically(path: Path, text: str) -> None:
    """Write a text file through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w") as handle:
            # mkstemp creates the file as 0600; give it the permissions a plain open() would.
            mask = os.umask(0o022)
            os.umask(mask)
            os.fchmod(handle.fileno(), 0o666 & ~mask)
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_reports(comparison: Comparison, out_dir: Path, stem: str = "comparison") -> dict[str, Path]:
    """Write ``<stem>.md``, ``.csv`` and ``.json`` into ``out_dir`` and return their paths by format."""
    out_dir = Path(out_dir)
    written = {}
    for suffix, formatter in (("md", format_markdown), ("csv", format_csv), ("json", format_json)):
        path = out_dir / f"{stem}.{suffix}"
        write_text_atomically(path, formatter(comparison))
        written[suffix] = path
    return written
