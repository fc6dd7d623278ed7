"""Training checkpoints that let ``edgecount train --resume`` continue a run exactly where it stopped.

A checkpoint is written after every epoch into ``checkpoints/`` of the partial run folder:
``save-<n>.npz`` holds arrays (every model variable including the dropout seed state, the optimizer
variables, the best weights so far, the phase 1 result), and ``state.json`` holds the loop state
(phase, epochs done, early-stopping best and wait, the Keras history) and names its ``.npz``. The
``.npz`` is written first and ``state.json`` is replaced last, so a crash between the two leaves the
previous checkpoint valid.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgecount.runs import write_json_atomically
from edgecount.runtime.errors import EdgecountError

_log = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "state.json"


class CheckpointError(EdgecountError, ValueError):
    """A checkpoint that cannot be read or does not fit the model being resumed."""


class CheckpointStore:
    """The ``checkpoints`` folder of one run.

    Args:
        folder: the folder; created on the first save.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def save(self, state: dict[str, Any], arrays: dict[str, list[np.ndarray]]) -> None:
        """Write one checkpoint atomically and delete the previous one.

        Args:
            state: JSON-ready loop state.
            arrays: named lists of arrays, for example ``{"model": [...], "optimizer": [...]}``.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        previous = self.load_state()
        number = int(previous["save"]) + 1 if previous else 1
        name = f"save-{number}.npz"
        flat = {f"{group}/{index}": np.asarray(value) for group, values in arrays.items() for index, value in enumerate(values)}
        temporary = self.folder / f".{name}.tmp"
        with open(temporary, "wb") as handle:
            np.savez(handle, **flat)
        os.replace(temporary, self.folder / name)
        write_json_atomically(self.folder / STATE_FILE, {**state, "save": number, "arrays": name})
        for stale in self.folder.glob("save-*.npz"):
            if stale.name != name:
                stale.unlink(missing_ok=True)

    def load_state(self) -> dict[str, Any] | None:
        """Return the state of the last checkpoint, or None when there is none."""
        path = self.folder / STATE_FILE
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise CheckpointError(f"checkpoint state {path} is unreadable ({error}); delete {self.folder} to restart the run") from error

    def load_arrays(self, state: dict[str, Any]) -> dict[str, list[np.ndarray]]:
        """Return the named array lists of the checkpoint that ``state`` names.

        Raises:
            CheckpointError: if the ``.npz`` file is missing or unreadable.
        """
        path = self.folder / state["arrays"]
        try:
            with np.load(path) as archive:
                flat = {key: archive[key] for key in archive.files}
        except (OSError, ValueError) as error:
            raise CheckpointError(f"checkpoint {path} is missing or unreadable ({error}); delete {self.folder} to restart the run") from error
        groups: dict[str, list[np.ndarray]] = {}
        for key in sorted(flat, key=lambda key: (key.rsplit("/", 1)[0], int(key.rsplit("/", 1)[1]))):
            groups.setdefault(key.rsplit("/", 1)[0], []).append(flat[key])
        return groups


def variable_values(variables: list[Any]) -> list[np.ndarray]:
    """Return the values of Keras variables as NumPy arrays, in order."""
    return [np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable) for variable in variables]


def assign_values(variables: list[Any], values: list[np.ndarray], what: str) -> None:
    """Assign saved values to Keras variables, checking count and shapes first.

    Raises:
        CheckpointError: if the checkpoint was written by a different model or optimizer.
    """
    if len(variables) != len(values):
        raise CheckpointError(f"the checkpoint has {len(values)} {what} arrays but the model has {len(variables)}; it belongs to another model")
    for variable, value in zip(variables, values):
        if tuple(variable.shape) != tuple(value.shape):
            raise CheckpointError(f"checkpoint {what} array for {variable.path} has shape {value.shape}, expected {tuple(variable.shape)}")
    for variable, value in zip(variables, values):
        variable.assign(value)
