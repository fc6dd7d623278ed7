"""Compare the arm64 and x86 results of ``check-arm64.sh`` and print a PASS/FAIL summary.

Reads the work folder the shell script filled (``results/probe-<side>-<variant>.json``, the
``edgecount count`` JSON and ``edgecount webcam`` JSON lines of each side, pip freeze lists) and exits
with status 1 when any check fails. Needs only the standard library.

Tolerances: float32 and float16 counts must agree within 1e-3; int8 counts within one quantization step
of the count, the scale of the model's output or, for an int8 model with a float32 output, of the int8
tensor that its last DEQUANTIZE op reads. The commands print counts rounded to 3 decimals, so their
comparisons allow 1e-3 more.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

# NOTE: tflite-runtime 2.14's int8 kernels on x86 round differently from its ARM and reference kernels,
# so its int8 check fails by up to 3 to 4 output steps although arm64 matches the reference kernels
# exactly (the "reference kernels" lines show it). LiteRT is bit-exact across the two machines.
FLOAT_TOLERANCE = 1e-3
ROUNDING = 1e-3
SIZE_GOAL_MB = 150.0
VARIANTS = ("litert", "tflite-runtime")
# Footprint groups: which distributions a runtime venv needs for what. A distribution in no group counts
# as "other"; "venv" is the venv's own files (bin/, pyvenv.cfg).
FOOTPRINT_GROUPS = {
    "OpenCV": ("opencv-python-headless",),
    "NumPy": ("numpy",),
    "interpreter": ("ai-edge-litert", "tflite-runtime", "ml-dtypes", "protobuf", "flatbuffers", "tqdm", "backports-strenum"),
    "CLI (typer and its rich, pygments, pydantic)": (
        "typer", "rich", "pygments", "markdown-it-py", "mdurl", "pydantic", "pydantic-core", "shellingham",
        "annotated-doc", "annotated-types", "typing-inspection", "typing-extensions",
    ),
    "pip and setuptools": ("pip", "setuptools", "wheel"),
    "edgecount": ("edgecount",),
}
FORBIDDEN_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "opencv-python", "opencv-contrib-python", "pyqt5", "pyside6")


class Summary:
    """Collects check lines and counts failures."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.failed = 0
        self.passed = 0

    def check(self, ok: bool, text: str) -> None:
        self.lines.append(f"{'PASS' if ok else 'FAIL'}  {text}")
        if ok:
            self.passed += 1
        else:
            self.failed += 1

    def info(self, text: str) -> None:
        self.lines.append(f"INFO  {text}")


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def tolerance_for(mode: str, step: float | None) -> tuple[float | None, str]:
    """Return the allowed count difference for a quantization mode and how it was chosen."""
    if mode in ("float32", "float16"):
        return FLOAT_TOLERANCE, f"{FLOAT_TOLERANCE:g}"
    if mode == "int8":
        if step:
            return step, f"1 output step = {step:.4g}"
        return FLOAT_TOLERANCE, f"{FLOAT_TOLERANCE:g} (no output step found)"
    # Dynamic-range kernels quantize activations at run time with platform-specific code, so no
    # bound is promised across machines; the difference is reported without a verdict.
    return None, "not checked"


def compare_probes(summary: Summary, variant: str, arm: dict, x86: dict) -> None:
    for name, model in sorted(arm["models"].items()):
        reference = x86["models"].get(name)
        if reference is None:
            summary.check(False, f"{variant} {name}: no x86 result to compare with")
            continue
        by_image = {result["image"]: result for result in reference["results"]}
        differences = [abs(result["raw"] - by_image[result["image"]]["raw"]) for result in model["results"] if result["image"] in by_image]
        identical_inputs = sum(1 for r in model["results"] if by_image.get(r["image"], {}).get("tensor_sha256") == r["tensor_sha256"])
        tolerance, described = tolerance_for(model["quantization"], model["output_step"])
        worst = max(differences) if differences else float("inf")
        text = (
            f"{variant} {name} ({model['quantization']}): {len(differences)} photos, max |arm64 - x86| = {worst:.6f}, "
            f"tolerance {described}; input tensors identical for {identical_inputs}/{len(model['results'])}"
        )
        if len(differences) != len(model["results"]) or not differences:
            summary.check(False, text + "; photos missing on x86")
        elif tolerance is None:
            summary.info(text)
        else:
            summary.check(worst <= tolerance, text)
        describe_video_inputs(summary, variant, name, model, reference)
        describe_reference_kernels(summary, variant, name, model, reference)


