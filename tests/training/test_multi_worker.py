"""Two workers on 127.0.0.1 train one model with --strategy multi-worker and end with the same weights."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def worker_dataset(tmp_path_factory: pytest.TempPathFactory, av_faces_dir: Path, av_labels) -> Path:
    folder = tmp_path_factory.mktemp("worker_dataset")
    (folder / "images").mkdir()
    rows = sorted(av_labels, key=lambda row: row[1])[:: len(av_labels) // 24][:24]
    for name, _ in rows:
        os.symlink(av_faces_dir / "images" / name, folder / "images" / name)
    (folder / "labels.csv").write_text("image,count\n" + "".join(f"{name},{count}\n" for name, count in rows))
    return folder


def test_train_multi_worker_same_weights(worker_dataset: Path, weights_035: Path, keras_cache: Path, tmp_path: Path):
    from edgecount.runs import RunDir

    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    processes = []
    for index in range(2):
        environment = {
            **os.environ,
            "KERAS_HOME": str(keras_cache),
            "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}),
        }
        command = [
            sys.executable, "-m", "edgecount", "train", "--data", str(worker_dataset), "--out", str(tmp_path / f"worker{index}"),
            "--weights", str(weights_035), "--image-size", "64", "--epochs", "2", "--fine-tune-epochs", "1", "--batch-size", "4",
            "--strategy", "multi-worker",
        ]
        processes.append(subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for process in processes:
        try:
            stdout, stderr = process.communicate(timeout=600)
        finally:
            process.kill()
        results.append((process.returncode, stdout, stderr))

    for code, _, stderr in results:
        assert code == 0, stderr[-3000:]
    chief, other = (RunDir(tmp_path / f"worker{index}") for index in range(2))
    assert chief.config["training"]["replicas"] == 2
    assert chief.config["training"]["global_batch_size"] == 8
    assert chief.config["training"]["strategy"] == "multi-worker"
    assert chief.config["metrics"] == other.config["metrics"]
    for expected, actual in zip(chief.load_keras_model().get_weights(), other.load_keras_model().get_weights(), strict=True):
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6)
