"""Facts about the machine that decide whether edgecount can count faces on it, and the fixes for problems.

``edgecount doctor`` prints what ``collect_diagnostics`` returns. Everything here runs without
TensorFlow: the interpreter backends are imported through ``edgecount.runtime.backends`` (TensorFlow
only when neither light backend works, because that is when ``--backend auto`` would use it), and
``picamera2`` is imported in a child process with a timeout, since it starts libcamera.
"""

from __future__ import annotations

import grp
import importlib.util
import json
import os
import platform
import pwd
import struct
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from edgecount.runtime.backends import BACKENDS, load_backend
from edgecount.runtime.errors import BackendError, EdgecountError

# Opening a V4L2 node that is not a camera, or a camera another process holds, can block. A probe
# that takes longer than this is reported as timed out, so the doctor never hangs.
CAMERA_TIMEOUT_SECONDS = 3.0
PICAMERA2_TIMEOUT_SECONDS = 15.0
OPENCV_DISTRIBUTIONS = ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless", "opencv-contrib-python")
INSTALL_64_BIT = (
    "install the 64-bit Raspberry Pi OS (Bookworm) with Raspberry Pi Imager; ai-edge-litert publishes "
    "wheels for 64-bit ARM (aarch64) and x86-64 only"
)


@dataclass(frozen=True)
class Problem:
    """Something that stops edgecount from working here (``error``) or may (``warning``), with its fix."""

    level: str
    message: str
    fix: str


def _distribution_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def read_os_release(path: Path = Path("/etc/os-release")) -> dict[str, str]:
    """Parse ``/etc/os-release`` into a dict (``ID``, ``VERSION_CODENAME``, ``PRETTY_NAME``, ...); empty if missing."""
    fields = {}
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return fields
    for line in text.splitlines():
        key, separator, value = line.partition("=")
        if separator and key.strip() and not key.startswith("#"):
            fields[key.strip()] = value.strip().strip('"').strip("'")
    return fields


def describe_platform() -> tuple[dict[str, Any], list[Problem]]:
    """Describe the architecture, board, OS and memory, and flag a 32-bit userland."""
    machine = platform.machine()
    pointer_bits = struct.calcsize("P") * 8
    board_file = Path("/proc/device-tree/model")
    board = board_file.read_bytes().rstrip(b"\0").decode("utf-8", "replace") if board_file.is_file() else None
    os_release = read_os_release()
    info = {
        "machine": machine,
        "python_bits": pointer_bits,
        "kernel": platform.release(),
        "board": board,
        "os": os_release.get("PRETTY_NAME", platform.platform()),
        "os_id": os_release.get("ID"),
        "os_codename": os_release.get("VERSION_CODENAME"),
        "cpu_count": os.cpu_count(),
        "memory_mb": _memory_mb(),
    }

    return info, find_platform_problems(machine, pointer_bits, os_release)


def find_platform_problems(machine: str, pointer_bits: int, os_release: dict[str, str]) -> list[Problem]:
    """Flag a 32-bit userland and an OS older than Debian 12 Bookworm.

    Args:
        machine: ``platform.machine()``, such as ``aarch64`` or ``armv7l``.
        pointer_bits: 32 or 64, the width of this Python's pointers.
        os_release: the fields of ``/etc/os-release``.
    """
    problems = []
    # A 32-bit Raspberry Pi OS often runs a 64-bit kernel, so uname says aarch64 while Python is 32-bit.
    if pointer_bits == 32 or machine.startswith("armv"):
        problems.append(Problem("error", f"32-bit system (machine {machine}, {pointer_bits}-bit Python): no LiteRT wheels exist for it", INSTALL_64_BIT))
    codename = os_release.get("VERSION_CODENAME")
    if os_release.get("ID") in ("debian", "raspbian") and codename in ("buster", "bullseye"):
        problems.append(
            Problem(
                "warning",
                f"{os_release.get('PRETTY_NAME', codename)} is older than Debian 12 Bookworm; picamera2 and current wheels target Bookworm",
                "install Raspberry Pi OS Bookworm (64-bit)",
            )
        )
    return problems


