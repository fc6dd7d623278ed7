"""``edgecount webcam`` on real video files and local MJPEG streams served by the tests."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory, real_photo_paths: list[Path], video_writer) -> Path:
    """A 12-frame 320x240 MJPG video made from real photos."""
    return video_writer(tmp_path_factory.mktemp("webcam") / "group.avi", real_photo_paths[:6], frames=12, size=(320, 240))


@pytest.fixture(scope="module")
def model(tiny_run: Path) -> Path:
    return tiny_run / "model_int8.tflite"


def _json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def video_counts(model: Path, video: Path) -> list[float]:
    """``CountModel.predict`` on each frame of the video, rounded like the JSON output."""
    from edgecount.runtime import CountModel
    from edgecount.runtime.sources import VideoSource

    count_model = CountModel(model, num_threads=1)
    with VideoSource(video) as source:
        return [round(count_model.predict(frame), 3) for frame in source]


def test_webcam_video_file_every_frame(run_cli, model, video):
    code, out, err = run_cli("webcam", model, "--source", video, "--threads", "1")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 12
    assert " frame      1  count " in lines[0]
    assert " ms  inference " in lines[0]
    assert lines[0].endswith("FPS")
    assert "summary (end of the source): 12 frames read, 12 counted, 0 dropped, 0 skipped by --every" in err
    assert "; inference mean " in err
    assert "0 reconnects" in err
    assert "prepared but not counted" not in err


def test_webcam_counts_equal_predict(run_cli, model, video, video_counts):
    code, out, err = run_cli("webcam", model, "--source", video, "--every", "1", "--json", "--threads", "1")
    assert code == 0, err
    rows = _json_lines(out)
    assert [row["frame"] for row in rows] == list(range(1, 13))
    assert [row["count"] for row in rows] == video_counts


def test_webcam_every(run_cli, model, video, video_counts):
    code, out, err = run_cli("webcam", model, "--source", video, "--every", "3", "--json")
    assert code == 0, err
    rows = _json_lines(out)
    assert [row["frame"] for row in rows] == [1, 4, 7, 10]
    assert [row["count"] for row in rows] == [video_counts[index] for index in (0, 3, 6, 9)]
    assert "12 frames read, 4 counted, 0 dropped, 8 skipped by --every" in err


def test_webcam_every_longer_than_video(run_cli, model, video, video_counts):
    code, out, err = run_cli("webcam", model, "--source", video, "--every", "20", "--json")
    assert code == 0, err
    assert [(row["frame"], row["count"]) for row in _json_lines(out)] == [(1, video_counts[0])]
    assert "12 frames read, 1 counted, 0 dropped, 11 skipped by --every" in err


def test_webcam_realtime_counts_each_frame_once(run_cli, model, video):
    code, out, err = run_cli("webcam", model, "--source", video, "--realtime", "--json", "--threads", "1")
    assert code == 0, err
    frames = [row["frame"] for row in _json_lines(out)]
    assert frames
    assert all(later > earlier for earlier, later in zip(frames, frames[1:]))
    summary = re.search(r"(\d+) frames read, (\d+) counted, (\d+) dropped", err)
    read, counted, dropped = (int(value) for value in summary.groups())
    assert read == 12
    assert counted == len(frames)
    assert counted + dropped == read


def test_webcam_smooth(run_cli, model, video):
    code, out, _ = run_cli("webcam", model, "--source", video, "--smooth", "3", "--json")
    assert code == 0
    rows = _json_lines(out)
    counts = [row["count"] for row in rows]
    for index, row in enumerate(rows):
        window = counts[max(0, index - 2) : index + 1]
        assert row["smoothed"] == pytest.approx(sum(window) / len(window), abs=2e-3)


def test_webcam_json_fields(run_cli, model, video):
    code, out, _ = run_cli("webcam", model, "--source", video, "--json", "--max-frames", "4")
    assert code == 0
    rows = _json_lines(out)
    assert len(rows) == 4
    assert list(rows[0]) == ["timestamp", "frame", "count", "smoothed", "latency_ms", "fps", "inference_ms"]
    assert all(row["count"] >= 0 and row["inference_ms"] > 0 for row in rows)
    # The latency runs from taking the frame off the source to its count, so it covers the inference.
    assert all(row["latency_ms"] >= row["inference_ms"] for row in rows)
    assert rows[-1]["fps"] > 0


def test_webcam_csv_appends_header_once(run_cli, model, video, tmp_path):
    counts = tmp_path / "counts.csv"
    for _ in range(2):
        code, out, err = run_cli("webcam", model, "--source", video, "--csv", counts, "--max-frames", "3")
        assert code == 0, err
        assert out == ""
    rows = list(csv.reader(counts.open()))
    assert rows[0] == ["timestamp", "frame", "count", "smoothed", "latency_ms", "fps"]
    assert len(rows) == 7
    assert all(row[0] != "timestamp" for row in rows[1:])


def test_webcam_csv_after_partial_row(run_cli, model, video, tmp_path):
    counts = tmp_path / "counts.csv"
    counts.write_text("timestamp,frame,count,smoothed,latency_ms,fps\n2026-01-01T00:00:00.000+00:00,1,2.5")
    code, _, _ = run_cli("webcam", model, "--source", video, "--csv", counts, "--max-frames", "2")
    assert code == 0
    rows = list(csv.reader(counts.open()))
    assert len(rows) == 4
    assert len(rows[2]) == 6


def test_webcam_csv_foreign_header(run_cli, model, video, tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("name,age\nann,3\n")
    code, _, err = run_cli("webcam", model, "--source", video, "--csv", other)
    assert code == 2
    assert "already exists with another header" in err
    assert other.read_text() == "name,age\nann,3\n"


def test_webcam_json_and_csv_conflict(run_cli, model, video, tmp_path):
    code, _, err = run_cli("webcam", model, "--source", video, "--json", "--csv", tmp_path / "x.csv")
    assert code == 2
    assert "choose one of --json and --csv" in err


def test_webcam_show_without_display(run_cli, model, video, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    code, out, err = run_cli("webcam", model, "--source", video, "--show", "--max-frames", "3")
    assert code == 0
    assert len(out.splitlines()) == 3
    assert err.count("--show: cannot open a window, no display") == 1


def test_webcam_show_headless_opencv(run_cli, model, video, monkeypatch):
    # With a display variable set, the headless OpenCV build itself raises cv2.error in imshow.
    monkeypatch.setenv("DISPLAY", ":99")
    code, out, err = run_cli("webcam", model, "--source", video, "--show", "--max-frames", "3")
    assert code == 0
    assert len(out.splitlines()) == 3
    assert err.count("--show: cannot open a window, this OpenCV build has no GUI support") == 1


def test_webcam_max_frames(run_cli, model, video):
    code, out, err = run_cli("webcam", model, "--source", video, "--max-frames", "5")
    assert code == 0
    assert len(out.splitlines()) == 5
    assert "summary (--max-frames 5 reached)" in err
    assert ", 5 counted, " in err


def test_webcam_missing_video(run_cli, model, tmp_path):
    code, out, err = run_cli("webcam", model, "--source", tmp_path / "party.mp4")
    assert code == 1
    assert out == ""
    assert f"error: {tmp_path / 'party.mp4'}: no such file; pass a camera index (0)" in err


def test_webcam_corrupt_video(run_cli, model, tmp_path):
    corrupt = tmp_path / "corrupt.avi"
    corrupt.write_bytes(b"RIFF" + bytes(range(256)) * 40)
    code, out, err = run_cli("webcam", model, "--source", corrupt)
    assert code == 1
    assert out == ""
    assert "corrupt.avi: OpenCV cannot open the video" in err
    assert "ffmpeg -i INPUT" in err


def test_webcam_missing_camera_index(run_cli, model):
    code, out, err = run_cli("webcam", model, "--source", "9")
    assert code == 1
    assert out == ""
    assert "error: camera 9: /dev/video9 does not exist" in err
    assert "v4l2-ctl --list-devices" in err


def test_webcam_missing_device_path(run_cli, model):
    code, _, err = run_cli("webcam", model, "--source", "/dev/video-usb-missing")
    assert code == 1
    assert "/dev/video-usb-missing does not exist" in err


def test_webcam_picamera2_missing(run_cli, model):
    code, _, err = run_cli("webcam", model, "--source", "picamera2")
    assert code == 1
    assert "sudo apt install python3-picamera2" in err
    assert "--system-site-packages" in err


def test_webcam_classifier_model(run_cli, classifier_tflite, video):
    code, out, err = run_cli("webcam", classifier_tflite, "--source", video)
    assert code == 1
    assert out == ""
    assert "the output has shape [1, 1001]" in err


def test_webcam_stream_reconnects(run_cli, model, mjpeg_server):
    # The first connection ends after 6 frames; the second one streams until the run stops.
    url, server = mjpeg_server(lambda connection: 6 if connection == 0 else None)
    code, out, err = run_cli("webcam", model, "--source", url, "--max-frames", "12", "--reconnect-delay", "0.05", "--json")
    assert code == 0, err
    assert len(_json_lines(out)) == 12
    assert "the source stopped delivering frames after 6 frames" in err
    assert "reconnected on attempt 1" in err
    assert "1 reconnects" in err
    assert server.connections == 2


def test_webcam_stream_never_returns(run_cli, model, mjpeg_server):
    url, server = mjpeg_server(lambda connection: 5 if connection == 0 else 0)
    code, out, err = run_cli("webcam", model, "--source", url, "--reconnect", "2", "--reconnect-delay", "0.05", "--json")
    assert code == 1
    assert 1 <= len(_json_lines(out)) <= 5
    assert "summary (source failed): 5 frames read" in err
    assert "reconnect attempt 2 of 2 failed" in err
    assert "error: " + url + ": the source stopped delivering frames and 2 reconnect attempts failed" in err
    assert server.connections == 3


def test_webcam_stream_duration(run_cli, model, mjpeg_server):
    url, _ = mjpeg_server(lambda connection: None, fps=20.0)
    code, out, err = run_cli("webcam", model, "--source", url, "--duration", "1.0")
    assert code == 0, err
    assert len(out.splitlines()) >= 1
    assert "summary (--duration reached)" in err


def _start_webcam(model: Path, url: str) -> tuple[subprocess.Popen[str], list[str]]:
    """Start ``edgecount webcam`` on a stream and wait for its third output line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "edgecount", "webcam", str(model), "--source", url, "--threads", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    lines = [process.stdout.readline() for _ in range(3)]
    watchdog.cancel()
    return process, lines


