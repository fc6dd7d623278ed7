"""The Haar cascade baseline: unavailable with the fix on OpenCV 5 headless, counting faces with contrib."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from edgecount.reports.comparison import evaluate_haar
from edgecount.reports.evaluation import load_evaluation_images
from edgecount.reports.haar import HaarFaceCounter, HaarUnavailableError, find_cascade_file
from edgecount.runs import Sample
from edgecount.runtime import load_image

HAS_CASCADE = hasattr(cv2, "CascadeClassifier")


def test_find_cascade_file_missing(tmp_path: Path) -> None:
    with pytest.raises(HaarUnavailableError, match="missing.xml"):
        find_cascade_file(tmp_path / "missing.xml")


@pytest.mark.skipif(HAS_CASCADE, reason="this OpenCV build has cv2.CascadeClassifier")
def test_haar_unavailable_names_fix() -> None:
    with pytest.raises(HaarUnavailableError, match="opencv-contrib-python-headless"):
        HaarFaceCounter()


@pytest.mark.skipif(HAS_CASCADE, reason="this OpenCV build has cv2.CascadeClassifier")
def test_haar_row_unavailable(real_photo_paths: list[Path]) -> None:
    images = load_evaluation_images([Sample(real_photo_paths[0], 2.0)])

    row = evaluate_haar(images, [1], runs=1, warmup=0)

    assert row.status == "unavailable"
    assert "cv2.CascadeClassifier" in row.reason
    assert row.metrics is None


@pytest.mark.skipif(not HAS_CASCADE, reason="OpenCV 5 headless has no cv2.CascadeClassifier; the contrib build has it")
def test_haar_counts_real_photos(real_photo_paths: list[Path], av_labels) -> None:
    counter = HaarFaceCounter()
    counts = [counter.count(load_image(path)) for path in real_photo_paths]

    assert all(count >= 0 for count in counts)
    assert sum(counts) > 0
