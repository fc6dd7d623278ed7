"""Prepare the next frame in a background thread while the interpreter counts the current one.

Resizing a 640x480 frame to a 224x224 model input is a large fraction of a small int8 model's inference
time. Done in the counting thread, it adds to every frame. ``FramePreparer`` takes frames from a source
and prepares them (resize, BGR to RGB, quantize) in its own thread, so that the counting thread only
sets the input tensor, invokes the interpreter and reads the output. The two threads can run on two
cores at once because both long calls release the GIL: the TFLite interpreter wrapper around
``Invoke`` (``interpreter_wrapper.cc``), and OpenCV's Python bindings around each OpenCV call.

The preparer works at most one frame ahead. It takes a frame from the source only when the counting
thread has taken the previous prepared one, and from a live source (camera, stream, ``--realtime``
video) it gets the newest frame at that moment. So it never resizes frames that the counting thread
would drop, and a 30 FPS camera in front of a 100 ms model costs one preparation per inference, not 30
per second. The price is freshness. A counted frame was the newest one when the previous inference
started. When its own inference starts, it is therefore at most one inference older than the newest
frame, or one preparation older when preparing takes longer than an inference.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

_log = logging.getLogger(__name__)

# NOTE: the overlap needs a core that is idle while the interpreter runs. When other processes keep
# every core busy, preparing costs the counting thread wall time again. It was measured only on a
# shared 2-core x86 machine (benchmarks/webcam_pipeline.py), not yet on a Raspberry Pi.


@dataclass(frozen=True)
class PreparedFrame:
    """A frame taken from the source, with the model input made from it.

    Attributes:
        number: the frame's 1-based position among all frames taken from the source, skipped ones included.
        frame: the HxWx3 uint8 BGR frame.
        tensor: the model input that ``prepare`` made from the frame.
        taken_at: ``time.perf_counter()`` when the frame was taken from the source, right before preparing it.
    """

    number: int
    frame: np.ndarray
    tensor: np.ndarray
    taken_at: float


class FramePreparer:
    """Take frames from a source and prepare them in a background thread, at most one frame ahead.

    Example::

        with VideoSource("clip.avi") as source, FramePreparer(source.read, model.prepare) as preparer:
            while (prepared := preparer.take()) is not None:
                print(prepared.number, model.predict_prepared(prepared.tensor))

    Args:
        read_frame: returns the next frame, or None at the end of the source; for example
            ``FrameSource.read``. It runs in the preparer's thread.
        prepare: makes the model input from a frame; for example ``CountModel.prepare``. It runs in
            the preparer's thread, so it must not use the interpreter.
        every: prepare every Nth frame taken from the source, starting with the first; default 1.
            The frames in between are taken from the source and never prepared.
        name: how the thread name refers to the source; default ``"frames"``.

    Raises:
        ValueError: if ``every`` is below 1.

    Note:
        ``frames_taken`` counts the frames that ``read_frame`` returned, ``frames_skipped`` those left
        out by ``every`` and ``frames_prepared`` those handed to ``take``, plus at most one that was
        prepared when the caller stopped taking. An exception from ``read_frame`` or ``prepare`` ends
        the preparation. ``take`` raises it after returning the frames prepared before it.
    """

    def __init__(
        self,
        read_frame: Callable[[], np.ndarray | None],
        prepare: Callable[[np.ndarray], np.ndarray],
        every: int = 1,
        name: str = "frames",
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be 1 or more frames, got {every}")
        self.name = name
        self.every = every
        self._read_frame = read_frame
        self._prepare = prepare

        self.frames_taken = 0
        self.frames_skipped = 0
        self.frames_prepared = 0
        self._condition = threading.Condition()
        self._ready: PreparedFrame | None = None
        self._ended = False
        self._error: Exception | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread, which takes and prepares the first frame at once.

        Raises:
            RuntimeError: if the preparer was started before.
        """
        if self._thread is not None:
            raise RuntimeError(f"the frame preparer of {self.name} was already started; create a new one")
        self._thread = threading.Thread(target=self._run, name=f"prepare {self.name}", daemon=True)
        self._thread.start()

    def take(self, poll_s: float = 0.1) -> PreparedFrame | None:
        """Wait for the next prepared frame and return it, which lets the thread prepare the one after.

        Args:
            poll_s: how often the wait checks for ``stop``; default 0.1 s.

        Returns:
            The next prepared frame, or None at the end of the source or after ``stop``.

        Raises:
            RuntimeError: if ``start`` was not called.
            Exception: what ``read_frame`` or ``prepare`` raised, once the frames prepared before it
                were returned.
        """
        if self._thread is None:
            raise RuntimeError(f"the frame preparer of {self.name} is not started; call start() or use it in a with block")
        with self._condition:
            while self._ready is None and not self._ended and not self._stop.is_set():
                self._condition.wait(poll_s)
            if self._stop.is_set():
                return None
            if self._ready is not None:
                prepared, self._ready = self._ready, None
                self._condition.notify_all()
                return prepared
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            return None

    def stop(self) -> None:
        """Make ``take`` return None and the thread end; safe to call from a signal handler.

        It only sets an event, because a signal handler that took the lock could deadlock with the
        thread it interrupted. The waits poll the event every ``poll_s``.
        """
        self._stop.set()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread and wait up to ``timeout`` seconds for it to end.

        Note:
            ``read_frame`` can block, for example on a live source waiting for a frame. Stop the
            source first so that it returns None, or the thread ends only when the next frame arrives.
        """
        self.stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                _log.warning("%s: the frame preparer did not stop within %.0f s; leaving it behind", self.name, timeout)

    def __enter__(self) -> FramePreparer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self) -> None:
        try:
            self._prepare_frames()
        except Exception as error:  # noqa: BLE001 - take() raises it; a dead thread would leave take() waiting
            _log.debug("%s: preparing frames failed", self.name, exc_info=True)
            with self._condition:
                self._error = error
        finally:
            with self._condition:
                self._ended = True
                self._condition.notify_all()

    def _prepare_frames(self) -> None:
        while self._wait_for_free_slot():
            frame = self._read_frame()
            if frame is None:
                return
            self.frames_taken += 1
            if (self.frames_taken - 1) % self.every:
                self.frames_skipped += 1
                continue

            taken_at = time.perf_counter()
            tensor = self._prepare(frame)
            with self._condition:
                self._ready = PreparedFrame(self.frames_taken, frame, tensor, taken_at)
                self.frames_prepared += 1
                self._condition.notify_all()

    def _wait_for_free_slot(self, poll_s: float = 0.1) -> bool:
        """Wait until the last prepared frame was taken; return False once ``stop`` was called."""
        with self._condition:
            while self._ready is not None and not self._stop.is_set():
                self._condition.wait(poll_s)
        return not self._stop.is_set()