def describe_video_inputs(summary: Summary, variant: str, name: str, model: dict, reference: dict) -> None:
    """Say whether the video's decoded frames and model inputs are bit-identical on both machines, so a
    count difference in the webcam check can be put down to decoding, resizing or the interpreter."""
    arm_video, x86_video = model.get("video", []), reference.get("video", [])
    if not arm_video or len(arm_video) != len(x86_video):
        return
    same_frames = sum(1 for a, b in zip(arm_video, x86_video) if a["frame_sha256"] == b["frame_sha256"])
    same_tensors = sum(1 for a, b in zip(arm_video, x86_video) if a["tensor_sha256"] == b["tensor_sha256"])
    same_input = [abs(a["raw"] - b["raw"]) for a, b in zip(arm_video, x86_video) if a["tensor_sha256"] == b["tensor_sha256"]]
    text = (
        f"{variant} {name} video: decoded frames identical {same_frames}/{len(arm_video)}, "
        f"resized input tensors identical {same_tensors}/{len(arm_video)}"
    )
    if same_input:
        text += f"; on identical inputs max |arm64 - x86| = {max(same_input):.6f}"
    summary.info(text)


def describe_reference_kernels(summary: Summary, variant: str, name: str, model: dict, reference: dict) -> None:
    """Compare each side's default int8 kernels with the reference kernels (BUILTIN_REF) on the same photos.

    The reference kernels are portable C++ and compute the same integers on every CPU, so these lines
    show which machine's optimized kernels round differently when the int8 check fails.
    """
    arm_results = [r for r in model["results"] if "reference_raw" in r]
    x86_by_image = {r["image"]: r for r in reference["results"] if "reference_raw" in r}
    pairs = [(r, x86_by_image[r["image"]]) for r in arm_results if r["image"] in x86_by_image]
    if not pairs:
        return
    step = model["output_step"] or 1.0

    def worst(values: list[float]) -> str:
        largest = max(values)
        return f"{largest:.6f} ({largest / step:.1f} output steps)"

    summary.info(
        f"{variant} {name} reference kernels (BUILTIN_REF) on {len(pairs)} photos: max |arm64 ref - x86 ref| = "
        f"{worst([abs(a['reference_raw'] - b['reference_raw']) for a, b in pairs])}; "
        f"arm64 default vs ref {worst([abs(a['raw'] - a['reference_raw']) for a, _ in pairs])}; "
        f"x86 default vs ref {worst([abs(b['raw'] - b['reference_raw']) for _, b in pairs])}"
    )


def compare_count_command(summary: Summary, results: Path, variant: str, name: str, probe: dict, mode: str) -> None:
    document = load_json(results / f"count-arm64-{variant}-{name}.json")
    if document is None:
        error = (results / f"count-arm64-{variant}-{name}.err").read_text(errors="replace").strip()
        summary.check(False, f"{variant} edgecount count {name}: no JSON output; stderr: {error[-300:]}")
        return
    probe_counts = {result["image"]: round(result["count"], 3) for result in probe["results"]}
    counted = [r for r in document["results"] if r["error"] is None]
    failures = [r for r in document["results"] if r["error"] is not None]
    worst = max((abs(r["count"] - probe_counts[Path(r["path"]).name]) for r in counted), default=float("inf"))
    ok = not failures and len(counted) == len(probe_counts) and worst <= ROUNDING and document["backend"] == variant
    summary.check(
        ok,
        f"{variant} edgecount count {name}: {len(counted)}/{len(probe_counts)} photos counted with backend "
        f"{document['backend']}, max |command - probe| = {worst:.4f}"
        + (f"; errors: {failures[0]['error']}" if failures else ""),
    )


def read_json_lines(path: Path) -> list[dict] | None:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError):
        return None


def compare_webcam_command(summary: Summary, results: Path, variant: str, name: str, mode: str, step: float | None, frames: int) -> None:
    arm = read_json_lines(results / f"webcam-arm64-{variant}-{name}.jsonl")
    x86 = read_json_lines(results / f"webcam-x86-{variant}-{name}.jsonl")
    if not arm or not x86:
        side = "arm64" if not arm else "x86"
        error = (results / f"webcam-{side}-{variant}-{name}.err").read_text(errors="replace").strip()
        summary.check(False, f"{variant} edgecount webcam --source video.avi {name}: no {side} output; stderr: {error[-300:]}")
        return
    tolerance, described = tolerance_for(mode, step)
    x86_by_frame = {row["frame"]: row["count"] for row in x86}
    differences = [abs(row["count"] - x86_by_frame[row["frame"]]) for row in arm if row["frame"] in x86_by_frame]
    worst = max(differences, default=float("inf"))
    text = (
        f"{variant} edgecount webcam --source video.avi {name}: {len(arm)}/{frames} frames counted on arm64, "
        f"max |arm64 - x86| = {worst:.4f}, tolerance {described} + {ROUNDING:g} rounding"
    )
    if tolerance is None:
        summary.check(len(arm) == frames, text)
    else:
        summary.check(len(arm) == frames and len(differences) == frames and worst <= tolerance + ROUNDING, text)


