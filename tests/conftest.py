"""Fixtures shared by every test: the read-only data beside the checkout, Keras' weight cache, tiny
real models, and a way to run the command line in-process.

The data and weights are read in place from the ``shared`` folder next to the checkout (override with
``EDGECOUNT_SHARED``); nothing from it is copied into the repository.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("EDGECOUNT_SHARED", REPO_ROOT.parent / "shared"))
AV_FACES_DIR = SHARED_DIR / "data" / "av-faces"
WEIGHTS_DIR = SHARED_DIR / "weights"
WEIGHTS_035 = WEIGHTS_DIR / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
CLASSIFIER_TFLITE = WEIGHTS_DIR / "optional" / "mobilenet_v2_1.0_224_quant.tflite"

# Small enough for a 2-core machine: alpha 0.35 at 96x96 converts in seconds.
TINY_ALPHA = 0.35
TINY_SIZE = 96


@pytest.fixture(scope="session")
def av_faces_dir() -> Path:
    if not (AV_FACES_DIR / "labels.csv").exists():
        pytest.skip(f"the real photos are not at {AV_FACES_DIR}; set EDGECOUNT_SHARED to the shared folder")
    return AV_FACES_DIR


@pytest.fixture(scope="session")
def av_labels(av_faces_dir: Path) -> list[tuple[str, int]]:
    """``(image name, count)`` rows of the real photos, in file order."""
    with open(av_faces_dir / "labels.csv", newline="") as handle:
        return [(row["image"], int(row["count"])) for row in csv.DictReader(handle)]


@pytest.fixture(scope="session")
def weights_035() -> Path:
    if not WEIGHTS_035.exists():
        pytest.skip(f"the ImageNet MobileNetV2 0.35 weights are not at {WEIGHTS_035}")
    return WEIGHTS_035


@pytest.fixture(scope="session")
def classifier_tflite() -> Path:
    if not CLASSIFIER_TFLITE.exists():
        pytest.skip(f"the ImageNet classifier .tflite is not at {CLASSIFIER_TFLITE}")
    return CLASSIFIER_TFLITE


@pytest.fixture(scope="session", autouse=True)
def keras_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Point Keras at a private cache seeded with the ImageNet weights, because tests cannot download."""
    keras_home = tmp_path_factory.mktemp("keras_home")
    models = keras_home / "models"
    models.mkdir()
    if WEIGHTS_DIR.exists():
        for weights_file in WEIGHTS_DIR.glob("*.h5"):
            shutil.copy(weights_file, models / weights_file.name)
    os.environ["KERAS_HOME"] = str(keras_home)
    return keras_home


