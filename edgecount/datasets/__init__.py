"""Labelled face-count datasets: folder layouts, bad-row handling, the stratified split and moved folders."""

from .readers import LAYOUTS, DatasetError, DatasetNotFoundError, LabelledDataset, load_dataset
from .relocate import RunSplit, SplitImagesNotFoundError, locate_split
from .split import split_samples

__all__ = [
    "LAYOUTS", "DatasetError", "DatasetNotFoundError", "LabelledDataset", "RunSplit", "SplitImagesNotFoundError",
    "load_dataset", "locate_split", "split_samples",
]
