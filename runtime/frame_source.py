"""The frame source interface, and the source for image files, folders and glob patterns."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import SourceError
from .images import collect_image_paths, load_image


class SourceNotFoundError(SourceError, FileNotFoundError):
    """A video file, image or camera device path does not exist."""


class FrameSource:
    """Base class: a context manager that yields HxWx3 uint8 BGR frames until the source ends.

    Attributes:
        name: how logs and errors refer to the source.
        frames_read: frames read from the device or file.
        frames_dropped: frames replaced by a newer one before the consumer took them (live sources).
        reconnects: successful reopenings after the source stopped delivering frames.
    """

    live = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.frames_read = 0
        self.frames_dropped = 0
        self.reconnects = 0

    def open(self) -> None:
        """Open the device or file. Raises ``SourceError`` if that fails."""

    def close(self) -> None:
        """Release the device or file; safe to call twice."""

    def read(self) -> np.ndarray | None:
        """Return the next frame, or None at the end of the source or after ``stop``."""
        raise NotImplementedError

    def stop(self) -> None:
        """Make a blocked or later ``read`` return None; safe to call from a signal handler."""

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class ImageSource(FrameSource):
    """Frames from image files, folders or glob patterns, decoded with ``load_image``.

    Args:
        inputs: image paths, folders or glob patterns.

    Raises:
        SourceNotFoundError: from ``open`` when the inputs match no image.
        ImageDecodeError: from ``read`` for a file that cannot be decoded.
    """

    def __init__(self, inputs: list[str | os.PathLike[str]] | str | os.PathLike[str]) -> None:
        items = [str(item) for item in inputs] if isinstance(inputs, list) else [str(inputs)]
        super().__init__(", ".join(items))
        self._inputs = items
        self.paths: list[Path] = []
        self._next = 0
        self._stopped = False

    def open(self) -> None:
        self.paths, unmatched = collect_image_paths(self._inputs)
        if unmatched:
            raise SourceNotFoundError(
                f"{', '.join(unmatched)}: no such image file, or no images matched; pass image files, "
                "a folder of images or a glob pattern such as 'photos/*.jpg'"
            )
        self._next = 0

    def read(self) -> np.ndarray | None:
        if self._stopped or self._next >= len(self.paths):
            return None
        path = self.paths[self._next]
        self._next += 1
        frame = load_image(path)
        self.frames_read += 1
        return frame

    def stop(self) -> None:
        self._stopped = True
