"""Count faces with every model in a folder and record what ``check-arm64.sh`` compares across machines.

Runs with the Python of a runtime-only edgecount venv, on x86 and inside the emulated arm64 root, and
writes one JSON file: the platform, package versions, the import time of ``edgecount.runtime``, the
venv's size, and per model the raw count of every photo with a SHA-256 of the input tensor, so that a
count that differs can be traced to decoding and resizing or to the interpreter.

Usage: python probe.py --backend litert --models DIR --images-root DIR --images LIST --video FILE --venv DIR --out FILE
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

IMPORT_RUNS = 5
LATENCY_RUNS = 2


def measure_import_seconds(runs: int) -> list[float]:
    """Time ``import edgecount.runtime`` in fresh interpreters; the first, cold run is dropped."""
    code = "import time; s = time.perf_counter(); import edgecount.runtime; print(time.perf_counter() - s)"
    seconds = []
    for _ in range(runs + 1):
        # "python -c" puts the working folder first on sys.path, and a checkout there would shadow the venv.
        completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tempfile.gettempdir())
        if completed.returncode != 0:
            raise RuntimeError(f"import edgecount.runtime failed in {sys.executable}: {completed.stderr.strip()[-500:]}")
        seconds.append(float(completed.stdout.strip().splitlines()[-1]))
    return seconds[1:]


def folder_size_bytes(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total


def file_kind(relative: Path) -> str:
    """Classify a file of a venv for the footprint breakdown; the first matching kind wins."""
    name = relative.name
    if name.endswith(".so") or ".so." in name:
        return "shared libraries"
    if name.endswith(".pyc"):
        return "bytecode"
    if any(part in ("tests", "test", "testing") for part in relative.parts[:-1]):
        return "tests"
    if name.endswith((".py", ".pyi")):
        return "Python sources"
    return "other"


def footprint(venv: Path) -> dict[str, dict[str, int]]:
    """Return the bytes of every file in the venv by file kind and by the distribution that owns it.

    Ownership comes from each distribution's RECORD. Bytecode that Python wrote after the install, which
    pip's --no-compile leaves to Python, belongs to the distribution of its source file. Files that no
    RECORD lists, such as the venv's own pyvenv.cfg, count as "venv".
    """
    from importlib.metadata import distributions as all_distributions

    site_packages = next(venv.glob("lib/python3*/site-packages"))
    owners: dict[str, str] = {}
    for dist in all_distributions(path=[str(site_packages)]):
        for record in dist.files or []:
            # PEP 503 normal form: "pydantic_core" and "pydantic-core" are one distribution.
            owners[os.path.normpath(site_packages / record)] = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()

    kinds: dict[str, int] = {}
    by_distribution: dict[str, int] = {}
    for path in venv.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        size = path.stat().st_size
        relative = path.relative_to(site_packages) if path.is_relative_to(site_packages) else path.relative_to(venv)
        kind = file_kind(relative)
        kinds[kind] = kinds.get(kind, 0) + size
        owner = owners.get(os.path.normpath(path))
        if owner is None and path.parent.name == "__pycache__":
            source = path.parent.parent / (path.name.split(".")[0] + ".py")
            owner = owners.get(os.path.normpath(source))
        by_distribution[owner or "venv"] = by_distribution.get(owner or "venv", 0) + size
    return {"kinds": kinds, "distributions": by_distribution}


def distributions() -> dict[str, str]:
    from importlib.metadata import distributions as all_distributions

    return {dist.metadata["Name"].lower(): dist.version for dist in all_distributions()}


def wheel_tags(distribution: str) -> list[str]:
    """Return the ``Tag:`` lines of an installed distribution's WHEEL file, such as ``cp311-cp311-manylinux_2_34_aarch64``."""
    from importlib.metadata import PackageNotFoundError, distribution as find_distribution

    try:
        text = find_distribution(distribution).read_text("WHEEL") or ""
    except PackageNotFoundError:
        return []
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Tag:")]


def output_step(model: Any) -> float | None:
    """Return the count's quantization step: the output scale, or the scale of the int8 tensor that feeds
    the final DEQUANTIZE op when the model returns float32. None for a float model."""
    if model.output.quantized:
        return model.output.scale
    interpreter = model.backend.interpreter_class(model_path=str(model.path), num_threads=1)
    interpreter.allocate_tensors()
    tensors = {detail["index"]: detail for detail in interpreter.get_tensor_details()}
    # _get_ops_details is private, but every Interpreter (LiteRT, tflite-runtime 2.14, TensorFlow) has it.
    get_ops = getattr(interpreter, "_get_ops_details", None)
    if get_ops is not None:
        for op in get_ops():
            if model.output.index in list(op["outputs"]) and op["op_name"] == "DEQUANTIZE":
                scale = tensors[int(op["inputs"][0])]["quantization"][0]
                return float(scale) if scale else None
        return None
    return None


