"""Labelled face-count datasets: folder layouts, bad-row handling and the stratified split."""

from .readers import LAYOUTS, DatasetError, DatasetNotFoundError, LabelledDataset, load_dataset
from .split import split_samples

__all__ = ["LAYOUTS", "DatasetError", "DatasetNotFoundError", "LabelledDataset", "load_dataset", "split_samples"]