def _memory_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def describe_python() -> tuple[dict[str, Any], list[Problem]]:
    """Describe the interpreter, its virtual environment and NumPy."""
    in_venv = sys.prefix != sys.base_prefix
    system_site_packages = None
    config = Path(sys.prefix) / "pyvenv.cfg"
    if in_venv and config.is_file():
        for line in config.read_text(errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "include-system-site-packages":
                system_site_packages = value.strip().lower() == "true"
    info = {
        "version": platform.python_version(),
        "executable": sys.executable,
        "virtual_environment": sys.prefix if in_venv else None,
        "system_site_packages": system_site_packages,
        "numpy": np.__version__,
        "edgecount": _distribution_version("edgecount"),
    }
    return info, []


def describe_opencv() -> tuple[dict[str, Any], list[Problem]]:
    """Describe the OpenCV build: version, distribution, GUI backend and video I/O backends."""
    import cv2

    build = cv2.getBuildInformation()
    gui = _build_field(build, "GUI") or "unknown"
    video_backends = _video_backends(cv2, build)
    distributions = {name: _distribution_version(name) for name in OPENCV_DISTRIBUTIONS}
    installed = {name: value for name, value in distributions.items() if value}
    info = {
        "version": cv2.__version__,
        "distributions": installed or {"system package (not pip)": cv2.__version__},
        "module": getattr(cv2, "__file__", None),
        "gui": gui,
        "headless": gui.upper() == "NONE",
        "video_backends": video_backends,
    }

    problems = []
    if len(installed) > 1:
        names = " ".join(sorted(installed))
        problems.append(
            Problem(
                "warning",
                f"several OpenCV distributions are installed ({', '.join(sorted(installed))}); they overwrite each other's cv2 module",
                f"pip uninstall -y {names} && pip install opencv-python-headless",
            )
        )
    if "FFMPEG" not in video_backends:
        problems.append(
            Problem("warning", "this OpenCV build has no FFMPEG backend: video files and network streams cannot be read", "pip install opencv-python-headless")
        )
    if sys.platform.startswith("linux") and "V4L2" not in video_backends:
        problems.append(Problem("warning", "this OpenCV build has no V4L2 backend: USB cameras cannot be opened", "pip install opencv-python-headless"))
    return info, problems


def _build_field(build: str, name: str) -> str | None:
    for line in build.splitlines():
        key, separator, value = line.strip().partition(":")
        if separator and key.strip() == name:
            return value.strip()
    return None


def _video_backends(cv2: Any, build: str) -> list[str]:
    registry = getattr(cv2, "videoio_registry", None)
    if registry is not None:
        # getBackends() also lists plugins (GStreamer, Intel MFX) that may not load; hasBackend() loads them.
        names = [registry.getBackendName(backend) for backend in registry.getBackends() if registry.hasBackend(backend)]
        return sorted(set(names))
    # Older builds without the registry: read the "Video I/O" section of the build information.
    names = []
    for key, name in (("FFMPEG", "FFMPEG"), ("GStreamer", "GSTREAMER"), ("v4l/v4l2", "V4L2")):
        value = _build_field(build, key)
        if value is not None and value.upper().startswith("YES"):
            names.append(name)
    return names


def describe_backends() -> tuple[dict[str, Any], list[Problem]]:
    """Import each interpreter backend and record its version, or the reason it fails."""
    results: dict[str, dict[str, Any]] = {}
    for name in BACKENDS:
        if name == "tensorflow" and any(results[light]["ok"] for light in ("litert", "tflite-runtime")):
            # Importing TensorFlow takes seconds and hundreds of MB; only report whether it is installed.
            installed = _distribution_version("tensorflow") or _distribution_version("tensorflow-cpu")
            results[name] = {"ok": None, "version": installed, "error": None if installed else "not installed", "imported": False}
            continue
        try:
            backend = load_backend(name)
        except BackendError as error:
            results[name] = {"ok": False, "version": _backend_distribution_version(name), "error": str(error), "imported": True}
        else:
            results[name] = {"ok": True, "version": backend.version, "error": None, "imported": True}
    auto = next((name for name in BACKENDS if results[name]["ok"]), None)
    problems = find_backend_problems(results, auto, sys.version_info[:2], np.__version__, platform.machine(), struct.calcsize("P") * 8)
    return {"available": results, "auto": auto}, problems


def _backend_distribution_version(name: str) -> str | None:
    distribution = {"litert": "ai-edge-litert", "tflite-runtime": "tflite-runtime", "tensorflow": "tensorflow"}[name]
    return _distribution_version(distribution) or (_distribution_version("tensorflow-cpu") if name == "tensorflow" else None)


def find_backend_problems(
    results: dict[str, dict[str, Any]],
    auto: str | None,
    python_version: tuple[int, int],
    numpy_version: str,
    machine: str,
    pointer_bits: int,
) -> list[Problem]:
    """Explain why interpreter backends fail: NumPy 2 under tflite-runtime, Python 3.12+, 32-bit ARM.

    Args:
        results: per backend name, ``{"ok": bool | None, "version": str | None, ...}`` as
            ``describe_backends`` builds it.
        auto: the backend ``--backend auto`` picks, or None when none imports.
        python_version: ``(major, minor)`` of the Python in use.
        numpy_version: the installed NumPy version.
        machine: ``platform.machine()``.
        pointer_bits: 32 or 64, the width of this Python's pointers.
    """
    problems = []
    numpy_major = int(numpy_version.split(".")[0])
    tflite_runtime = results["tflite-runtime"]
    python_text = ".".join(map(str, python_version))

    if tflite_runtime["version"] and not tflite_runtime["ok"] and numpy_major >= 2:
        problems.append(
            Problem(
                "warning" if auto else "error",
                f"tflite-runtime {tflite_runtime['version']} is installed with NumPy {numpy_version}; it was built against NumPy 1.x and fails to import",
                "pip install 'numpy<2' (tflite-runtime 2.14 is the last release), or use ai-edge-litert: pip install ai-edge-litert",
            )
        )
    if tuple(python_version) >= (3, 12) and not results["litert"]["ok"]:
        problems.append(
            Problem(
                "error" if auto is None else "warning",
                f"Python {python_text} has no tflite-runtime wheels (the last release, 2.14, stops at Python 3.11)",
                "pip install ai-edge-litert, which has wheels for this Python; or create the venv with Python 3.11",
            )
        )
    if auto is None:
        is_32_bit = pointer_bits == 32 or machine.startswith("armv")
        fix = INSTALL_64_BIT if is_32_bit else "pip install ai-edge-litert"
        problems.append(Problem("error", "no TFLite interpreter backend can be imported, so no model can run", fix))
    elif auto == "tensorflow":
        problems.append(
            Problem(
                "warning",
                "only TensorFlow provides an interpreter: it works, but starts slowly and needs far more memory than LiteRT",
                "pip install ai-edge-litert",
            )
        )
    return problems


def describe_video_group() -> tuple[dict[str, Any], list[Problem]]:
    """Check whether this process may open cameras through membership of the ``video`` group."""
    user = pwd.getpwuid(os.getuid()).pw_name
    try:
        video = grp.getgrnam("video")
    except KeyError:
        return {"user": user, "in_video_group": None, "listed_in_video_group": None}, []
    active = video.gr_gid in os.getgroups() or os.getgid() == video.gr_gid
    listed = user in video.gr_mem or pwd.getpwnam(user).pw_gid == video.gr_gid
    info = {"user": user, "in_video_group": active, "listed_in_video_group": listed}
    problems = []
    if os.getuid() != 0 and not active:
        if listed:
            problems.append(Problem("warning", f"user {user} was added to the video group after logging in", "log out and in again (or reboot)"))
        else:
            problems.append(Problem("warning", f"user {user} is not in the video group, so cameras may not open", f"sudo usermod -aG video {user}, then log in again"))
    return info, problems


def probe_cameras(timeout: float = CAMERA_TIMEOUT_SECONDS) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Try to open each ``/dev/video*`` with OpenCV's V4L2 backend and read one frame.

    Args:
        timeout: seconds allowed per device. Default 3.

    Returns:
        One entry per device: path, driver name from sysfs, whether it opens and delivers a frame.
    """
    devices = sorted(Path("/dev").glob("video*"), key=lambda path: (len(path.name), path.name))
    cameras = [probe_camera(device, timeout) for device in devices]
    problems = []
    if cameras and not any(camera["frame"] for camera in cameras):
        names = ", ".join(sorted({camera["name"] for camera in cameras if camera["name"]}))
        problems.append(
            Problem(
                "warning",
                f"{len(cameras)} video device(s) found ({names or 'unnamed'}), but none delivers frames through OpenCV",
                "for the Raspberry Pi camera module on Bookworm use --source picamera2; for a USB camera check that no other "
                "process uses it (fuser /dev/video0)",
            )
        )
    return cameras, problems


def probe_camera(device: Path, timeout: float = CAMERA_TIMEOUT_SECONDS) -> dict[str, Any]:
    """Open one video device with OpenCV's V4L2 backend in a thread, read one frame, and close it.

    Returns:
        ``device``, ``name`` (the driver's name from sysfs), ``opens``, ``frame`` (its shape or None)
        and ``error`` (None when a frame arrived).
    """
    name_file = Path("/sys/class/video4linux") / device.name / "name"
    name = name_file.read_text(errors="replace").strip() if name_file.is_file() else None
    entry: dict[str, Any] = {"device": str(device), "name": name, "opens": False, "frame": None, "error": None}
    if not os.access(device, os.R_OK | os.W_OK):
        entry["error"] = "permission denied (not in the video group?)"
        return entry

    outcome: dict[str, Any] = {}

    def attempt() -> None:
        import cv2

        capture = cv2.VideoCapture(str(device), cv2.CAP_V4L2)
        try:
            outcome["opens"] = bool(capture.isOpened())
            if outcome["opens"]:
                ok, frame = capture.read()
                outcome["frame"] = list(frame.shape) if ok and frame is not None else None
        finally:
            capture.release()

    # A daemon thread: a driver call that never returns must not keep the doctor from exiting.
    worker = threading.Thread(target=attempt, name=f"probe {device}", daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        entry["error"] = f"timed out after {timeout:g} s"
        return entry
    entry["opens"] = outcome.get("opens", False)
    entry["frame"] = outcome.get("frame")
    entry["seconds"] = round(time.monotonic() - started, 2)
    if not entry["opens"]:
        entry["error"] = "OpenCV cannot open it (not a capture device, or busy)"
    elif entry["frame"] is None:
        entry["error"] = "opens but delivers no frame"
    return entry


def probe_picamera2(timeout: float = PICAMERA2_TIMEOUT_SECONDS) -> tuple[dict[str, Any], list[Problem]]:
    """Import ``picamera2`` in a child process and list the cameras that libcamera detects."""
    spec = importlib.util.find_spec("picamera2")
    system_copy = Path("/usr/lib/python3/dist-packages/picamera2")
    info: dict[str, Any] = {"importable": False, "version": None, "cameras": None, "error": None, "system_package": system_copy.is_dir()}
    problems = []
    if spec is None:
        info["error"] = "not installed"
        if system_copy.is_dir() and sys.prefix != sys.base_prefix:
            problems.append(
                Problem(
                    "warning",
                    "python3-picamera2 is installed system-wide, but this virtual environment cannot import it",
                    f"recreate the venv with system packages: python3 -m venv --system-site-packages {sys.prefix}",
                )
            )
        return info, problems

    code = (
        "import json, picamera2\n"
        "from picamera2 import Picamera2\n"
        "info = Picamera2.global_camera_info()\n"
        "print(json.dumps({'version': getattr(picamera2, '__version__', None), 'cameras': [c.get('Model') for c in info]}))\n"
    )
    try:
        completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        info["error"] = f"importing picamera2 timed out after {timeout:g} s"
        return info, problems
    if completed.returncode != 0:
        lines = completed.stderr.strip().splitlines()
        info["error"] = lines[-1] if lines else f"exit code {completed.returncode}"
        fix = "sudo apt install --reinstall python3-picamera2"
        if "numpy" in completed.stderr.lower() or "dtype size changed" in completed.stderr:
            system_numpy = _system_numpy_version()
            pin = f"numpy=={system_numpy}" if system_numpy else "numpy<2"
            fix = (
                f"picamera2's compiled helpers (simplejpeg) need the NumPy that Debian built them with; "
                f"in the venv run: pip install '{pin}'"
            )
        problems.append(Problem("warning", f"picamera2 is installed but fails to import: {info['error']}", fix))
        return info, problems
    try:
        reported = json.loads(completed.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        info["error"] = f"unexpected output: {completed.stdout.strip()[:200]}"
        return info, problems
    info.update(importable=True, version=reported.get("version") or _distribution_version("picamera2"), cameras=reported.get("cameras"))
    return info, problems


def _system_numpy_version() -> str | None:
    for metadata in sorted(Path("/usr/lib/python3/dist-packages").glob("numpy-*-info")):
        return metadata.name.removeprefix("numpy-").split(".egg-info")[0].split(".dist-info")[0]
    return None


def describe_model(path: Path, backend: str) -> tuple[dict[str, Any], list[Problem]]:
    """Load a model, describe its tensors and metadata, and time one inference on a gray frame."""
    from edgecount.runtime import CountModel

    try:
        model = CountModel(path, num_threads=None, backend=backend)
    except (EdgecountError, ValueError) as error:
        return {"path": str(path), "loaded": False, "error": str(error)}, [Problem("error", f"the model cannot be used: {error}", _model_fix(error))]

    info = model.describe()
    info["loaded"] = True
    info["input"] = asdict(model.input) | {"dtype": str(model.input.dtype)}
    info["output"] = asdict(model.output) | {"dtype": str(model.output.dtype)}
    height, width = model.input_size
    frame = np.full((height, width, 3), 128, dtype=np.uint8)
    start = time.perf_counter()
    info["test_count"] = round(model.predict(frame), 3)
    info["first_inference_ms"] = round((time.perf_counter() - start) * 1000.0, 1)
    problems = []
    if model.metadata is None:
        problems.append(
            Problem(
                "warning",
                f"{path} has no edgecount metadata, so its quantization and training results are unknown",
                "convert the model with 'edgecount convert', which embeds them",
            )
        )
    return info, problems


def _model_fix(error: BaseException) -> str:
    text = str(error)
    if "classifier" in text or "detector" in text:
        return "pass a face-counting model written by 'edgecount convert' (one image in, one count out)"
    if "not found" in text:
        return "check the path; models are written to the run folder as model_<mode>.tflite"
    return "convert the model again with 'edgecount convert'"


def collect_diagnostics(model: Path | None = None, backend: str = "auto", probe_devices: bool = True) -> dict[str, Any]:
    """Gather every section of the doctor's report.

    Args:
        model: a ``.tflite`` file to load and describe; default None skips the model section.
        backend: the interpreter backend to load the model with; default ``auto``.
        probe_devices: whether cameras and picamera2 are opened; default True.

    Returns:
        A JSON-serialisable dict with the sections ``platform``, ``python``, ``opencv``, ``backends``,
        ``video_group``, ``cameras``, ``picamera2``, ``model`` (or None) and ``problems``.
    """
    report: dict[str, Any] = {}
    problems: list[Problem] = []
    sections = [
        ("platform", describe_platform),
        ("python", describe_python),
        ("opencv", describe_opencv),
        ("backends", describe_backends),
        ("video_group", describe_video_group),
    ]
    if probe_devices:
        sections += [("cameras", probe_cameras), ("picamera2", probe_picamera2)]
    for name, describe in sections:
        report[name], found = describe()
        problems.extend(found)
    if not probe_devices:
        report["cameras"] = report["picamera2"] = None

    report["model"] = None
    if model is not None:
        report["model"], found = describe_model(model, backend)
        problems.extend(found)
    report["problems"] = [asdict(problem) for problem in problems]
    return report
