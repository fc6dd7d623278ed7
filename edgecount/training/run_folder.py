"""Building a run folder atomically: train into a hidden sibling folder, rename it into place at the end."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from edgecount.runs import RUN_FILE
from edgecount.runtime.errors import EdgecountError
from edgecount.training.features import FEATURES_DIR

if TYPE_CHECKING:
    from edgecount.training.config import TrainConfig

_log = logging.getLogger(__name__)

# The settings of a run, written into the staging folder before training so --resume can reuse them.
TRAIN_CONFIG_FILE = "train_config.json"
PARTIAL_SUFFIX = ".partial"


class RunExistsError(EdgecountError, FileExistsError):
    """The output folder already contains a run (or other files) and ``--force`` was not given."""


class ResumeError(EdgecountError, FileNotFoundError):
    """``--resume`` names a folder without an interrupted run."""


def load_resume_config(run_dir: Path) -> TrainConfig:
    """Read the settings of the interrupted run that ``edgecount train --resume RUN_DIR`` continues.

    Args:
        run_dir: the ``--out`` folder of the interrupted run, or its staging folder ``.<name>.partial``.

    Returns:
        The saved settings, with ``out_dir`` set to the run folder that the finished run moves to.

    Raises:
        ResumeError: if there is no staging folder (the run finished, or never started) or it has no
            saved settings.
    """
    from edgecount.training.config import TrainConfig

    run_dir = Path(run_dir)
    if run_dir.name.startswith(".") and run_dir.name.endswith(PARTIAL_SUFFIX):
        staging, out_dir = run_dir, run_dir.parent / run_dir.name[1 : -len(PARTIAL_SUFFIX)]
    else:
        staging, out_dir = staging_dir(run_dir), run_dir
    if not staging.is_dir():
        if (out_dir / RUN_FILE).is_file():
            raise ResumeError(f"run {out_dir} finished, so there is nothing to resume; to train it again, pass --data, --out {out_dir} and --force")
        raise ResumeError(f"no interrupted run at {run_dir}: {staging} not found; start a run with --data and --out")
    settings = staging / TRAIN_CONFIG_FILE
    try:
        values = json.loads(settings.read_text())
    except FileNotFoundError as error:
        raise ResumeError(f"{settings} not found, so the settings of the interrupted run are unknown; start it again with --data, --out {out_dir}") from error
    except (OSError, json.JSONDecodeError) as error:
        raise ResumeError(f"{settings} is unreadable ({error}); start the run again with --data, --out {out_dir}") from error
    started_in = values.get("data_dir") if isinstance(values, dict) else None
    if isinstance(started_in, str) and not os.path.isabs(started_in) and not Path(started_in).is_dir():
        raise ResumeError(
            f"{settings} was written by an older edgecount with the relative dataset path {started_in}, "
            f"which is not found from {os.getcwd()}; run edgecount train --resume from the folder the run was started in"
        )
    try:
        config = TrainConfig.from_dict(values)
    except (TypeError, ValueError) as error:
        raise ResumeError(f"{settings} does not hold valid settings ({error}); start the run again with --data, --out {out_dir}") from error
    config.out_dir = Path(os.path.abspath(out_dir))
    return config


def check_output_dir(out_dir: Path, force: bool) -> None:
    """Reject an output folder that a training run must not overwrite.

    Raises:
        RunExistsError: if ``out_dir`` contains a run and ``force`` is False, or contains other files.
            A folder is replaced only when it contains ``run.json``, so ``--force`` never deletes an
            unrelated folder.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RunExistsError(f"--out {out_dir} is a file, not a folder; choose a new run folder")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    if not (out_dir / RUN_FILE).is_file():
        raise RunExistsError(
            f"--out {out_dir} is a non-empty folder without {RUN_FILE}, so it is not a training run; "
            "choose a new or empty folder (--force replaces only run folders)"
        )
    if not force:
        raise RunExistsError(f"run folder {out_dir} already exists; pass --force to replace it, or choose another --out")


def staging_dir(out_dir: Path) -> Path:
    """Return the hidden sibling folder a run is built in, ``.<name>.partial``."""
    out_dir = Path(out_dir).resolve()
    return out_dir.parent / f".{out_dir.name}{PARTIAL_SUFFIX}"


def prepare_staging(out_dir: Path) -> Path:
    """Create an empty staging folder, keeping cached features from an interrupted or previous run."""
    staging = staging_dir(out_dir)
    staging.mkdir(parents=True, exist_ok=True)
    for entry in staging.iterdir():
        if entry.name == FEATURES_DIR:
            continue
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()

    # Feature files of the run being replaced are still valid when their key matches.
    previous = Path(out_dir) / FEATURES_DIR
    if previous.is_dir():
        (staging / FEATURES_DIR).mkdir(exist_ok=True)
        for cached in previous.iterdir():
            target = staging / FEATURES_DIR / cached.name
            if not target.exists():
                shutil.copy2(cached, target)
    return staging


def publish_staging(staging: Path, out_dir: Path) -> None:
    """Move the finished staging folder to ``out_dir``, replacing an existing run folder."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    if out_dir.is_dir():
        retired = out_dir.parent / f".{out_dir.name}.replaced"
        shutil.rmtree(retired, ignore_errors=True)
        os.replace(out_dir, retired)
        os.replace(staging, out_dir)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, out_dir)
    _log.info("wrote the run folder %s", out_dir)
