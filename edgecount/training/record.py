"""The numbers a run records: metrics on the split, one record per phase, and the ``run.json`` document."""

from __future__ import annotations

import platform
from typing import Any

import numpy as np

from edgecount import __version__
from edgecount.datasets import LabelledDataset
from edgecount.runs import KERAS_FILE, SPLIT_FILE, Sample
from edgecount.training.config import TrainConfig
from edgecount.training.features import FEATURES_DIR


def compute_metrics(predictions: np.ndarray, counts: np.ndarray, train_rows: np.ndarray, validation_rows: np.ndarray) -> dict[str, float]:
    """Return RMSE, MAE and bias (mean of predicted minus true count) on the validation and train rows."""
    errors = predictions - counts
    validation, train = errors[validation_rows], errors[train_rows]
    return {
        "val_rmse": round(float(np.sqrt(np.mean(validation**2))), 4),
        "val_mae": round(float(np.mean(np.abs(validation))), 4),
        "val_bias": round(float(np.mean(validation)), 4),
        "train_rmse": round(float(np.sqrt(np.mean(train**2))), 4),
        "train_mae": round(float(np.mean(np.abs(train))), 4),
        # The constant guess every model must beat: the mean training count.
        "val_rmse_of_mean": round(float(np.sqrt(np.mean((counts[validation_rows] - counts[train_rows].mean()) ** 2))), 4),
    }


def error_metrics(predictions: np.ndarray, counts: np.ndarray) -> dict[str, float]:
    """Return image count, RMSE, MAE and bias (mean predicted minus true count); None for no images."""
    errors = np.asarray(predictions, np.float64) - np.asarray(counts, np.float64)
    if len(errors) == 0:
        return {"images": 0, "rmse": None, "mae": None, "bias": None}
    return {
        "images": int(len(errors)),
        "rmse": round(float(np.sqrt(np.mean(errors**2))), 4),
        "mae": round(float(np.mean(np.abs(errors))), 4),
        "bias": round(float(np.mean(errors)), 4),
    }


def phase_record(phase: int, history: dict[str, list[float]], learning_rate: float, seconds: float, max_epochs: int) -> dict[str, Any]:
    """Summarise one phase from its Keras history: epochs run, best epoch and its validation loss and RMSE."""
    val_loss = history.get("val_loss") or [float("inf")]
    best = int(np.argmin(val_loss))
    return {
        "phase": phase,
        "epochs_run": len(history.get("loss", [])),
        "max_epochs": max_epochs,
        "best_epoch": best + 1,
        "best_val_loss": round(float(val_loss[best]), 6),
        "best_val_rmse": round(float((history.get("val_rmse") or [float("nan")] * (best + 1))[best]), 4),
        "learning_rate": learning_rate,
        "seconds": round(seconds, 2),
    }


def describe_mosaic(config: TrainConfig, phases: list[dict[str, Any]]) -> str:
    """Describe the mosaics that phase 2 trained on, for ``run.json``."""
    phase_two = next((phase for phase in phases if phase["phase"] == 2), None)
    if config.mosaic <= 0 or phase_two is None or phase_two.get("mosaics_per_epoch") == 0:
        return "none"
    share = f"mosaics of 4 training photos at half size in phase 2, {config.mosaic:g} per training photo"
    if phase_two.get("input", "images") != "images":
        return f"{share}: a pool drawn once, its maps computed once"
    return f"{share}: fresh mosaics of the augmented photos in every epoch"


def describe_quadrants(config: TrainConfig, phases: list[dict[str, Any]]) -> str:
    """Describe the quadrant crops that phase 2 trained on, for ``run.json``."""
    phase_two = next((phase for phase in phases if phase["phase"] == 2), None)
    if config.quadrants <= 0 or phase_two is None or not phase_two.get("quadrants_per_epoch"):
        return "none"
    if not phase_two.get("kept", True):
        return f"{config.quadrants} per training photo in phase 2, which was rolled back, so the saved model did not learn from them"
    return (
        f"{config.quadrants} of the 4 quadrants of each training photo with boxes in phase 2, at the input size, "
        "counts recounted from the boxes: drawn once, their maps computed once"
    )


def describe_augmentation(config: TrainConfig, has_boxes: bool, phases: list[dict[str, Any]]) -> str:
    """Describe the augmentation each phase of the run used, for ``run.json``."""
    if not config.augment:
        return "none"
    parts = ["phase 1: horizontal flip (plain or mirrored features)"]
    phase_two = next((phase for phase in phases if phase["phase"] == 2), None)
    if phase_two is not None and phase_two.get("input", "images") != "images":
        parts.append("phase 2: horizontal flip (plain or mirrored maps)")
    elif phase_two is not None:
        crops = "crops recounted from boxes" if has_boxes else "no crops (no boxes)"
        parts.append(f"phase 2: horizontal flip, brightness, contrast, saturation and colour jitter, {crops}")
    return "; ".join(parts)


def run_document(
    config: TrainConfig,
    dataset: LabelledDataset,
    train_set: list[Sample],
    validation_set: list[Sample],
    metrics: dict[str, float],
    phases: list[dict[str, Any]],
    timings: dict[str, float],
    stream: bool,
    replicas: int,
    global_batch: int,
) -> dict[str, Any]:
    """Build ``run.json``: model, preprocessing, data summary, split, metrics and training details."""
    import tensorflow as tf

    return {
        "edgecount_version": __version__,
        "model": {
            "alpha": config.alpha,
            "image_size": config.image_size,
            "weights": config.weights,
            "file": KERAS_FILE,
            "head_units": config.head_units,
            "dropout": config.dropout,
        },
        "preprocessing": {
            "function": "edgecount.runtime.preprocess",
            "color": "RGB",
            "range": [0, 255],
            "resize": f"stretch to {config.image_size}x{config.image_size} with edgecount.runtime.preprocess.resize_to_input (INTER_LINEAR_EXACT to k times the size, then INTER_AREA by the integer factor k; INTER_LINEAR_EXACT when enlarging)",
            "scaling": "inside the model: x / 127.5 - 1",
        },
        "data": dataset.summary(),
        "split": {
            "seed": config.seed,
            "validation_fraction": config.validation_split,
            "file": SPLIT_FILE,
            "train": len(train_set),
            "validation": len(validation_set),
            "stratified_by": "count",
        },
        "metrics": {**metrics, "note": "counts clipped at 0, as CountModel.predict returns them"},
        "training": {
            "phases": phases,
            "epochs": sum(phase["epochs_run"] for phase in phases),
            "loss": "huber (delta 1.0)" if config.loss == "huber" else "mse",
            "target": config.target,
            "optimizer": "adam",
            "batch_size": config.batch_size,
            "global_batch_size": global_batch,
            "replicas": replicas,
            "strategy": config.strategy,
            "patience": config.patience,
            "input_path": "tf.data stream" if stream else "in-memory",
            "feature_cache": str(config.features_dir) if config.features_dir else FEATURES_DIR,
            "batch_norm": "frozen in both phases (inference mode)",
            "augmentation": describe_augmentation(config, bool(dataset.boxes), phases),
            "count_weighting": config.count_weighting,
            "mosaic": describe_mosaic(config, phases),
            "quadrants": describe_quadrants(config, phases),
            "deterministic_ops": True,
            **timings,
            "settings": config.as_dict(),
            "tensorflow_version": tf.__version__,
            "python_version": platform.python_version(),
        },
    }
