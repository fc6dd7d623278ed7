"""A reader thread that keeps only the newest frame of a camera or stream, and reopens dropped streams.

A camera or network stream produces frames at its own rate whether or not anyone reads them. When the
model is slower than the camera, reading frames in order would count ever older frames, because
OpenCV and the camera driver buffer them. ``LatestFrameReader`` reads in a thread as fast as frames
arrive and keeps only the newest one, so the consumer always gets the most recent frame and the
frames it had no time for are counted as dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from .errors import SourceError

_log = logging.getLogger(__name__)

# The delay before reconnect attempt k (1-based) is base * 2**(k - 1), capped here, so that a camera
# server that restarts is found again within half a minute of coming back.
MAX_RECONNECT_DELAY_S = 30.0


class Capture(Protocol):
    """The device interface of the reader: ``cv2.VideoCapture``, or an adapter with its ``read`` and ``release``."""

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def release(self) -> None: ...


class LatestFrameReader:
    """Read frames in a background thread and hand out only the newest one.

    Args:
        name: how logs and errors refer to the source, for example ``http://cam.local/stream.mjpg``.
        open_capture: opens the device and returns a ``Capture``; called once by ``start`` and again
            for each reconnect attempt. It raises ``SourceError`` when the device cannot be opened.
        reconnect: how many times to reopen the device after it stops delivering frames, per drop;
            default 5. With 0, the first drop ends the source with an error.
        reconnect_delay: seconds before the first reconnect attempt, doubled for each further attempt
            up to 30 s; default 0.5.
        end_is_normal: whether a failed read means the end (a video file) rather than a drop;
            default False.
        pace_fps: for video files read in real time, the frame rate to read at; default None reads
            as fast as the device delivers.

    Note:
        ``frames_read`` counts every frame read from the device, ``frames_dropped`` the frames that
        were replaced by a newer one before ``take`` returned them, ``reconnects`` the successful
        reopenings after a drop.
    """

    def __init__(
        self,
        name: str,
        open_capture: Callable[[], Capture],
        reconnect: int = 5,
        reconnect_delay: float = 0.5,
        end_is_normal: bool = False,
        pace_fps: float | None = None,
    ) -> None:
        if reconnect < 0:
            raise ValueError(f"reconnect must be 0 or more attempts, got {reconnect}")
        if reconnect_delay < 0:
            raise ValueError(f"reconnect_delay must be 0 or more seconds, got {reconnect_delay}")
        self.name = name
        self._open_capture = open_capture
        self._reconnect = reconnect
        self._reconnect_delay = reconnect_delay
        self._end_is_normal = end_is_normal
        self._pace_fps = pace_fps if pace_fps and pace_fps > 0 else None

        self.frames_read = 0
        self.frames_dropped = 0
        self.reconnects = 0
        self._condition = threading.Condition()
        self._frame: np.ndarray | None = None
        self._sequence = 0
        self._taken_sequence = 0
        self._ended = False
        self._error: SourceError | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Open the device in the calling thread, so that an open failure raises here, then start reading.

        Raises:
            SourceError: if the device cannot be opened.
        """
        capture = self._open_capture()
        self._thread = threading.Thread(target=self._run, args=(capture,), name=f"frames {self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the reader to stop and wake a blocked ``take``; safe to call from a signal handler."""
        self._stop.set()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread, wait for it to release the device and count the frames never taken."""
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                _log.warning("%s: the reader thread did not stop within %.0f s; leaving it behind", self.name, timeout)
        with self._condition:
            self.frames_dropped += self._sequence - self._taken_sequence
            self._taken_sequence = self._sequence
            self._frame = None

    def take(self, poll_s: float = 0.1) -> np.ndarray | None:
        """Wait for a frame newer than the last one taken and return it.

        Args:
            poll_s: how often the wait checks for ``stop``; default 0.1 s.

        Returns:
            The newest HxWx3 uint8 BGR frame, or None when the source ended or ``stop`` was called.

        Raises:
            SourceError: if the device stopped delivering frames and every reconnect attempt failed.
        """
        with self._condition:
            while self._sequence == self._taken_sequence and not self._ended and not self._stop.is_set():
                self._condition.wait(poll_s)
            if self._sequence > self._taken_sequence and not self._stop.is_set():
                self.frames_dropped += self._sequence - self._taken_sequence - 1
                self._taken_sequence = self._sequence
                frame, self._frame = self._frame, None
                return frame
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            return None

    def _publish(self, frame: np.ndarray) -> None:
        with self._condition:
            self._frame = frame
            self._sequence += 1
            self.frames_read += 1
            self._condition.notify_all()

    def _finish(self, error: SourceError | None = None) -> None:
        with self._condition:
            self._ended = True
            self._error = error
            self._condition.notify_all()

    def _run(self, capture: Capture) -> None:
        try:
            self._read_frames(capture)
        except Exception as error:  # noqa: BLE001 - a dead thread would leave take() waiting forever
            _log.debug("%s: the reader thread failed", self.name, exc_info=True)
            self._finish(SourceError(f"{self.name}: reading frames failed with {type(error).__name__}: {error}"))

    def _read_frames(self, capture: Capture | None) -> None:
        next_due = time.monotonic()
        try:
            while not self._stop.is_set():
                ok, frame = capture.read()
                if ok and frame is not None and frame.size:
                    self._publish(frame)
                    if self._pace_fps:
                        # Real-time pacing for files: hold each frame for its duration, and skip the
                        # wait when reading fell behind so that the schedule catches up.
                        next_due += 1.0 / self._pace_fps
                        self._stop.wait(max(0.0, next_due - time.monotonic()))
                    continue

                if self._end_is_normal:
                    _log.info("%s: end of the video after %d frames", self.name, self.frames_read)
                    self._finish()
                    return
                _log.warning("%s: the source stopped delivering frames after %d frames", self.name, self.frames_read)
                capture.release()
                capture = None
                capture = self._reopen()
                if capture is None:
                    return
                next_due = time.monotonic()
            self._finish()
        finally:
            if capture is not None:
                capture.release()

    def _reopen(self) -> Capture | None:
        """Reopen the device with exponential backoff; finish the reader and return None on failure."""
        last_error = None
        for attempt in range(1, self._reconnect + 1):
            delay = min(self._reconnect_delay * 2 ** (attempt - 1), MAX_RECONNECT_DELAY_S)
            _log.warning("%s: reconnect attempt %d of %d in %.1f s", self.name, attempt, self._reconnect, delay)
            if self._stop.wait(delay):
                self._finish()
                return None
            try:
                capture = self._open_capture()
            except SourceError as error:
                last_error = str(error)
                _log.warning("%s: reconnect attempt %d of %d failed: %s", self.name, attempt, self._reconnect, error)
                continue
            self.reconnects += 1
            _log.warning("%s: reconnected on attempt %d", self.name, attempt)
            return capture

        if last_error is None:
            attempts = "reconnecting is off (--reconnect 0)"
        else:
            attempts = f"{self._reconnect} reconnect attempts failed (last: {last_error})"
        self._finish(
            SourceError(
                f"{self.name}: the source stopped delivering frames and {attempts}; check that the camera "
                "or stream server is running and reachable, or allow more attempts with --reconnect"
            )
        )
        return None
