"""Frames of a video file, read in order or in real time."""

from __future__ import annotations

import logging
import os
import queue
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import SourceError
from .frame_source import FrameSource, SourceNotFoundError
from .images import to_bgr8
from .latest_frame import LatestFrameReader

_log = logging.getLogger(__name__)


class _ReadAhead:
    """Decode the next frames of a file in a thread, in order and without dropping any.

    Decoding a 640x480 MJPG frame costs a few milliseconds, which the consumer would otherwise spend
    waiting between two inferences. A queue of ``depth`` decoded frames lets decoding and counting overlap.
    """

    _END = object()

    def __init__(self, name: str, capture: Any, depth: int = 4) -> None:
        self.name = name
        self._capture = capture
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.error: SourceError | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"decode {name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ok, frame = self._capture.read()
            except cv2.error as error:
                self.error = SourceError(f"{self.name}: OpenCV failed to decode a frame: {error}")
                ok, frame = False, None
            item = frame if ok and frame is not None else self._END
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item is self._END:
                return

    def get(self) -> np.ndarray | None:
        """Return the next decoded frame, or None at the end of the file or after ``stop``."""
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            return None if item is self._END else item
        return None

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        """Stop decoding and release the file once the thread has finished with it."""
        self._stop.set()
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self._capture.release()


class VideoSource(FrameSource):
    """Frames of a video file, decoded by OpenCV's FFmpeg backend.

    Args:
        path: the video file (AVI, MP4, MKV and what else FFmpeg reads).
        realtime: default False reads every frame in order at the consumer's speed, and a thread
            decodes up to four frames ahead. True plays the file at its own frame rate in a reader
            thread and drops the frames the consumer misses, like a camera.

    Raises:
        SourceNotFoundError: from ``open`` if the file does not exist.
        SourceError: from ``open`` if OpenCV cannot decode the file.
    """

    def __init__(self, path: str | os.PathLike[str], realtime: bool = False) -> None:
        super().__init__(str(path))
        self.path = Path(path)
        self.realtime = realtime
        self.live = realtime
        self.fps = 0.0
        self.frame_count = 0
        self._capture: _ReadAhead | None = None
        self._reader: LatestFrameReader | None = None
        self._stopped = False

    def _open_capture(self) -> Any:
        if not self.path.exists():
            raise SourceNotFoundError(f"{self.path}: video file not found; check the path")
        if self.path.is_dir():
            raise SourceError(f"{self.path}: is a folder; pass a video file, or the folder's images with 'edgecount count'")
        capture = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not capture.isOpened():
            capture.release()
            raise SourceError(
                f"{self.path}: OpenCV cannot open the video ({self.path.stat().st_size:,} bytes); the file is "
                "corrupt, empty or in a container or codec that OpenCV's FFmpeg cannot decode. Re-encode it, "
                "for example: ffmpeg -i INPUT -c:v mjpeg OUTPUT.avi"
            )
        return capture

    def open(self) -> None:
        capture = self._open_capture()
        self.fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.frame_count = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        if not self.realtime:
            self._capture = _ReadAhead(self.name, capture)
            return
        capture.release()
        if self.fps <= 0:
            _log.warning("%s: the video has no frame rate; --realtime plays it at 25 FPS", self.name)
        self._reader = LatestFrameReader(
            self.name, self._open_capture, reconnect=0, end_is_normal=True, pace_fps=self.fps if self.fps > 0 else 25.0
        )
        self._reader.start()

    def read(self) -> np.ndarray | None:
        if self._reader is not None:
            frame = self._reader.take()
            self.frames_read, self.frames_dropped = self._reader.frames_read, self._reader.frames_dropped
            return frame
        if self._capture is None or self._stopped:
            return None
        frame = self._capture.get()
        if frame is None:
            if self._stopped:
                return None
            if self._capture.error is not None:
                raise self._capture.error
            if self.frames_read == 0:
                raise SourceError(
                    f"{self.path}: OpenCV opened the video but decoded no frame; the file is corrupt or "
                    "truncated. Re-encode it, for example: ffmpeg -i INPUT -c:v mjpeg OUTPUT.avi"
                )
            _log.info("%s: end of the video after %d frames", self.name, self.frames_read)
            return None
        self.frames_read += 1
        return to_bgr8(frame, self.name)

    def stop(self) -> None:
        self._stopped = True
        if self._reader is not None:
            self._reader.stop()
        if self._capture is not None:
            self._capture.stop()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self.frames_read, self.frames_dropped = self._reader.frames_read, self._reader.frames_dropped
            self._reader = None
        if self._capture is not None:
            self._capture.close()
            self._capture = None
