"""``edgecount doctor``: report what a board needs to count faces, and the fix for each problem found."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from edgecount.commands.options import BackendOpt, JsonOpt
from edgecount.diagnostics import collect_diagnostics
from edgecount.runtime.backends import BACKENDS


def doctor(
    model: Annotated[
        Path | None, typer.Argument(help="A .tflite model to load, describe and run once on a gray frame.", show_default=False)
    ] = None,
    json_output: JsonOpt = False,
    no_devices: Annotated[
        bool, typer.Option("--no-devices", help="Skip opening /dev/video* cameras and importing picamera2.", rich_help_panel="Advanced")
    ] = False,
    backend: BackendOpt = "auto",
) -> None:
    """Check this machine for edgecount: architecture, OS, Python, NumPy, OpenCV, interpreters, cameras.

    Each problem found is printed with its fix. The exit code is 1 when a problem stops counting (no
    interpreter backend, a 32-bit system, a model that cannot be loaded) and 0 otherwise, warnings
    included. Cameras are opened with a timeout of a few seconds each; stop other programs that use
    them first, or pass --no-devices. Needs no TensorFlow.

    Examples:

        edgecount doctor

        edgecount doctor runs/av/model_int8.tflite

        edgecount doctor --json > doctor.json
    """
    if backend != "auto" and backend not in BACKENDS:
        raise typer.BadParameter(f"unknown backend {backend!r}; choose auto, {', '.join(BACKENDS)}", param_hint="--backend")
    report = collect_diagnostics(model, backend=backend, probe_devices=not no_devices)

    if json_output:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(format_report(report))
    if any(problem["level"] == "error" for problem in report["problems"]):
        raise typer.Exit(code=1)


def format_report(report: dict[str, Any]) -> str:
    """Render the report of ``collect_diagnostics`` as aligned text sections."""
    lines: list[str] = []

    def section(title: str, rows: list[tuple[str, Any]]) -> None:
        lines.append(title)
        width = max([16, *(len(key) + 2 for key, _ in rows)])
        for key, value in rows:
            lines.append(f"  {key:<{width}}{value}")
        lines.append("")

    machine = report["platform"]
    section(
        "Platform",
        [
            ("machine", f"{machine['machine']} ({machine['python_bits']}-bit Python)"),
            ("board", machine["board"] or "-"),
            ("os", machine["os"]),
            ("kernel", machine["kernel"]),
            ("cpu, memory", f"{machine['cpu_count']} cores, {_megabytes(machine['memory_mb'])}"),
        ],
    )

    python = report["python"]
    venv = python["virtual_environment"]
    if venv and python["system_site_packages"] is not None:
        venv = f"{venv} (system site packages: {'yes' if python['system_site_packages'] else 'no'})"
    section(
        "Python",
        [
            ("version", f"{python['version']} ({python['executable']})"),
            ("venv", venv or "none"),
            ("numpy", python["numpy"]),
            ("edgecount", python["edgecount"] or "not installed as a distribution"),
        ],
    )

    opencv = report["opencv"]
    distributions = ", ".join(f"{name} {value}" for name, value in opencv["distributions"].items())
    gui = opencv["gui"] + (" (headless; --show needs opencv-python and a display)" if opencv["headless"] else "")
    section(
        "OpenCV",
        [("version", f"{opencv['version']} ({distributions})"), ("gui", gui), ("video i/o", ", ".join(opencv["video_backends"]) or "none")],
    )

    backends = report["backends"]
    rows = []
    for name, result in backends["available"].items():
        if result["ok"]:
            state = f"ok {result['version']}" + ("  (used by --backend auto)" if name == backends["auto"] else "")
        elif result["ok"] is None:
            state = f"installed {result['version']} (not imported, a lighter backend works)" if result["version"] else "not installed"
        elif result["version"] is None:
            state = "not installed"
        else:
            state = f"unusable: {result['error']}"
        rows.append((name, state))
    section("Interpreter backends", rows)

    group = report["video_group"]
    rows = [("user", f"{group['user']}, in video group: {_yes_no(group['in_video_group'])}")]
    if report["cameras"] is None:
        rows.append(("devices", "not probed (--no-devices)"))
    elif not report["cameras"]:
        rows.append(("devices", "no /dev/video* device"))
    for camera in report["cameras"] or []:
        state = f"opens, frame {'x'.join(map(str, camera['frame'][:2][::-1]))}" if camera["frame"] else camera["error"]
        rows.append((camera["device"], f"{camera['name'] or 'unknown driver'}: {state}"))
    picamera2 = report["picamera2"]
    if picamera2 is not None:
        if picamera2["importable"]:
            rows.append(("picamera2", f"{picamera2['version'] or 'installed'}, cameras: {', '.join(map(str, picamera2['cameras'])) or 'none'}"))
        else:
            rows.append(("picamera2", picamera2["error"]))
    section("Cameras", rows)

    model = report["model"]
    if model is not None:
        if model["loaded"]:
            metadata = model["metadata"] or {}
            # One row per metadata entry: the whole dictionary on one line was too long to read.
            metadata_rows = [(f"metadata.{key}", _metadata_text(value)) for key, value in sorted(metadata.items())]
            section(
                "Model",
                [
                    ("path", f"{model['path']} ({model['size_bytes'] / 1e6:.2f} MB)"),
                    ("backend", f"{model['backend']} {model['backend_version']}, {model['num_threads']} threads"),
                    ("quantization", model["quantization"]),
                    ("input", _tensor_text(model["input"])),
                    ("output", _tensor_text(model["output"])),
                    *(metadata_rows or [("metadata", "none")]),
                    ("test inference", f"{model['first_inference_ms']} ms on a gray frame (first run, includes warm-up), count {model['test_count']}"),
                ],
            )
        else:
            section("Model", [("path", model["path"]), ("status", "cannot be loaded, see Problems below")])

    problems = report["problems"]
    if not problems:
        lines.append("No problems found.")
    else:
        lines.append(f"Problems ({len(problems)})")
        for problem in problems:
            lines.append(f"  {problem['level']}: {problem['message']}")
            lines.append(f"    fix: {problem['fix']}")
    return "\n".join(lines)


def _metadata_text(value: object) -> str:
    """Format one metadata value: a dictionary as ``key=value`` pairs, a list comma-separated."""
    if isinstance(value, dict):
        return ", ".join(f"{key}={_metadata_text(item)}" for key, item in value.items()) or "none"
    if isinstance(value, list):
        return "[" + ", ".join(_metadata_text(item) for item in value) + "]"
    return str(value)


def _tensor_text(tensor: dict[str, Any]) -> str:
    text = f"{tensor['dtype']} {list(tensor['shape'])}"
    if tensor["scale"]:
        text += f", scale {tensor['scale']:.6g}, zero point {tensor['zero_point']}"
    return text


def _megabytes(value: int | None) -> str:
    return f"{value / 1024:.1f} GB" if value else "unknown"


def _yes_no(value: bool | None) -> str:
    if value is None:
        return "unknown (no video group)"
    return "yes" if value else "no"
