"""The run folder: everything ``edgecount train`` writes and later commands read.

Layout of ``RUN_DIR``:

- ``run.json``: the run's configuration and results (see ``RunDir.config``);
- ``split.csv``: ``path,count,subset`` with the absolute image path, the true count and ``train`` or
  ``validation``, so that ``convert`` and ``compare`` evaluate on exactly the training run's split;
- ``model.keras``: the trained Keras model (raw RGB pixels 0..255 in, one count out);
- ``history.csv`` and ``loss.png``: the training curves;
- ``model_<mode>.tflite``: the converted models, written by ``edgecount convert``.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecount.runtime.errors import EdgecountError

RUN_FILE = "run.json"
SPLIT_FILE = "split.csv"
KERAS_FILE = "model.keras"
HISTORY_FILE = "history.csv"
SUBSETS = ("train", "validation")
# mkstemp creates owner-only files, but run files are outputs that other users and tools read.
RUN_FILE_MODE = 0o644


class RunDirError(EdgecountError, FileNotFoundError):
    """A run folder is missing or incomplete."""


@dataclass(frozen=True)
class Sample:
    """One labelled image: its path and its true count."""

    path: Path
    count: float


def write_json_atomically(path: Path, document: dict[str, Any]) -> None:
    """Write JSON through a temporary file and a rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w") as handle:
            json.dump(document, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.chmod(temporary, RUN_FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_split(path: Path, train: list[Sample], validation: list[Sample]) -> None:
    """Write ``split.csv`` with absolute image paths."""
    descriptor, temporary = tempfile.mkstemp(prefix=".split.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["path", "count", "subset"])
            for subset, samples in (("train", train), ("validation", validation)):
                for sample in samples:
                    writer.writerow([str(Path(sample.path).resolve()), f"{sample.count:g}", subset])
        os.chmod(temporary, RUN_FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_split_paths(path: Path) -> dict[str, set[Path]]:
    """Read ``split.csv`` into the set of image paths of each subset (``train`` and ``validation``)."""
    subsets: dict[str, set[Path]] = {subset: set() for subset in SUBSETS}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            subsets.setdefault(row["subset"], set()).add(Path(row["path"]))
    return subsets


class RunDir:
    """A training run's folder, read by ``convert``, ``compare`` and ``train --resume``.

    Args:
        path: the folder ``edgecount train --out`` wrote.

    Raises:
        RunDirError: if the folder or its ``run.json`` is missing or unreadable.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        run_file = self.path / RUN_FILE
        if not self.path.is_dir():
            raise RunDirError(f"run folder {self.path} not found; create one with: edgecount train --data DIR --out {self.path}")
        if not run_file.is_file():
            raise RunDirError(
                f"{self.path} is not a training run folder (no {RUN_FILE}); pass the folder that "
                "'edgecount train --out' wrote"
            )
        try:
            self.config: dict[str, Any] = json.loads(run_file.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise RunDirError(f"{run_file} is unreadable or not JSON ({error}); train the run again") from error

    @property
    def alpha(self) -> float:
        return float(self.config["model"]["alpha"])

    @property
    def image_size(self) -> int:
        return int(self.config["model"]["image_size"])

    @property
    def keras_model_path(self) -> Path:
        return self.path / KERAS_FILE

    def tflite_path(self, mode: str) -> Path:
        """Return the path of the converted model ``model_<mode>.tflite``."""
        return self.path / f"model_{mode}.tflite"

    def samples(self, subset: str) -> list[Sample]:
        """Read the images of one subset of the saved split.

        Args:
            subset: ``train`` or ``validation``.

        Raises:
            ValueError: for another subset name.
            RunDirError: if ``split.csv`` is missing.
        """
        if subset not in SUBSETS:
            raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
        split_file = self.path / SPLIT_FILE
        if not split_file.is_file():
            raise RunDirError(f"{split_file} not found; the run folder is incomplete, so train it again")
        with open(split_file, newline="") as handle:
            return [
                Sample(Path(row["path"]), float(row["count"]))
                for row in csv.DictReader(handle)
                if row["subset"] == subset
            ]

    def load_keras_model(self) -> Any:
        """Load ``model.keras`` (imports TensorFlow)."""
        from edgecount.tensorflow_import import import_tensorflow

        if not self.keras_model_path.is_file():
            raise RunDirError(f"{self.keras_model_path} not found; the run has no trained model yet")
        tf = import_tensorflow("loading the Keras model")
        try:
            return tf.keras.models.load_model(self.keras_model_path, compile=False)
        except (ValueError, OSError, KeyError) as error:
            raise RunDirError(
                f"{self.keras_model_path} is corrupt or truncated and Keras cannot load it ({type(error).__name__}); "
                "train the run again"
            ) from error

    def update(self, **sections: Any) -> None:
        """Merge top-level sections into ``run.json`` and write it atomically."""
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(self.config.get(key), dict):
                self.config[key].update(value)
            else:
                self.config[key] = value
        write_json_atomically(self.path / RUN_FILE, self.config)
