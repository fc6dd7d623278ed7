"""Finding a run's split images after the dataset folder moved.

``split.csv`` stores absolute image paths, so none of them exists after the dataset folder is moved or
renamed, or after the run is copied to another machine. Then ``--data NEWDIR`` names the dataset's new
place. Each recorded path is looked up there by its path relative to the dataset folder recorded in
``run.json``, and failing that by its file name, when exactly one file under ``NEWDIR`` has that name.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from edgecount.runs import SPLIT_FILE, RunDir, RunDirError, Sample
from edgecount.runtime.errors import EdgecountError

_log = logging.getLogger(__name__)

RECORDED, RELOCATED, MISSING = "recorded", "relocated", "missing"


class SplitImagesNotFoundError(EdgecountError, FileNotFoundError):
    """The images of a run's split are neither at their recorded paths nor under the folder given with ``--data``."""


@dataclass
class RunSplit:
    """A run's train and validation samples, with image paths that exist on this machine.

    Attributes:
        train: the training samples, for int8 calibration.
        validation: the validation samples, for evaluation.
        status: ``recorded`` (the paths of ``split.csv`` are used as written), ``relocated`` (they were
            mapped onto ``data_dir``) or ``missing`` (no image was found; ``samples`` raises ``error``).
        data_dir: the folder the samples were mapped onto, None unless ``relocated``.
        error: the message raised by ``samples`` when ``missing``.
    """

    train: list[Sample]
    validation: list[Sample]
    status: str
    data_dir: Path | None = None
    error: str = ""

    @property
    def relocated(self) -> bool:
        return self.status == RELOCATED

    def samples(self, subset: str) -> list[Sample]:
        """Return the ``train`` or ``validation`` samples.

        Raises:
            SplitImagesNotFoundError: if the split's images were not found, naming one and the fix.
            ValueError: for another subset name.
        """
        if subset not in ("train", "validation"):
            raise ValueError(f"subset must be 'train' or 'validation', got {subset!r}")
        if self.status == MISSING:
            raise SplitImagesNotFoundError(self.error)
        return self.train if subset == "train" else self.validation


def recorded_dataset_dir(run: RunDir) -> Path | None:
    """Return the dataset folder that ``run.json`` records for the run, None when it records none."""
    data = run.config.get("data")
    folder = data.get("dir") if isinstance(data, dict) else None
    return Path(folder) if isinstance(folder, str) and folder else None


def locate_split(run: RunDir, data_dir: Path | None = None) -> RunSplit:
    """Read a run's split and find its images, following a moved dataset folder.

    When at least one recorded path exists, the split is used as recorded, and images deleted since
    training are left to the image loaders, which skip them with a warning. When none exists and
    ``data_dir`` is given, every path is mapped onto ``data_dir`` as the module docstring describes.
    Images not found there are left out with one warning. Otherwise the result is ``missing``, and its
    ``samples`` raises an error that names a missing image and the fix.

    Args:
        run: the run folder.
        data_dir: the dataset folder at its new place, from ``--data``. Default None.

    Raises:
        RunDirError: if ``split.csv`` is missing and ``data_dir`` is None. With ``data_dir`` the result
            is ``missing`` instead, because that folder can still be the evaluation set.
    """
    try:
        train, validation = run.samples("train"), run.samples("validation")
    except RunDirError as error:
        if data_dir is None:
            raise
        return RunSplit([], [], MISSING, error=str(error))
    samples = train + validation
    if not samples or any(sample.path.is_file() for sample in samples):
        return RunSplit(train, validation, RECORDED)

    split_file = run.path / SPLIT_FILE
    old_dir = recorded_dataset_dir(run)
    example = samples[0].path
    if data_dir is None:
        moved = f"the dataset folder ({old_dir})" if old_dir else "the dataset folder"
        return RunSplit(train, validation, MISSING, error=(
            f"none of the {len(samples)} images in {split_file} exists on this machine, for example {example}. "
            f"If {moved} moved, pass its new place with --data NEWDIR"
        ))

    # NOTE: the counts of split.csv are kept and not checked against labels under data_dir, so a
    # different dataset whose files have the same names is taken for the moved one.
    data_dir = Path(data_dir)
    relocated, missing = relocate_samples(samples, old_dir, data_dir)
    if not relocated:
        looked_at = " or ".join(str(path) for path in _expected_paths(example, old_dir, data_dir))
        if looked_at:
            detail = f"{example} is not at {looked_at}, and no file under {data_dir} is named {example.name}"
        else:
            detail = f"no file under {data_dir} is named {example.name} (recorded as {example})"
        recorded = f" (recorded as {old_dir} in run.json)" if old_dir else ""
        return RunSplit(train, validation, MISSING, error=(
            f"none of the {len(samples)} images in {split_file} is under {data_dir}. For example, {detail}. "
            f"Pass with --data the folder the run was trained on{recorded}, at its new place"
        ))
    if missing:
        _log.warning(
            "%d of the %d images in %s are not under %s and are left out, for example %s",
            len(missing), len(samples), split_file, data_dir, missing[0],
        )
    _log.info("the images in %s moved; reading them from %s", split_file, data_dir)
    new_paths = dict(relocated)
    return RunSplit(
        [Sample(new_paths[sample.path], sample.count) for sample in train if sample.path in new_paths],
        [Sample(new_paths[sample.path], sample.count) for sample in validation if sample.path in new_paths],
        RELOCATED,
        data_dir,
    )


def relocate_samples(samples: list[Sample], old_dir: Path | None, new_dir: Path) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """Map recorded image paths onto a dataset folder at its new place.

    Args:
        samples: the samples with their recorded paths.
        old_dir: the dataset folder the paths were recorded under, None if unknown.
        new_dir: the dataset folder at its new place.

    Returns:
        ``(found, missing)``: ``(recorded path, new path)`` pairs for the images found, and the
        recorded paths of the images that are not under ``new_dir``.
    """
    names: dict[str, list[Path]] | None = None
    found, missing = [], []
    for sample in samples:
        path = next((candidate for candidate in _expected_paths(sample.path, old_dir, new_dir) if candidate.is_file()), None)
        if path is None:
            # The file-name index is built once, and only when a relative path fails.
            names = _index_file_names(new_dir) if names is None else names
            matches = names.get(sample.path.name, [])
            # NOTE: a name that occurs twice under new_dir is ambiguous, so that image counts as missing.
            path = matches[0] if len(matches) == 1 else None
        if path is None:
            missing.append(sample.path)
        else:
            found.append((sample.path, path))
    return found, missing


def _expected_paths(path: Path, old_dir: Path | None, new_dir: Path) -> list[Path]:
    """Return where ``path`` would be under ``new_dir``, relative to ``old_dir`` as written and resolved."""
    if old_dir is None:
        return []
    candidates = []
    for root in dict.fromkeys((old_dir, old_dir.resolve())):
        try:
            candidates.append(new_dir / path.relative_to(root))
        except ValueError:
            continue
    return list(dict.fromkeys(candidates))


def _index_file_names(folder: Path) -> dict[str, list[Path]]:
    names: dict[str, list[Path]] = {}
    for parent, _, files in os.walk(folder):
        for name in files:
            names.setdefault(name, []).append(Path(parent) / name)
    return names
