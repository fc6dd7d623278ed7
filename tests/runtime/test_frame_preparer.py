"""``FramePreparer`` on in-memory frames, scripted live captures and a real model on a real video."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgecount.runtime import CountModel, SourceError
from edgecount.runtime.frame_preparer import FramePreparer
from edgecount.runtime.latest_frame import LatestFrameReader
from edgecount.runtime.sources import VideoSource


def _numbered_frames(count: int) -> list[np.ndarray]:
    return [np.full((8, 8, 3), index, dtype=np.uint8) for index in range(count)]


def _reader_of(frames: list[np.ndarray]):
    remaining = iter(frames)
    return lambda: next(remaining, None)


def _recording_prepare(calls: list[str]):
    def prepare(frame: np.ndarray) -> np.ndarray:
        calls.append(threading.current_thread().name)
        return frame[:2, :2].copy()

    return prepare


def _wait_until(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the condition did not become true within 30 s")
        time.sleep(0.01)


def test_frame_preparer_prepares_every_frame_in_order():
    calls: list[str] = []
    with FramePreparer(_reader_of(_numbered_frames(20)), _recording_prepare(calls), name="memory") as preparer:
        prepared_frames = []
        while (prepared := preparer.take()) is not None:
            prepared_frames.append(prepared)

    assert [prepared.number for prepared in prepared_frames] == list(range(1, 21))
    assert [int(prepared.frame[0, 0, 0]) for prepared in prepared_frames] == list(range(20))
    assert all(int(prepared.tensor[0, 0, 0]) == prepared.number - 1 for prepared in prepared_frames)
    assert preparer.frames_taken == 20
    assert preparer.frames_prepared == 20
    assert preparer.frames_skipped == 0
    assert set(calls) == {"prepare memory"}


def test_frame_preparer_every_skips_without_preparing():
    calls: list[str] = []
    with FramePreparer(_reader_of(_numbered_frames(12)), _recording_prepare(calls), every=3) as preparer:
        numbers = []
        while (prepared := preparer.take()) is not None:
            numbers.append(prepared.number)

    assert numbers == [1, 4, 7, 10]
    assert len(calls) == 4
    assert preparer.frames_taken == 12
    assert preparer.frames_skipped == 8


def test_frame_preparer_prepares_one_frame_ahead():
    reads = []

    def read_frame() -> np.ndarray:
        reads.append(1)
        return np.zeros((8, 8, 3), dtype=np.uint8)

    with FramePreparer(read_frame, _recording_prepare([])) as preparer:
        _wait_until(lambda: preparer.frames_prepared == 1)
        # The test does not take the prepared frame, so the thread must not read or prepare another one.
        time.sleep(0.3)
        assert len(reads) == 1
        assert preparer.take().number == 1
        _wait_until(lambda: preparer.frames_prepared == 2)
        time.sleep(0.3)
        assert len(reads) == 2


class _FastCapture:
    """A capture that delivers a numbered frame every 2 ms, like a camera much faster than the model."""

    def __init__(self) -> None:
        self.number = 0

    def read(self):
        time.sleep(0.002)
        self.number += 1
        return True, np.full((8, 8, 3), self.number % 256, dtype=np.uint8)

    def release(self):
        pass


def test_frame_preparer_live_prepares_counted_only():
    reader = LatestFrameReader("fast camera", _FastCapture)
    reader.start()
    calls: list[str] = []
    numbers = []
    try:
        with FramePreparer(reader.take, _recording_prepare(calls)) as preparer:
            for _ in range(8):
                prepared = preparer.take()
                numbers.append(int(prepared.frame[0, 0, 0]))
                time.sleep(0.05)  # a slow model
            preparer.stop()
    finally:
        reader.close()

    assert len(calls) <= 9
    assert reader.frames_dropped > 0
    assert reader.frames_read > len(calls)
    assert all(later > earlier for earlier, later in zip(numbers, numbers[1:]))


def test_frame_preparer_source_error_after_frames():
    frames = iter(_numbered_frames(2))

    def read_frame() -> np.ndarray:
        frame = next(frames, None)
        if frame is None:
            raise SourceError("camera 0: the source stopped delivering frames")
        return frame

    with FramePreparer(read_frame, _recording_prepare([])) as preparer:
        assert preparer.take().number == 1
        assert preparer.take().number == 2
        with pytest.raises(SourceError, match="camera 0: the source stopped delivering frames"):
            preparer.take()
        assert preparer.take() is None


def test_frame_preparer_raises_prepare_error():
    def prepare(frame: np.ndarray) -> np.ndarray:
        raise ValueError("preprocess expects an HxWx3 uint8 BGR frame")

    with FramePreparer(_reader_of(_numbered_frames(3)), prepare) as preparer:
        with pytest.raises(ValueError, match="expects an HxWx3 uint8 BGR frame"):
            preparer.take()


def test_frame_preparer_stop_unblocks_take():
    release = threading.Event()

    def blocked_read() -> np.ndarray | None:
        release.wait(30)
        return None

    preparer = FramePreparer(blocked_read, _recording_prepare([]))
    preparer.start()
    timer = threading.Timer(0.2, preparer.stop)
    timer.start()
    try:
        assert preparer.take() is None
    finally:
        release.set()
        preparer.close()
        timer.cancel()
    assert preparer.frames_taken == 0


def test_frame_preparer_rejects_every_below_one():
    with pytest.raises(ValueError, match="every must be 1 or more frames, got 0"):
        FramePreparer(_reader_of([]), _recording_prepare([]), every=0)


def test_frame_preparer_take_before_start():
    preparer = FramePreparer(_reader_of([]), _recording_prepare([]), name="clip.avi")
    with pytest.raises(RuntimeError, match="frame preparer of clip.avi is not started"):
        preparer.take()


def test_frame_preparer_start_twice():
    with FramePreparer(_reader_of([]), _recording_prepare([]), name="clip.avi") as preparer:
        with pytest.raises(RuntimeError, match="clip.avi was already started"):
            preparer.start()


@pytest.mark.parametrize("tta", ["none", "flip", "tiles"])
def test_frame_preparer_counts_equal_predict(tiny_run: Path, real_photo_paths: list[Path], video_writer, tmp_path: Path, tta: str):
    video = video_writer(tmp_path / "clip.avi", real_photo_paths[:5], frames=10, size=(320, 240))
    model = CountModel(tiny_run / "model_int8.tflite", num_threads=1, tta=tta)
    with VideoSource(video) as source:
        frames = list(source)

    with FramePreparer(_reader_of(frames), model.prepare) as preparer:
        pipelined = []
        while (prepared := preparer.take()) is not None:
            pipelined.append(model.predict_prepared(prepared.tensor))

    assert len(pipelined) == 10
    assert pipelined == [model.predict(frame) for frame in frames]
