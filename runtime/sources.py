"""Frame sources: image files, video files, cameras, network streams and the Raspberry Pi camera.

Every source is a context manager and an iterator of frames (HxWx3 uint8 BGR arrays)::

    with open_source("0") as source:
        for frame in source:
            print(model.predict(frame))

Live sources (cameras, streams, the Pi camera) read in a background thread that keeps only the newest
frame, so a slow model always counts the most recent picture and the frames it had no time for are
counted as dropped. A stream that stops is reopened with exponential backoff, bounded by ``reconnect``.

Video files are read in order, every frame, at the speed of the consumer: a file is usually evaluated,
and dropping frames would make the result depend on the machine. With ``realtime=True`` a file is
played at its own frame rate and behaves like a camera, dropping the frames the model has no time for.
The end of a video file or of a list of images is a normal end of iteration.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .cameras import PICAMERA2, CameraSource, PiCameraSource, StreamSource
from .frame_source import FrameSource, ImageSource, SourceNotFoundError
from .images import is_image_file
from .video import VideoSource

__all__ = [
    "CameraSource",
    "FrameSource",
    "ImageSource",
    "PiCameraSource",
    "SourceNotFoundError",
    "StreamSource",
    "VideoSource",
    "open_source",
]

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp")


def _is_camera_index(spec: str) -> bool:
    return spec.isdigit()


def open_source(
    spec: str | int | os.PathLike[str],
    realtime: bool = False,
    reconnect: int = 5,
    reconnect_delay: float = 0.5,
    width: int | None = None,
    height: int | None = None,
) -> FrameSource:
    """Create the source that a ``--source`` value names; the caller opens it with ``with``.

    Args:
        spec: ``0`` or another camera index; a device path such as ``/dev/video0``; ``picamera2``;
            an ``rtsp://``, ``rtsps://``, ``rtmp://``, ``http://`` or ``https://`` stream URL; a video
            file; or an image file, folder or glob pattern.
        realtime: play video files at their own frame rate, dropping frames (see ``VideoSource``);
            default False.
        reconnect: reopen attempts after a camera or stream drops; default 5.
        reconnect_delay: seconds before the first reopen attempt, doubled for each further one; default 0.5.
        width: requested camera width in pixels; default None keeps the device default.
        height: requested camera height in pixels; default None keeps the device default.

    Returns:
        An unopened ``FrameSource``.

    Raises:
        ValueError: for an empty value.
        SourceNotFoundError: for a path that does not exist and is no glob pattern.
    """
    text = str(spec).strip()
    if not text:
        raise ValueError("the source is empty; pass a camera index (0), /dev/video0, picamera2, a URL or a video file")

    if text.lower() == PICAMERA2:
        return PiCameraSource(width, height, reconnect, reconnect_delay)
    if _is_camera_index(text):
        return CameraSource(int(text), width, height, reconnect, reconnect_delay)
    if text.startswith("/dev/"):
        return CameraSource(text, width, height, reconnect, reconnect_delay)
    scheme = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://", text)
    if scheme:
        if scheme.group(1).lower() in STREAM_SCHEMES:
            return StreamSource(text, reconnect, reconnect_delay)
        raise ValueError(f"unsupported stream scheme in {text!r}; use one of: {', '.join(s + '://' for s in STREAM_SCHEMES)}")

    path = Path(text)
    if path.is_dir() or (path.is_file() and is_image_file(path)):
        return ImageSource(text)
    if not path.exists():
        if any(char in text for char in "*?["):
            return ImageSource(text)
        raise SourceNotFoundError(
            f"{text}: no such file; pass a camera index (0), a device path (/dev/video0), picamera2, an "
            "rtsp:// or http:// URL, or an existing video file"
        )
    return VideoSource(path, realtime=realtime)
