"""``edgecount webcam``: count faces live in a camera, stream or video, without TensorFlow."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TextIO

import cv2
import numpy as np
import typer

from edgecount.commands.options import BackendOpt, ModelArg, ThreadsOpt, TtaOpt, check_tta
from edgecount.runtime import BACKENDS, CountModel, ImageDecodeError, SourceError
from edgecount.runtime.frame_preparer import FramePreparer, PreparedFrame
from edgecount.runtime.sources import FrameSource, open_source
from edgecount.runtime.stats import LatencyStats, MovingAverage, RateMeter

_log = logging.getLogger(__name__)

# The CSV columns stay those of earlier versions, so that a long-running counter (the systemd example)
# keeps appending to the same file under one header. JSON lines also carry the inference time.
CSV_FIELDS = ["timestamp", "frame", "count", "smoothed", "latency_ms", "fps"]
JSON_FIELDS = [*CSV_FIELDS, "inference_ms"]
_WINDOW_TITLE = "edgecount"


def webcam(
    model: ModelArg,
    source: Annotated[
        str,
        typer.Option(
            "--source",
            "-s",
            help="Camera index (0), device (/dev/video0), picamera2, rtsp:// or http:// MJPEG URL, video file, or image folder.",
        ),
    ] = "0",
    every: Annotated[int, typer.Option("--every", min=1, help="Count every Nth frame taken from the source.")] = 1,
    smooth: Annotated[int, typer.Option("--smooth", min=1, help="Report the moving average of the last K counts next to the raw count.")] = 5,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object per counted frame (JSON lines).")] = False,
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="Append one row per counted frame to this CSV file (header written once).")
    ] = None,
    show: Annotated[bool, typer.Option("--show", help="Open a window with the frame, count, FPS and latency (needs a display).")] = False,
    max_frames: Annotated[int | None, typer.Option("--max-frames", min=1, help="Stop after counting N frames.")] = None,
    duration: Annotated[float | None, typer.Option("--duration", min=0.0, help="Stop after S seconds.")] = None,
    realtime: Annotated[
        bool, typer.Option("--realtime", help="Play a video file at its own frame rate and drop the frames the model misses, like a camera.")
    ] = False,
    reconnect: Annotated[
        int, typer.Option("--reconnect", min=0, help="Reopen a camera or stream that stops up to N times in a row (0: stop at the first drop).")
    ] = 5,
    reconnect_delay: Annotated[
        float,
        typer.Option("--reconnect-delay", min=0.0, help="Seconds before the first reopen attempt, doubled for each further one (max 30).", rich_help_panel="Advanced"),
    ] = 0.5,
    width: Annotated[int | None, typer.Option("--width", min=1, help="Requested camera width in pixels.", rich_help_panel="Advanced")] = None,
    height: Annotated[int | None, typer.Option("--height", min=1, help="Requested camera height in pixels.", rich_help_panel="Advanced")] = None,
    threads: ThreadsOpt = None,
    backend: BackendOpt = "auto",
    tta: TtaOpt = "none",
) -> None:
    """Count faces live in a camera, network stream or video file, one line per counted frame.

    Each line on stdout has the time, the frame number, the count, its moving average, the latency in
    ms from taking the frame off the source to its count, the inference time in ms, and the counting
    rate in FPS. Cameras and streams are read in a background thread that keeps only the newest frame.
    When the model starts counting a frame, a second thread takes the newest frame and resizes it
    meanwhile. So no frame is resized only to be dropped, and a counted frame is at most one inference
    older than the newest frame when its own inference starts. Video files are read frame by frame
    unless --realtime. Ctrl-C, SIGTERM, the end of a video, --max-frames or --duration stop the run
    cleanly: the source is released, a summary goes to stderr and the exit code is 0. A stream that
    stays down after --reconnect attempts ends with the summary and exit code 1.

    Examples:

        edgecount webcam runs/av/model_int8.tflite --source 0 --smooth 10

        edgecount webcam model_int8.tflite --source http://pi.local:8080/stream.mjpg --every 3 --json

        edgecount webcam model_int8.tflite --source /dev/video0 --csv counts.csv --duration 3600

        edgecount webcam model_int8.tflite --source picamera2 --show
    """
    if duration is not None and duration <= 0:
        raise typer.BadParameter(f"must be above 0 seconds, got {duration:g}; leave it out to run until stopped", param_hint="--duration")
    if json_output and csv_path is not None:
        raise typer.BadParameter("choose one of --json and --csv")
    if backend not in ("auto", *BACKENDS):
        raise typer.BadParameter(f"unknown backend {backend!r}; choose one of: auto, {', '.join(BACKENDS)}", param_hint="--backend")
    # OpenCV logs a warning for each capture backend that fails to open a source. The SourceError
    # that follows names the source and the fix, so those warnings show only with -vv.
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        _quiet_opencv_logging()
    count_model = CountModel(model, num_threads=threads, backend=backend, tta=check_tta(tta))
    try:
        frame_source = open_source(source, realtime=realtime, reconnect=reconnect, reconnect_delay=reconnect_delay, width=width, height=height)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--source") from error
    csv_file = _open_csv(csv_path) if csv_path is not None else None

    run = _Run(count_model, frame_source, every, MovingAverage(smooth), json_output, csv_file, _Display() if show else None)
    stopper = _Stopper(frame_source, run.preparer)
    timer = threading.Timer(duration, stopper.stop_after_duration) if duration is not None else None
    failure: SourceError | None = None
    try:
        stopper.install()
        with frame_source:
            if timer is not None:
                timer.daemon = True
                timer.start()
            failure = run.loop(max_frames, stopper)
    finally:
        stopper.uninstall()
        if timer is not None:
            timer.cancel()
        if csv_file is not None:
            csv_file.close()
        if run.display is not None:
            run.display.close()

    if os.environ.get("EDGECOUNT_QUIET") != "1" or failure is not None:
        print(run.summary(stopper.reason if failure is None else "source failed"), file=sys.stderr)
    if failure is not None:
        raise failure


@dataclass
class _Run:
    """The counting loop and the numbers its summary reports.

    A ``FramePreparer`` thread takes each frame from the source and prepares the model input while
    this loop, in the calling thread, runs the interpreter on the previous one and writes its count.
    """

    model: CountModel
    source: FrameSource
    every: int
    smoother: MovingAverage
    json_output: bool
    csv_file: TextIO | None
    display: _Display | None
    frames_counted: int = 0
    decode_failures: int = 0
    latency: LatencyStats = field(default_factory=LatencyStats)
    inference: LatencyStats = field(default_factory=LatencyStats)
    rate: RateMeter = field(default_factory=RateMeter)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.preparer = FramePreparer(self._next_frame, self.model.prepare, self.every, name=self.source.name)

    def loop(self, max_frames: int | None, stopper: _Stopper) -> SourceError | None:
        """Count frames until the source ends or a stop; return the error of a failed source."""
        self.started = time.monotonic()
        self._csv_writer = csv.writer(self.csv_file, lineterminator="\n") if self.csv_file else None
        self.preparer.start()
        try:
            while (prepared := self.preparer.take()) is not None:
                self._count(prepared)
                if max_frames is not None and self.frames_counted >= max_frames:
                    stopper.reason = f"--max-frames {max_frames} reached"
                    break
                if self.display is not None and self.display.quit_requested:
                    stopper.reason = "window closed with q or Esc"
                    break
                if stopper.stopped:
                    break
        except SourceError as error:
            return error
        except BrokenPipeError:
            # The reader of stdout went away (for example '| head'); stop like on Ctrl-C, and point
            # stdout at /dev/null so that the final flush at exit does not fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            stopper.reason = "stdout closed"
        finally:
            # The preparer may wait in source.read() for a frame that never comes; stopping the
            # source first makes that read return None.
            self.source.stop()
            self.preparer.close()
        return None

    def _next_frame(self) -> np.ndarray | None:
        """Return the next frame, skipping image files that fail to decode (an image folder source).

        It runs in the preparer's thread.
        """
        while True:
            try:
                return self.source.read()
            except ImageDecodeError as error:
                self.decode_failures += 1
                _log.warning("skipped an image: %s", error)

    def _count(self, prepared: PreparedFrame) -> None:
        start = time.perf_counter()
        value = self.model.predict_prepared(prepared.tensor)
        done = time.perf_counter()
        # The latency runs from taking the frame off the source, before its preparation, to its count,
        # so it includes the wait while the interpreter finished the previous frame.
        latency_ms = (done - prepared.taken_at) * 1000.0
        inference_ms = (done - start) * 1000.0
        self.frames_counted += 1
        self.latency.add(latency_ms)
        self.inference.add(inference_ms)
        smoothed = self.smoother.add(value)
        fps = self.rate.tick()
        timestamp = datetime.now().astimezone().isoformat(timespec="milliseconds")
        row = [timestamp, prepared.number, round(value, 3), round(smoothed, 3), round(latency_ms, 2), round(fps, 2)]

        if self.json_output:
            print(json.dumps(dict(zip(JSON_FIELDS, [*row, round(inference_ms, 2)]))), flush=True)
        elif self._csv_writer is not None:
            self._csv_writer.writerow(row)
            self.csv_file.flush()
        else:
            print(
                f"{timestamp}  frame {prepared.number:>6}  count {value:6.2f}  smoothed {smoothed:6.2f}  "
                f"latency {latency_ms:7.1f} ms  inference {inference_ms:6.1f} ms  {fps:5.1f} FPS",
                flush=True,
            )
        if self.display is not None:
            self.display.show(prepared.frame, value, smoothed, latency_ms, fps)

    def summary(self, reason: str) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        unfinished = self.preparer.frames_prepared - self.frames_counted
        return (
            f"summary ({reason}): {self.source.frames_read} frames read, {self.frames_counted} counted, "
            f"{self.source.frames_dropped} dropped, {self.preparer.frames_skipped} skipped by --every; latency mean "
            f"{self.latency.mean:.1f} ms, p90 {self.latency.percentile(90):.1f} ms; inference mean "
            f"{self.inference.mean:.1f} ms, p90 {self.inference.percentile(90):.1f} ms; "
            f"{self.frames_counted / elapsed:.1f} FPS over {elapsed:.1f} s; {self.source.reconnects} reconnects"
            + (f"; {unfinished} prepared but not counted at the stop" if unfinished > 0 else "")
            + (f"; {self.decode_failures} images failed to decode" if self.decode_failures else "")
        )


class _Stopper:
    """Turns SIGINT and SIGTERM into a clean stop of the preparer and the source; a second Ctrl-C interrupts at once."""

    def __init__(self, source: FrameSource, preparer: FramePreparer) -> None:
        self.source = source
        self.preparer = preparer
        self.stopped = False
        self.reason = "end of the source"
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.stopped and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.stop(f"{signal.Signals(signum).name} received")

    def stop(self, reason: str) -> None:
        self.stopped = True
        self.reason = reason
        self.preparer.stop()
        self.source.stop()

    def stop_after_duration(self) -> None:
        self.stop("--duration reached")


def _open_csv(path: Path) -> TextIO:
    """Open a CSV file for appending, writing the header only into a new or empty file."""
    header = ",".join(CSV_FIELDS)
    first_line, ends_with_newline = "", True
    try:
        if path.exists() and path.stat().st_size > 0:
            with open(path, "rb") as existing:
                first_line = existing.readline().decode("utf-8", "replace").rstrip("\r\n")
                existing.seek(-1, os.SEEK_END)
                ends_with_newline = existing.read(1) == b"\n"
    except OSError as error:
        raise typer.BadParameter(f"cannot read {path}: {error.strerror}", param_hint="--csv") from error
    if first_line and first_line != header:
        raise typer.BadParameter(
            f"{path} already exists with another header ({first_line[:80]!r}); pass a new file "
            f"or one written by 'edgecount webcam --csv' (header {header!r})",
            param_hint="--csv",
        )
    try:
        handle = open(path, "a", newline="", encoding="utf-8")
    except OSError as error:
        raise typer.BadParameter(f"cannot write {path}: {error.strerror}", param_hint="--csv") from error
    if not first_line:
        handle.write(header + "\n")
    elif not ends_with_newline:
        # A run that was killed mid-row left a partial line; start the next row on its own line.
        handle.write("\n")
    handle.flush()
    return handle


class _Display:
    """A window that shows each counted frame with its numbers, or nothing when no window can open."""

    def __init__(self) -> None:
        self.available = True
        self.quit_requested = False
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            self._disable("no display (DISPLAY and WAYLAND_DISPLAY are unset)")

    def _disable(self, reason: str) -> None:
        self.available = False
        _log.warning("--show: cannot open a window, %s; counting goes on without one", reason)

    def show(self, frame: np.ndarray, count: float, smoothed: float, latency_ms: float, fps: float) -> None:
        if not self.available:
            return
        canvas = frame.copy()
        lines = [f"count {count:.1f} (avg {smoothed:.1f})", f"{fps:.1f} FPS  {latency_ms:.0f} ms"]
        for row, text in enumerate(lines):
            origin = (10, 30 + 30 * row)
            cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 4, cv2.LINE_AA)
            cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)
        try:
            cv2.imshow(_WINDOW_TITLE, canvas)
            key = cv2.waitKey(1) & 0xFF
        except cv2.error as error:
            message = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            self._disable(f"this OpenCV build has no GUI support (opencv-python-headless?) or the display failed: {message}")
            return
        if key in (ord("q"), 27):
            self.quit_requested = True

    def close(self) -> None:
        if not self.available:
            return
        try:
            cv2.destroyAllWindows()
        except cv2.error:
            pass


def _quiet_opencv_logging() -> None:
    # OpenCV 5 has cv2.utils.logging; the 4.x wheels that pip picks with numpy<2 (the tflite-runtime
    # extra) have only cv2.setLogLevel, which takes the same levels (2 is LOG_LEVEL_ERROR).
    opencv_logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if opencv_logging is not None:
        opencv_logging.setLogLevel(opencv_logging.LOG_LEVEL_ERROR)
    elif hasattr(cv2, "setLogLevel"):
        cv2.setLogLevel(2)