@pytest.mark.parametrize(("signum", "name"), [(signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")])
def test_webcam_signal_stops_cleanly(model, mjpeg_server, signum, name):
    url, _ = mjpeg_server(lambda connection: None, fps=20.0)
    process, lines = _start_webcam(model, url)
    assert all(" count " in line for line in lines), lines
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert f"summary ({name} received)" in err
    assert "Traceback" not in err
    assert all(" count " in line for line in out.splitlines())


def test_webcam_stdout_closed_early(model, mjpeg_server):
    url, _ = mjpeg_server(lambda connection: None, fps=20.0)
    process, lines = _start_webcam(model, url)
    assert len(lines) == 3
    process.stdout.close()  # like 'edgecount webcam ... | head -3'
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "summary (stdout closed)" in err
    assert "Traceback" not in err


def test_webcam_without_tensorflow(python_without_tensorflow, model, video):
    code = (
        "import sys\n"
        "from edgecount.cli import main\n"
        "try:\n"
        f"    main(['webcam', {str(model)!r}, '--source', {str(video)!r}, '--json', '--max-frames', '4'])\n"
        "except SystemExit as exit_:\n"
        "    print('exit', exit_.code)\n"
        "print('tensorflow loaded', 'tensorflow' in sys.modules)\n"
    )
    result = python_without_tensorflow(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('"count": ') == 4
    assert "tensorflow loaded False" in result.stdout
    assert "4 counted" in result.stderr


def test_webcam_help_without_tensorflow(python_without_tensorflow):
    result = python_without_tensorflow("from edgecount.cli import main\nmain(['webcam', '--help'])\n")
    assert result.returncode == 0, result.stderr
    assert "--reconnect" in result.stdout
    assert os.linesep in result.stdout


def test_webcam_image_folder_skips_broken(run_cli, model, real_photo_paths, tmp_path):
    for photo in real_photo_paths[:3]:
        (tmp_path / photo.name).write_bytes(photo.read_bytes())
    (tmp_path / "0-broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    code, out, err = run_cli("webcam", model, "--source", tmp_path, "--json")
    assert code == 0, err
    assert len(_json_lines(out)) == 3
    assert "skipped an image: " in err
    assert "0-broken.jpg: not a decodable image" in err
    assert "1 images failed to decode" in err
