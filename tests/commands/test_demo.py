"""Tests for ``edgecount demo``: the README's first command, end to end on the synthetic dataset."""

from __future__ import annotations

import csv
import re
from pathlib import Path


def _plain(text: str) -> str:
    """Return the text without the box Typer draws around usage errors, on one line."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def test_demo_runs_end_to_end(tmp_path: Path, weights_035: Path, run_cli):
    out = tmp_path / "demo"

    code, stdout, stderr = run_cli(
        "demo", "--out", out, "--images", "40", "--image-size", "64", "--weights", weights_035
    )

    assert code == 0, stderr
    assert "SYNTHETIC" in stderr
    with open(out / "data" / "labels.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 40
    for mode in ("float32", "float16", "dynamic", "int8"):
        assert (out / "run" / f"model_{mode}.tflite").is_file()
    assert (out / "run" / "report" / "comparison.md").is_file()
    assert stdout.count("(true ") == 5


def test_demo_force_keeps_foreign_folder(tmp_path: Path, run_cli):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "thesis.tex").write_text("keep me")

    code, _, stderr = run_cli("demo", "--out", out, "--force")

    assert code == 2
    assert "not a demo folder" in _plain(stderr)
    assert (out / "thesis.tex").read_text() == "keep me"


def test_demo_without_force_refuses(tmp_path: Path, run_cli):
    out = tmp_path / "used"
    (out / "run").mkdir(parents=True)

    code, _, stderr = run_cli("demo", "--out", out)

    assert code == 2
    assert "--force" in _plain(stderr)
