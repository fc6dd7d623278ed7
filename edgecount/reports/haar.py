"""A face-detector baseline for ``edgecount compare``: counting the faces OpenCV's Haar cascade finds.

The Viola-Jones frontal-face cascade (``haarcascade_frontalface_default.xml``) is the detector most
people try first, so its count error shows what the regression model gains. OpenCV 5 moved
``cv2.CascadeClassifier`` and the cascade files out of the main package: ``opencv-python-headless``
5.x has neither, while ``opencv-contrib-python-headless`` 5.x has both. The contrib package replaces
the same ``cv2`` module, so it cannot be installed beside the headless one; edgecount leaves the
choice to the user and reports the baseline as unavailable, with the fix, when the class is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from edgecount.runtime import EdgecountError

CASCADE_FILE = "haarcascade_frontalface_default.xml"
CASCADE_ENV = "EDGECOUNT_HAAR_CASCADE"
INSTALL_HINT = (
    "pip uninstall -y opencv-python-headless && pip install 'opencv-contrib-python-headless>=4.8' "
    "(OpenCV 5 ships cv2.CascadeClassifier and its cascade files only in the contrib build)"
)
# detectMultiScale settings: 10% scale steps and 5 neighbours are OpenCV's tutorial values; faces in
# the 612x408 group photos are often only about 20 pixels wide, so the minimum size is lowered to that.
SCALE_FACTOR = 1.1
MIN_NEIGHBORS = 5
MIN_SIZE = (20, 20)


class HaarUnavailableError(EdgecountError, RuntimeError):
    """OpenCV's Haar cascade class or its cascade file is not available in this install."""


def find_cascade_file(cascade_path: str | os.PathLike[str] | None = None) -> Path:
    """Locate the frontal-face cascade XML: the given path, ``$EDGECOUNT_HAAR_CASCADE``, or OpenCV's data folder.

    Raises:
        HaarUnavailableError: if no cascade file is found.
    """
    candidates = []
    if cascade_path is not None:
        candidates.append(Path(cascade_path))
    elif os.environ.get(CASCADE_ENV):
        candidates.append(Path(os.environ[CASCADE_ENV]))
    else:
        data = getattr(cv2, "data", None)
        folder = getattr(data, "haarcascades", None)
        if folder:
            candidates.append(Path(folder) / CASCADE_FILE)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(c) for c in candidates) or "no cv2.data folder"
    raise HaarUnavailableError(
        f"the Haar cascade file {CASCADE_FILE} was not found (searched: {searched}); install it with: "
        f"{INSTALL_HINT}, or point {CASCADE_ENV} at the XML file"
    )


class HaarFaceCounter:
    """Count faces as the number of Haar cascade detections in a frame.

    Args:
        cascade_path: the cascade XML; default None searches as ``find_cascade_file`` does.

    Raises:
        HaarUnavailableError: if this OpenCV build has no ``CascadeClassifier`` or the file is missing
            or unreadable.
    """

    def __init__(self, cascade_path: str | os.PathLike[str] | None = None) -> None:
        if not hasattr(cv2, "CascadeClassifier"):
            raise HaarUnavailableError(
                f"OpenCV {cv2.__version__} has no cv2.CascadeClassifier (OpenCV 5 moved it out of the main "
                f"build); install it with: {INSTALL_HINT}"
            )
        self.cascade_path = find_cascade_file(cascade_path)
        self._classifier = cv2.CascadeClassifier(str(self.cascade_path))
        if self._classifier.empty():
            raise HaarUnavailableError(f"OpenCV cannot read the Haar cascade {self.cascade_path}; reinstall it or pass another file")

    def count(self, frame: np.ndarray) -> int:
        """Return the number of faces detected in an HxWx3 uint8 BGR frame."""
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        gray = cv2.equalizeHist(gray)
        faces = self._classifier.detectMultiScale(
            gray, scaleFactor=SCALE_FACTOR, minNeighbors=MIN_NEIGHBORS, minSize=MIN_SIZE
        )
        return int(len(faces))

    def describe(self) -> str:
        return f"OpenCV {cv2.__version__} Haar cascade {self.cascade_path.name}"
