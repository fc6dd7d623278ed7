"""The machine a report was measured on: CPU model, cores, OS, architecture and interpreter backend."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgecount import __version__
from edgecount.runtime import Backend


def cpu_model() -> str:
    """Return the CPU model name from ``/proc/cpuinfo`` (or the board model on a Raspberry Pi)."""
    board = Path("/proc/device-tree/model")
    cpuinfo = Path("/proc/cpuinfo")
    names = []
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            # x86 reports "model name"; Raspberry Pi OS reports "Model" for the board.
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                names.append(value.strip())
                break
    if board.is_file() and not names:
        names.append(board.read_bytes().rstrip(b"\0").decode("utf-8", "replace"))
    return names[0] if names else (platform.processor() or platform.machine() or "unknown")


def system_info(backend: Backend | None = None, threads: list[int] | None = None) -> dict[str, Any]:
    """Describe the machine and the interpreter for a report header."""
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 1,
        "os": platform.platform(),
        "architecture": platform.machine(),
        "python": platform.python_version(),
        "edgecount_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if backend is not None:
        info["backend"] = backend.name
        info["backend_version"] = backend.version
    if threads is not None:
        info["threads"] = list(threads)
    return info
