"""Ctrl-C during training: deferred to a batch end, then raised as KeyboardInterrupt, with the run left resumable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgecount.training.interrupts import DeferredInterrupt


def send_ctrl_c(interrupt: DeferredInterrupt) -> None:
    """Send SIGINT to this process and wait until the handler has run: Python runs it in the main thread at its next check."""
    os.kill(os.getpid(), signal.SIGINT)
    deadline = time.monotonic() + 5
    while not interrupt.pending and time.monotonic() < deadline:
        time.sleep(0.01)


def test_first_interrupt_waits_for_check():
    previous = signal.getsignal(signal.SIGINT)
    with DeferredInterrupt() as interrupt:
        send_ctrl_c(interrupt)
        assert interrupt.pending
        with pytest.raises(KeyboardInterrupt):
            interrupt.check()
        assert not interrupt.pending
        interrupt.check()
    assert signal.getsignal(signal.SIGINT) is previous


def test_second_interrupt_raises_at_once():
    with DeferredInterrupt() as interrupt:
        send_ctrl_c(interrupt)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        assert interrupt.pending


def test_interrupt_outside_main_thread_unchanged():
    previous = signal.getsignal(signal.SIGINT)
    seen = []

    def enter() -> None:
        with DeferredInterrupt():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    assert seen == [previous]


def test_ctrl_c_stops_training_cleanly(tmp_path: Path, av_faces_dir: Path, av_labels, weights_035: Path):
    """A real SIGINT in phase 1 ends the run at a batch end: the usual message, no traceback, a resumable partial run."""
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    rows = av_labels[:24]
    for name, _ in rows:
        os.symlink(av_faces_dir / "images" / name, data / "images" / name)
    (data / "labels.csv").write_text("image,count\n" + "".join(f"{name},{count}\n" for name, count in rows))

    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "edgecount", "train", "--data", str(data), "--out", str(out), "--weights", str(weights_035),
        "--image-size", "64", "--batch-size", "4", "--epochs", "500", "--patience", "500", "--fine-tune-epochs", "0",
    ]

    # Ctrl-C once phase 1 is under way.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(240, process.kill)
    watchdog.start()
    lines = []
    for line in process.stderr:
        lines.append(line)
        if line.startswith("Phase 1 epoch 3/"):
            process.send_signal(signal.SIGINT)
            break
    _, rest = process.communicate(timeout=240)
    watchdog.cancel()
    stderr = "".join(lines) + rest

    assert process.returncode not in (0, None), stderr
    assert "Ctrl-C: stopping at the end of the current batch" in stderr
    assert "training stopped; the partial run stays in" in stderr
    assert "Traceback" not in stderr
    assert "SystemError" not in stderr
    assert not out.exists()
    assert list((tmp_path / ".run.partial" / "checkpoints").iterdir()), "the last finished epoch is checkpointed"


def test_ignored_interrupt_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with DeferredInterrupt() as interrupt:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            assert not interrupt.pending
    finally:
        signal.signal(signal.SIGINT, previous)