def reference_kernel_counts(model: Any, tensors: list[Any]) -> list[float] | None:
    """Count with the interpreter's reference kernels (``BUILTIN_REF``: portable C++, no XNNPACK, no SIMD).

    The reference kernels compute the same integers on every CPU, so comparing each side's default
    kernels with them shows which side's optimized int8 kernels round differently. None when the
    interpreter has no ``OpResolverType`` (TensorFlow's own interpreter before 2.5).
    """
    import numpy as np

    module = sys.modules[model.backend.interpreter_class.__module__]
    resolver = getattr(module, "OpResolverType", None)
    if resolver is None:
        return None
    interpreter = model.backend.interpreter_class(
        model_path=str(model.path), num_threads=1, experimental_op_resolver_type=resolver.BUILTIN_REF
    )
    interpreter.allocate_tensors()
    counts = []
    for tensor in tensors:
        interpreter.set_tensor(model.input.index, tensor)
        interpreter.invoke()
        raw = interpreter.get_tensor(model.output.index).astype(np.float64)
        if model.output.quantized:
            raw = (raw - model.output.zero_point) * model.output.scale
        counts.append(float(raw.reshape(-1)[0]))
    return counts


def read_video_frames(path: Path) -> list[Any]:
    """Decode every frame of the check's video with OpenCV's FFmpeg backend, as ``VideoSource`` does."""
    import cv2

    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def probe_model(path: Path, backend: str, images: list[Path], video_frames: list[Any]) -> dict[str, Any]:
    import numpy as np

    from edgecount.runtime import CountModel, load_image

    model = CountModel(path, num_threads=2, backend=backend)
    video = []
    for number, frame in enumerate(video_frames, start=1):
        tensor = model.prepare(frame)
        video.append(
            {
                "frame": number,
                "raw": model.invoke(tensor),
                "frame_sha256": hashlib.sha256(np.ascontiguousarray(frame).tobytes()).hexdigest(),
                "tensor_sha256": hashlib.sha256(np.ascontiguousarray(tensor).tobytes()).hexdigest(),
            }
        )
    results = []
    latencies = []
    tensors = []
    for image in images:
        tensor = model.prepare(load_image(image))
        tensors.append(tensor)
        raw = model.invoke(tensor)
        for _ in range(LATENCY_RUNS):
            start = time.perf_counter()
            model.invoke(tensor)
            latencies.append((time.perf_counter() - start) * 1000.0)
        results.append(
            {
                "image": image.name,
                "raw": raw,
                "count": max(0.0, raw),
                "tensor_sha256": hashlib.sha256(np.ascontiguousarray(tensor).tobytes()).hexdigest(),
            }
        )
    reference = reference_kernel_counts(model, tensors) if model.quantization == "int8" else None
    if reference is not None:
        for result, raw in zip(results, reference):
            result["reference_raw"] = raw
    return {
        "quantization": model.quantization,
        "input_shape": list(model.input.shape),
        "input_dtype": str(model.input.dtype),
        "output_dtype": str(model.output.dtype),
        "output_step": output_step(model),
        "invoke_ms_median": statistics.median(latencies) if latencies else None,
        "results": results,
        "video": video,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", required=True, help="litert or tflite-runtime")
    parser.add_argument("--models", type=Path, required=True, help="folder with model_<mode>.tflite files")
    parser.add_argument("--images-root", type=Path, required=True, help="folder the image names are relative to")
    parser.add_argument("--images", type=Path, required=True, help="text file with one image name a line")
    parser.add_argument("--video", type=Path, required=True, help="the video that edgecount webcam counts")
    parser.add_argument("--venv", type=Path, required=True, help="the venv whose size is reported")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args()

    images = [args.images_root / name for name in args.images.read_text().split()]
    document: dict[str, Any] = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "backend": args.backend,
        "os_release": _os_release(),
        "import_seconds": measure_import_seconds(IMPORT_RUNS),
        "venv_bytes": folder_size_bytes(args.venv),
        "footprint": footprint(args.venv),
        "distributions": distributions(),
        "tflite_runtime_wheel_tags": wheel_tags("tflite-runtime"),
        "models": {},
        "errors": {},
    }

    import cv2

    document["cv2_gui"] = _cv2_gui(cv2.getBuildInformation())
    video_frames = read_video_frames(args.video)
    for path in sorted(args.models.glob("model_*.tflite")):
        try:
            document["models"][path.name] = probe_model(path, args.backend, images, video_frames)
        except Exception as error:  # noqa: BLE001 - every failure becomes a FAIL line in the summary
            document["errors"][path.name] = f"{type(error).__name__}: {error}"

    args.out.write_text(json.dumps(document, indent=2))


def _os_release() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "unknown"


def _cv2_gui(build_information: str) -> str:
    for line in build_information.splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