def check_doctor(summary: Summary, results: Path, variant: str) -> None:
    """Check that ``edgecount doctor --json MODEL`` ran on arm64 and saw a 64-bit ARM machine."""
    path = results / f"doctor-arm64-{variant}.json"
    if not path.exists():
        return
    report = load_json(path)
    if report is None:
        error = (results / f"doctor-arm64-{variant}.err").read_text(errors="replace").strip()
        summary.check(False, f"{variant} edgecount doctor on arm64: no JSON output; stderr: {error[-300:]}")
        return
    problems = [f"{problem['level']}: {problem['message']}" for problem in report["problems"]]
    machine = report["platform"]["machine"]
    loaded = bool(report["model"] and report["model"]["loaded"])
    summary.check(
        machine == "aarch64" and report["platform"]["python_bits"] == 64 and loaded and report["backends"]["auto"] is not None,
        f"{variant} edgecount doctor on arm64: machine {machine}, {report['platform']['python_bits']}-bit Python, "
        f"backend auto = {report['backends']['auto']}, model loaded: {loaded}, problems: {problems or 'none'}",
    )


def read_number(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def hint_for_probe_error(error: str) -> str:
    """Return the fix for a probe error that has a known cause, as a sentence to append, else ""."""
    if "Didn't find op for builtin opcode" in error:
        return (
            " Fix: the model uses an op version newer than this interpreter; convert it again with the current "
            "edgecount (edgecount convert RUN --quantize MODE --force), which keeps op versions loadable by "
            "tflite-runtime 2.14"
        )
    return ""


def describe_footprint(footprint: dict | None) -> tuple[str, str]:
    """Return the venv's megabytes by use (FOOTPRINT_GROUPS) and by file type, as two text lists."""
    if not footprint:
        return "not measured", "not measured"
    group_of = {name: group for group, names in FOOTPRINT_GROUPS.items() for name in names}
    groups: dict[str, int] = {}
    for name, size in footprint["distributions"].items():
        group = group_of.get(name, "venv" if name == "venv" else "other")
        groups[group] = groups.get(group, 0) + size
    by_use = ", ".join(f"{group} {size / 1e6:.1f}" for group, size in sorted(groups.items(), key=lambda item: -item[1]))
    by_type = ", ".join(f"{kind} {size / 1e6:.1f}" for kind, size in sorted(footprint["kinds"].items(), key=lambda item: -item[1]))
    return by_use, by_type


def check_environment(summary: Summary, variant: str, arm: dict, results: Path) -> None:
    installed = arm["distributions"]
    size_mb = arm["venv_bytes"] / 1e6
    forbidden = [name for name in FORBIDDEN_DISTRIBUTIONS if name in installed]
    seconds = (results / f"install-seconds-arm64-{variant}.txt").read_text().strip() if (results / f"install-seconds-arm64-{variant}.txt").exists() else "?"
    versions = ", ".join(
        f"{name} {installed[name]}" for name in ("numpy", "opencv-python-headless", "ai-edge-litert", "tflite-runtime") if name in installed
    )
    summary.info(f"{variant} venv on arm64: {versions}; pip install took {seconds} s under emulation")
    groups, kinds = describe_footprint(arm.get("footprint"))
    after_install = read_number(results / f"size-arm64-{variant}.txt")
    if after_install:
        summary.info(
            f"{variant} venv size right after pip install {after_install / 1e6:.1f} MB; after the commands ran "
            f"{size_mb:.1f} MB (Python wrote bytecode of the modules they imported)"
        )
    if variant == "litert":
        summary.check(
            size_mb < SIZE_GOAL_MB,
            f"litert venv installed size {size_mb:.1f} MB (goal < {SIZE_GOAL_MB:g} MB, includes pip and setuptools); MB by use: {groups}",
        )
    else:
        summary.info(
            f"tflite-runtime venv installed size {size_mb:.1f} MB (it also has ai-edge-litert, a base dependency); MB by use: {groups}"
        )
    summary.info(f"{variant} venv MB by file type, after the commands ran (pip install --no-compile): {kinds}")
    summary.check(
        not forbidden and arm["cv2_gui"] == "NONE",
        f"{variant} venv has no TensorFlow and no GUI OpenCV: forbidden packages {forbidden or 'none'}, cv2 GUI {arm['cv2_gui']}",
    )
    if variant == "tflite-runtime":
        tags = arm["tflite_runtime_wheel_tags"]
        numpy_major = int(installed.get("numpy", "0").split(".")[0])
        summary.check(
            installed.get("tflite-runtime", "").startswith("2.14") and any("cp311" in tag and "aarch64" in tag for tag in tags),
            f"tflite-runtime {installed.get('tflite-runtime', 'not installed')} from an aarch64 cp311 wheel: tags {tags or 'none'}",
        )
        summary.check(numpy_major == 1, f"tflite-runtime venv has numpy {installed.get('numpy', 'none')} (below 2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="the work folder of check-arm64.sh")
    parser.add_argument("--wheel", required=True, help="the wheel file name, for the header")
    parser.add_argument("--mirror", required=True, help="the Debian mirror, for the header")
    parser.add_argument("--run", required=True, help="where the models came from, for the header")
    parser.add_argument("--cpu", default="cortex-a72", help="the CPU model qemu emulated, for the header")
    args = parser.parse_args()
    results = args.work / "results"
    inputs = load_json(args.work / "inputs.json") or {"photos": [], "video_frames": 0}

    summary = Summary()
    import_ratios = []
    for variant in VARIANTS:
        arm = load_json(results / f"probe-arm64-{variant}.json")
        x86 = load_json(results / f"probe-x86-{variant}.json")
        if arm is None or x86 is None:
            missing = "arm64" if arm is None else "x86"
            summary.check(False, f"{variant}: the {missing} venv was not installed or its probe failed; see the log above")
            continue
        if variant == VARIANTS[0]:
            summary.info(f"arm64: {arm['os_release']}, machine {arm['machine']}, Python {arm['python']}; x86: {x86['os_release']}, Python {x86['python']}")
        check_environment(summary, variant, arm, results)
        check_doctor(summary, results, variant)
        for name, error in {**arm["errors"], **{f"{k} (x86)": v for k, v in x86["errors"].items()}}.items():
            summary.check(False, f"{variant} {name}: the probe failed: {error}{hint_for_probe_error(error)}")
        compare_probes(summary, variant, arm, x86)
        for model_file, model in sorted(arm["models"].items()):
            name = model_file.removesuffix(".tflite")
            compare_count_command(summary, results, variant, name, model, model["quantization"])
            compare_webcam_command(summary, results, variant, name, model["quantization"], model["output_step"], inputs["video_frames"])

        arm_import = statistics.median(arm["import_seconds"])
        x86_import = statistics.median(x86["import_seconds"])
        import_ratios.append(arm_import / x86_import)
        summary.info(
            f"{variant}: import edgecount.runtime takes {arm_import * 1000:.0f} ms emulated vs {x86_import * 1000:.0f} ms on x86 "
            f"(median of {len(arm['import_seconds'])}), ratio {arm_import / x86_import:.1f}x"
        )
        for model_file, model in sorted(arm["models"].items()):
            reference = x86["models"].get(model_file, {})
            if model["invoke_ms_median"] and reference.get("invoke_ms_median"):
                summary.info(
                    f"{variant} {model_file}: invoke {model['invoke_ms_median']:.1f} ms emulated vs "
                    f"{reference['invoke_ms_median']:.1f} ms on x86 (2 threads, median)"
                )

    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"edgecount arm64 check, {now}")
    print(f"wheel {args.wheel}; models: {args.run}; {len(inputs['photos'])} real photos; video of {inputs['video_frames']} frames")
    print(f"Debian 12 arm64 root from {args.mirror}, run under qemu-aarch64-static user emulation of a {args.cpu}")
    for line in summary.lines:
        print(line)
    print(
        "NOTE  Emulated timings are not Raspberry Pi timings: qemu translates every ARM instruction on the x86 host, "
        "so the ratios above show slow start-up paths, not the speed of a Pi 4 or Pi 5."
    )
    total = summary.passed + summary.failed
    if summary.failed:
        print(f"RESULT: FAIL ({summary.failed} of {total} checks failed)")
        sys.exit(1)
    print(f"RESULT: PASS ({total} checks)")


if __name__ == "__main__":
    main()
