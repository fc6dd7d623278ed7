"""Training curves: ``history.csv`` and ``loss.png`` in the run folder."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

HISTORY_COLUMNS = ("phase", "epoch", "loss", "rmse", "mae", "val_loss", "val_rmse", "val_mae", "learning_rate")


def history_rows(phase: int, history: dict[str, list[float]], first_epoch: int, learning_rate: float) -> list[dict[str, Any]]:
    """Turn a Keras ``History.history`` into rows numbered across phases (epoch 1 is the first of phase 1)."""
    epochs = len(history.get("loss", []))
    rows = []
    for index in range(epochs):
        row: dict[str, Any] = {"phase": phase, "epoch": first_epoch + index, "learning_rate": learning_rate}
        for column in HISTORY_COLUMNS[2:-1]:
            values = history.get(column)
            row[column] = round(float(values[index]), 6) if values and index < len(values) else ""
        rows.append(row)
    return rows


def write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write ``history.csv`` with one row per epoch of every phase."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def plot_history(path: Path, rows: list[dict[str, Any]], title: str) -> None:
    """Draw training and validation RMSE per epoch into ``loss.png``, with a line where phase 2 starts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4), dpi=100)
    try:
        epochs = [row["epoch"] for row in rows]
        for column, label in (("rmse", "train RMSE (with dropout)"), ("val_rmse", "validation RMSE")):
            values = [row[column] if row[column] != "" else float("nan") for row in rows]
            axis.plot(epochs, values, marker=".", label=label)
        phase_two = [row["epoch"] for row in rows if row["phase"] == 2]
        if phase_two:
            axis.axvline(phase_two[0] - 0.5, color="gray", linestyle="--", label="fine-tuning starts")
        axis.set_xlabel("epoch")
        axis.set_ylabel("count RMSE")
        axis.set_title(title)
        axis.grid(alpha=0.3)
        axis.legend()
        figure.tight_layout()
        figure.savefig(path)
    finally:
        plt.close(figure)