@pytest.fixture(scope="session")
def real_photo_paths(av_faces_dir: Path, av_labels: list[tuple[str, int]]) -> list[Path]:
    """Twelve real photos spanning small and large counts."""
    ordered = sorted(av_labels, key=lambda row: row[1])
    picks = [ordered[int(i)] for i in np.linspace(0, len(ordered) - 1, 12)]
    return [av_faces_dir / "images" / name for name, _ in picks]


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run ``edgecount ARGS...`` in-process and return ``(exit code, stdout, stderr)``."""
    from edgecount.cli import main

    def run(*args: str | os.PathLike[str]) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main([str(arg) for arg in args])
            code = 0
        except SystemExit as exit_:
            if isinstance(exit_.code, int):
                code = exit_.code
            elif exit_.code is None:
                code = 0
            else:
                code = 1
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def run_without_tensorflow(code: str, cwd: Path | None = None, timeout: float = 300) -> "subprocess.CompletedProcess[str]":
    """Run Python code in a new process where ``import tensorflow`` raises ImportError."""
    import subprocess

    blocker = (
        "import sys\n"
        "class _BlockTensorFlow:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'tensorflow' or name.startswith('tensorflow.') or name in ('keras', 'tf_keras'):\n"
        "            raise ImportError(f'{name} is blocked for this test')\n"
        "        return None\n"
        "sys.meta_path.insert(0, _BlockTensorFlow())\n"
    )
    return subprocess.run(
        [sys.executable, "-c", blocker + code],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, av_faces_dir: Path, av_labels, weights_035: Path) -> Path:
    """A run folder with an untrained alpha 0.35, 96x96 counting model and all four .tflite models.

    The head is random, so counts are meaningless, but every file is real: ``run.json``, ``split.csv``
    over 24 real photos, ``model.keras`` and ``model_<mode>.tflite`` converted by edgecount's converter
    with embedded metadata. Building it takes about a minute on two cores, once per test session.
    """
    from edgecount import __version__
    from edgecount.converters import (
        QuantMode,
        convert_keras_model,
        embed_metadata,
        load_calibration_frames,
        representative_samples,
        write_model_file,
    )
    from edgecount.runs import KERAS_FILE, RUN_FILE, SPLIT_FILE, Sample, write_json_atomically, write_split
    from edgecount.training.model import build_count_model

    run_dir = tmp_path_factory.mktemp("tiny_run")
    rows = av_labels[:24]
    samples = [Sample(av_faces_dir / "images" / name, float(count)) for name, count in rows]
    train, validation = samples[:16], samples[16:]
    write_split(run_dir / SPLIT_FILE, train, validation)

    model = build_count_model(TINY_ALPHA, TINY_SIZE, weights_035)
    model.save(run_dir / KERAS_FILE)
    config = {
        "edgecount_version": __version__,
        "model": {"alpha": TINY_ALPHA, "image_size": TINY_SIZE, "weights": str(weights_035), "file": KERAS_FILE},
        "data": {"dir": str(av_faces_dir), "images": len(samples)},
        "split": {"seed": 0, "validation_fraction": 1 / 3, "file": SPLIT_FILE},
        "metrics": {},
    }
    write_json_atomically(run_dir / RUN_FILE, config)

    frames, _ = load_calibration_frames([sample.path for sample in train[:8]])
    dataset = representative_samples(frames, (TINY_SIZE, TINY_SIZE))
    for mode in QuantMode:
        data = convert_keras_model(model, mode, dataset if mode is QuantMode.INT8 else None)
        metadata = {"quantization": mode.value, "alpha": TINY_ALPHA, "input_size": [TINY_SIZE, TINY_SIZE]}
        write_model_file(run_dir / mode.file_name, embed_metadata(data, metadata))
    return run_dir


def write_test_video(path: Path, photos: list[Path], frames: int, size: tuple[int, int] = (640, 480), fps: float = 25.0) -> Path:
    """Write an MJPG ``.avi`` of ``frames`` frames cycling through real photos resized to ``size`` (width, height)."""
    import cv2

    images = [cv2.resize(cv2.imread(str(photo)), size, interpolation=cv2.INTER_AREA) for photo in photos]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write MJPG video to {path}")
    for index in range(frames):
        writer.write(images[index % len(images)])
    writer.release()
    return path


@pytest.fixture
def mjpeg_server(real_photo_paths: list[Path]):
    """Start HTTP MJPEG servers on 127.0.0.1 serving real photos; return a factory taking a plan.

    ``plan(connection_number)`` (0-based) returns how many frames that connection gets, None for an
    endless stream, or 0 to answer 503 so that opening the stream fails. The factory returns
    ``(url, server)``; ``server.connections`` counts the requests.
    """
    import http.server
    import threading
    import time

    parts = [photo.read_bytes() for photo in real_photo_paths[:4]]
    servers = []

    def start(plan, fps: float = 30.0):
        closing = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with lock:
                    number = server.connections
                    server.connections += 1
                frames = plan(number)
                if frames == 0:
                    self.send_error(503, "camera offline")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                sent = 0
                try:
                    while (frames is None or sent < frames) and not closing.is_set():
                        part = parts[sent % len(parts)]
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(part))
                        self.wfile.write(part + b"\r\n")
                        sent += 1
                        time.sleep(1.0 / fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args) -> None:
                pass

        lock = threading.Lock()
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.connections = 0
        server.closing = closing
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg", server

    yield start
    for server in servers:
        server.closing.set()
        server.shutdown()
        server.server_close()


def write_boxed_dataset(folder: Path, av_faces_dir: Path, rows: list[tuple[str, int]]) -> Path:
    """Write a labels-csv dataset in ``folder`` with the real photos ``rows`` (symlinked) and their face boxes."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    names = {name for name, _ in rows}
    for name in names:
        os.symlink(av_faces_dir / "images" / name, folder / "images" / name)
    (folder / "labels.csv").write_text("image,count\n" + "".join(f"{name},{count}\n" for name, count in rows))
    box_lines = [line for line in (av_faces_dir / "boxes.csv").read_text().splitlines()[1:] if line.split(",", 1)[0] in names]
    (folder / "boxes.csv").write_text("image,xmin,ymin,xmax,ymax\n" + "\n".join(box_lines) + "\n")
    return folder


@pytest.fixture(scope="session")
def boxed_dataset_writer():
    """``write_boxed_dataset`` as a fixture, for test modules that cannot import conftest."""
    return write_boxed_dataset


@pytest.fixture(scope="session")
def video_writer():
    """``write_test_video`` as a fixture, for test modules that cannot import conftest."""
    return write_test_video


@pytest.fixture(scope="session")
def python_without_tensorflow():
    """``run_without_tensorflow`` as a fixture, for test modules that cannot import conftest."""
    return run_without_tensorflow


@pytest.fixture
def moved_run(tiny_run: Path, tmp_path: Path, av_faces_dir: Path, av_labels) -> tuple[Path, Path, Path]:
    """A copy of ``tiny_run`` trained on 40 real photos in ``old/``, a folder since renamed to ``new/``.

    ``split.csv`` lists 30 training and 10 validation images under ``old/images`` and ``run.json``
    records ``old`` as the dataset folder, so every recorded path is gone. Returns ``(run, old, new)``.
    """
    from edgecount.runs import RUN_FILE, SPLIT_FILE, Sample, write_json_atomically, write_split

    old, run = tmp_path / "old", tmp_path / "moved_run"
    (old / "images").mkdir(parents=True)
    samples = []
    for name, count in av_labels[:40]:
        shutil.copy(av_faces_dir / "images" / name, old / "images" / name)
        samples.append(Sample(old / "images" / name, float(count)))
    shutil.copytree(tiny_run, run)
    write_split(run / SPLIT_FILE, samples[:30], samples[30:])
    config = json.loads((run / RUN_FILE).read_text())
    config["data"] = {"dir": str(old.resolve()), "images": len(samples)}
    write_json_atomically(run / RUN_FILE, config)
    return run, old, old.rename(tmp_path / "new")
