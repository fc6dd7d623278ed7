"""Live sources: V4L2 cameras, network streams and the Raspberry Pi camera, read newest frame first."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import SourceError
from .frame_source import FrameSource, SourceNotFoundError
from .images import to_bgr8
from .latest_frame import LatestFrameReader

_log = logging.getLogger(__name__)

PICAMERA2 = "picamera2"

# FFmpeg waits this long to connect and for each frame before a stream counts as dropped. Without a
# read timeout a stalled server blocks the reader forever and reconnecting never starts.
STREAM_TIMEOUT_MS = 5000

_PICAMERA2_HINT = (
    "install it with 'sudo apt install python3-picamera2' (Raspberry Pi OS Bookworm) and create the "
    "virtual environment with --system-site-packages so that it can import the system package"
)


class _LiveSource(FrameSource):
    """A device read by a ``LatestFrameReader``; subclasses implement ``_open_capture``."""

    live = True

    def __init__(self, name: str, reconnect: int = 5, reconnect_delay: float = 0.5) -> None:
        super().__init__(name)
        self._reader = LatestFrameReader(name, self._open_capture, reconnect=reconnect, reconnect_delay=reconnect_delay)

    def _open_capture(self) -> Any:
        raise NotImplementedError

    def open(self) -> None:
        self._reader.start()

    def read(self) -> np.ndarray | None:
        frame = self._reader.take()
        self._sync_counters()
        if frame is not None and (frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8):
            frame = to_bgr8(frame, self.name)
        return frame

    def stop(self) -> None:
        self._reader.stop()

    def close(self) -> None:
        self._reader.close()
        self._sync_counters()

    def _sync_counters(self) -> None:
        self.frames_read = self._reader.frames_read
        self.frames_dropped = self._reader.frames_dropped
        self.reconnects = self._reader.reconnects


class CameraSource(_LiveSource):
    """Frames of a V4L2 camera (USB webcam, or the Pi camera through a V4L2 bridge), newest first.

    Args:
        device: a camera index such as 0, or a device path such as ``/dev/video0``.
        width: requested capture width in pixels; default None keeps the driver's default.
        height: requested capture height in pixels; default None keeps the driver's default.
        reconnect: reopen attempts after the camera stops delivering frames (unplugged); default 5.
        reconnect_delay: seconds before the first reopen attempt, doubled for each further one; default 0.5.

    Raises:
        SourceNotFoundError: from ``open`` if the device path does not exist.
        SourceError: from ``open`` if the camera cannot be opened, naming what to check.
    """

    def __init__(
        self,
        device: int | str,
        width: int | None = None,
        height: int | None = None,
        reconnect: int = 5,
        reconnect_delay: float = 0.5,
    ) -> None:
        self.device = device
        self.width = width
        self.height = height
        super().__init__(f"camera {device}", reconnect, reconnect_delay)

    def _device_path(self) -> Path | None:
        if isinstance(self.device, int):
            return Path(f"/dev/video{self.device}") if sys.platform.startswith("linux") else None
        return Path(self.device)

    def _open_capture(self) -> Any:
        path = self._device_path()
        checks = "run 'v4l2-ctl --list-devices' to list cameras"
        if path is not None and not path.exists():
            devices = sorted(str(p) for p in Path("/dev").glob("video*")) if Path("/dev").is_dir() else []
            found = f"this machine has {', '.join(devices)}" if devices else "this machine has no /dev/video* device"
            raise SourceNotFoundError(
                f"{self.name}: {path} does not exist ({found}); check that the camera is plugged in and "
                f"detected ({checks}); for the Raspberry Pi camera module on Bookworm use --source picamera2"
            )
        if path is not None and not os.access(path, os.R_OK | os.W_OK):
            raise SourceError(
                f"{self.name}: no permission to open {path}; add your user to the 'video' group "
                "(sudo usermod -aG video $USER, then log in again) or run with access to the device"
            )

        capture = cv2.VideoCapture(self.device, cv2.CAP_V4L2) if sys.platform.startswith("linux") else cv2.VideoCapture(self.device)
        if not capture.isOpened():
            capture.release()
            raise SourceError(
                f"{self.name}: OpenCV cannot open the camera; check that no other process is using it "
                f"(fuser {path or self.device}), that it is a capture device ({checks}), and for the "
                "Raspberry Pi camera module on Bookworm use --source picamera2"
            )
        if self.width:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        if self.height:
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        # One buffered frame instead of the driver's default four keeps even the reader thread current.
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return capture


class StreamSource(_LiveSource):
    """Frames of a network stream (RTSP, or HTTP(S) MJPEG as IP cameras and ``mjpg-streamer`` serve), newest first.

    Args:
        url: the stream URL, for example ``rtsp://192.168.1.20:554/stream1`` or ``http://pi.local:8080/stream.mjpg``.
        reconnect: reopen attempts after the stream drops; default 5.
        reconnect_delay: seconds before the first reopen attempt, doubled for each further one; default 0.5.
        timeout_ms: how long FFmpeg waits to connect and for each frame; default 5000.

    Raises:
        SourceError: from ``open`` if the stream cannot be opened.

    Note:
        OpenCV's FFmpeg reads RTSP over UDP by default; to use TCP, which loses no packets on Wi-Fi,
        set ``OPENCV_FFMPEG_CAPTURE_OPTIONS="rtsp_transport;tcp"`` before starting.
        NOTE: the tests serve HTTP MJPEG only; RTSP goes through the same FFmpeg calls but no test
        runs it against an RTSP server.
    """

    def __init__(self, url: str, reconnect: int = 5, reconnect_delay: float = 0.5, timeout_ms: int = STREAM_TIMEOUT_MS) -> None:
        self.url = url
        self.timeout_ms = timeout_ms
        super().__init__(url, reconnect, reconnect_delay)

    def _open_capture(self) -> Any:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self.timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, self.timeout_ms]
        capture = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)
        if not capture.isOpened():
            capture.release()
            raise SourceError(
                f"{self.url}: OpenCV cannot open the stream; check that the server is running and the URL, "
                "port and credentials are right (try it with 'ffplay URL' or a browser for MJPEG)"
            )
        return capture


class _PiCameraCapture:
    """Adapts ``picamera2.Picamera2`` to the ``read``/``release`` calls of ``cv2.VideoCapture``."""

    def __init__(self, camera: Any) -> None:
        self._camera = camera

    def read(self) -> tuple[bool, np.ndarray | None]:
        try:
            # "RGB888" in libcamera terms is B, G, R byte order, which is OpenCV's BGR.
            return True, self._camera.capture_array("main")
        except RuntimeError as error:
            _log.warning("picamera2: capture failed: %s", error)
            return False, None

    def release(self) -> None:
        try:
            self._camera.stop()
        finally:
            self._camera.close()


class PiCameraSource(_LiveSource):
    """Frames of the Raspberry Pi camera module through ``picamera2`` (libcamera), newest first.

    On Raspberry Pi OS Bookworm the camera module is driven by libcamera, and OpenCV's
    ``VideoCapture(0)`` cannot open it. ``picamera2`` is imported only when this source opens.
    NOTE: only the missing-package path is tested; the capture calls follow the picamera2 manual but
    have not run on a board.

    Args:
        width: capture width in pixels; default 640.
        height: capture height in pixels; default 480.
        reconnect: reopen attempts after the camera stops delivering frames; default 5.
        reconnect_delay: seconds before the first reopen attempt, doubled for each further one; default 0.5.

    Raises:
        SourceError: from ``open`` if ``picamera2`` is missing or the camera cannot be started.
    """

    def __init__(self, width: int | None = None, height: int | None = None, reconnect: int = 5, reconnect_delay: float = 0.5) -> None:
        self.width = width or 640
        self.height = height or 480
        super().__init__(PICAMERA2, reconnect, reconnect_delay)

    def _open_capture(self) -> Any:
        try:
            from picamera2 import Picamera2
        except ImportError as error:
            raise SourceError(f"--source picamera2 needs the picamera2 package, which fails to import ({error}); {_PICAMERA2_HINT}") from error
        try:
            camera = Picamera2()
            config = camera.create_video_configuration(main={"size": (self.width, self.height), "format": "RGB888"})
            camera.configure(config)
            camera.start()
        except (RuntimeError, IndexError, OSError) as error:
            raise SourceError(
                f"picamera2: the camera cannot be started ({error}); check the ribbon cable, that "
                "'rpicam-hello --list-cameras' lists it and that no other process uses it"
            ) from error
        return _PiCameraCapture(camera)
