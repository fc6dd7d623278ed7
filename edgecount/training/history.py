"""Training curves: ``history.csv`` and ``loss.png`` in the run folder, and per-epoch checkpoints."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import keras

HISTORY_COLUMNS = ("phase", "epoch", "loss", "rmse", "mae", "val_loss", "val_rmse", "val_mae", "learning_rate")
CHECKPOINTS_DIR = "checkpoints"


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


class EpochCheckpoint(keras.callbacks.Callback):
    """Save the counting model's weights and the epoch number after every epoch.

    Files: ``checkpoints/phase<N>.weights.h5`` (the latest epoch) and ``checkpoints/phase<N>.json``
    (``{"phase", "epoch", "logs"}``), written through a temporary file and a rename.

    Args:
        folder: the run's ``checkpoints`` folder.
        phase: 1 or 2.
        model: the full counting model, whose weights are saved (phase 1 trains a head model that shares
            its layers).
    """

    def __init__(self, folder: Path, phase: int, model: Any) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.phase = phase
        self.counting_model = model

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        from edgecount.runs import write_json_atomically

        self.folder.mkdir(parents=True, exist_ok=True)
        weights = self.folder / f"phase{self.phase}.weights.h5"
        temporary = self.folder / f".phase{self.phase}.tmp.weights.h5"
        self.counting_model.save_weights(temporary)
        os.replace(temporary, weights)
        state = {"phase": self.phase, "epoch": epoch + 1, "logs": {key: float(value) for key, value in (logs or {}).items()}}
        write_json_atomically(self.folder / f"phase{self.phase}.json", state)


def read_checkpoint_state(folder: Path, phase: int) -> dict[str, Any] | None:
    """Return the saved state of a phase's last checkpoint, or None."""
    path = Path(folder) / f"phase{phase}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
