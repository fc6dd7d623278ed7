"""Frame sources on real video files, real photos and local MJPEG streams served by the tests."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgecount.runtime import SourceError
from edgecount.runtime.latest_frame import LatestFrameReader
from edgecount.runtime.sources import (
    CameraSource,
    ImageSource,
    PiCameraSource,
    SourceNotFoundError,
    StreamSource,
    VideoSource,
    open_source,
)


@pytest.fixture(scope="module")
def video_file(tmp_path_factory: pytest.TempPathFactory, real_photo_paths: list[Path], video_writer) -> Path:
    return video_writer(tmp_path_factory.mktemp("video") / "group.avi", real_photo_paths[:6], frames=12, size=(320, 240))


def test_open_source_camera_index():
    source = open_source("0")
    assert isinstance(source, CameraSource)
    assert source.device == 0


def test_open_source_device_path():
    source = open_source("/dev/video0")
    assert isinstance(source, CameraSource)
    assert source.device == "/dev/video0"


@pytest.mark.parametrize("url", ["rtsp://10.0.0.2:554/stream1", "http://127.0.0.1:8080/stream.mjpg", "HTTPS://cam/x"])
def test_open_source_stream_url(url):
    assert isinstance(open_source(url), StreamSource)


def test_open_source_picamera2():
    assert isinstance(open_source("picamera2"), PiCameraSource)


def test_open_source_video_and_images(video_file, real_photo_paths):
    assert isinstance(open_source(video_file), VideoSource)
    assert isinstance(open_source(real_photo_paths[0]), ImageSource)
    assert isinstance(open_source(real_photo_paths[0].parent), ImageSource)


def test_open_source_missing_file(tmp_path):
    with pytest.raises(SourceNotFoundError, match="no such file; pass a camera index"):
        open_source(tmp_path / "missing.mp4")


def test_open_source_unknown_scheme():
    with pytest.raises(ValueError, match="unsupported stream scheme in 'ftp://host/x'"):
        open_source("ftp://host/x")


def test_open_source_empty():
    with pytest.raises(ValueError, match="the source is empty"):
        open_source("  ")


def test_video_source_reads_every_frame(video_file):
    with VideoSource(video_file) as source:
        frames = list(source)
    assert len(frames) == 12
    assert frames[0].shape == (240, 320, 3)
    assert frames[0].dtype == np.uint8
    assert source.frames_read == 12
    assert source.frames_dropped == 0
    assert source.fps == pytest.approx(25.0)


def test_video_source_realtime_drops_stale_frames(tmp_path, real_photo_paths, video_writer):
    video = video_writer(tmp_path / "fast.avi", real_photo_paths[:3], frames=40, size=(160, 120), fps=200.0)
    taken = 0
    with VideoSource(video, realtime=True) as source:
        for _frame in source:
            taken += 1
            time.sleep(0.03)  # a model much slower than 200 FPS
    assert source.frames_read == 40
    assert taken < 40
    assert source.frames_dropped == 40 - taken


def test_video_source_missing(tmp_path):
    source = VideoSource(tmp_path / "gone.avi")
    with pytest.raises(SourceNotFoundError, match="gone.avi: video file not found"):
        source.open()


def test_video_source_corrupt(tmp_path):
    corrupt = tmp_path / "corrupt.avi"
    corrupt.write_bytes(b"RIFF" + bytes(range(256)) * 20)
    with pytest.raises(SourceError, match="corrupt.avi: OpenCV cannot open the video"):
        VideoSource(corrupt).open()


def test_video_source_truncated(tmp_path, video_file):
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(video_file.read_bytes()[:300])
    with pytest.raises(SourceError, match="truncated.avi: OpenCV"):
        with VideoSource(truncated) as source:
            list(source)


def test_image_source_folder(tmp_path, real_photo_paths):
    for photo in real_photo_paths[:3]:
        (tmp_path / photo.name).write_bytes(photo.read_bytes())
    (tmp_path / "notes.txt").write_text("not an image")
    with ImageSource(tmp_path) as source:
        frames = list(source)
    assert len(frames) == 3
    assert all(frame.ndim == 3 and frame.shape[2] == 3 for frame in frames)


def test_image_source_no_match(tmp_path):
    with pytest.raises(SourceNotFoundError, match="no images matched"):
        ImageSource(str(tmp_path / "*.jpg")).open()


def test_camera_source_missing_index():
    with pytest.raises(SourceError, match=r"camera 9: /dev/video9 does not exist .*v4l2-ctl --list-devices"):
        CameraSource(9).open()


def test_camera_source_missing_device_path():
    with pytest.raises(SourceNotFoundError, match="/dev/video-missing does not exist"):
        CameraSource("/dev/video-missing").open()


@pytest.mark.skipif(os.geteuid() == 0, reason="root opens devices whatever their permissions")
def test_camera_source_no_permission(tmp_path):
    device = tmp_path / "video0"
    device.write_bytes(b"")
    device.chmod(0)
    with pytest.raises(SourceError, match="no permission to open .*video0; add your user to the 'video' group"):
        CameraSource(str(device)).open()


def test_camera_source_not_a_camera(tmp_path):
    fake = tmp_path / "video0"
    fake.write_bytes(b"")
    with pytest.raises(SourceError, match="OpenCV cannot open the camera; check that no other process is using it"):
        CameraSource(str(fake)).open()


def test_picamera_source_missing_package():
    with pytest.raises(SourceError, match="sudo apt install python3-picamera2.*--system-site-packages"):
        PiCameraSource().open()


def test_stream_source_reads_mjpeg(mjpeg_server):
    url, _server = mjpeg_server(lambda connection: 8)
    with StreamSource(url, reconnect=0) as source:
        first = source.read()
        assert first is not None
        assert first.shape[2] == 3
        rest = []
        with pytest.raises(SourceError, match="reconnecting is off"):
            while (frame := source.read()) is not None:
                rest.append(frame)
    assert source.frames_read == 8


def test_stream_source_reconnects(mjpeg_server, caplog):
    # The first connection ends after 5 frames, the second serves 5 more.
    url, server = mjpeg_server(lambda connection: 5 if connection < 2 else 0)
    caplog.set_level(logging.WARNING, logger="edgecount.runtime.latest_frame")
    with StreamSource(url, reconnect=2, reconnect_delay=0.05) as source:
        with pytest.raises(SourceError, match="2 reconnect attempts failed"):
            while source.read() is not None:
                pass
    assert source.reconnects == 1
    assert source.frames_read == 10
    assert server.connections == 4
    assert "reconnected on attempt 1" in caplog.text
    assert "stopped delivering frames" in caplog.text


def test_stream_source_refused():
    with pytest.raises(SourceError, match="cannot open the stream; check that the server is running"):
        StreamSource("http://127.0.0.1:9/stream.mjpg", reconnect=0).open()


def test_stream_source_stop_unblocks_read(mjpeg_server):
    url, _server = mjpeg_server(lambda connection: None, fps=5.0)
    with StreamSource(url) as source:
        assert source.read() is not None
        threading.Timer(0.2, source.stop).start()
        while source.read() is not None:
            pass
    assert source.frames_read >= 1


class _ScriptedCapture:
    """A capture that returns prepared frames quickly and then reports the end."""

    def __init__(self, count: int, delay_s: float = 0.0) -> None:
        self.remaining = count
        self.delay_s = delay_s
        self.released = False

    def read(self):
        time.sleep(self.delay_s)
        if self.remaining == 0:
            return False, None
        self.remaining -= 1
        return True, np.full((4, 4, 3), self.remaining, dtype=np.uint8)

    def release(self):
        self.released = True


def test_latest_frame_reader_returns_newest():
    capture = _ScriptedCapture(50, delay_s=0.002)
    reader = LatestFrameReader("scripted", lambda: capture, end_is_normal=True)
    reader.start()
    # Wait for all 50 reads rather than a fixed time, which a busy machine can exceed.
    deadline = time.monotonic() + 30
    while reader.frames_read < 50 and time.monotonic() < deadline:
        time.sleep(0.01)
    frame = reader.take()
    assert frame is not None
    assert int(frame[0, 0, 0]) == 0  # the last frame written, not the first
    assert reader.take() is None
    reader.close()
    assert reader.frames_read == 50
    assert reader.frames_dropped == 49
    assert capture.released


def test_latest_frame_reader_rejects_negative_reconnect():
    with pytest.raises(ValueError, match="reconnect must be 0 or more attempts, got -1"):
        LatestFrameReader("x", lambda: _ScriptedCapture(1), reconnect=-1)


@pytest.mark.camera
@pytest.mark.skipif(not Path("/dev/video0").exists(), reason="no camera at /dev/video0")
def test_camera_source_real_device():
    with CameraSource(0, width=640, height=480) as source:
        frames = [source.read() for _ in range(5)]
    assert all(frame is not None and frame.ndim == 3 and frame.shape[2] == 3 for frame in frames)
    assert source.frames_read >= 5


class _FailingCapture:
    def read(self):
        raise OSError("device unplugged mid-read")

    def release(self):
        pass


def test_latest_frame_reader_forwards_thread_failure():
    reader = LatestFrameReader("failing", lambda: _FailingCapture())
    reader.start()
    with pytest.raises(SourceError, match="failing: reading frames failed with OSError: device unplugged mid-read"):
        reader.take()
    reader.close()
