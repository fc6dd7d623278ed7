"""Comparison reports on the tiny real run: the text, Markdown, CSV and JSON contents and the PNG plot."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecount.reports.comparison import KerasReference, compare_models
from edgecount.reports.environment import system_info
from edgecount.reports.evaluation import count_metrics, load_evaluation_images
from edgecount.reports.plot import plot_rmse_latency
from edgecount.reports.writers import CSV_COLUMNS, format_csv, format_json, format_markdown, format_text, write_reports
from edgecount.runs import RunDir
from edgecount.runtime import load_backend

MODES = ["float32", "float16", "dynamic", "int8"]


@pytest.fixture(scope="module")
def comparison(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory):
    broken = tmp_path_factory.mktemp("broken") / "model_broken.tflite"
    broken.write_bytes(b"\x00" * 4 + b"TFL3" + b"\x00" * 64)
    run = RunDir(tiny_run)
    images = load_evaluation_images(run.samples("validation"))
    paths = [run.tflite_path(mode) for mode in MODES] + [broken]
    keras = KerasReference(None, "not loaded in this test")
    return compare_models(paths, images, [1, 2], keras, system_info(load_backend(), [1, 2]), runs=3, warmup=1)


def test_count_metrics_values() -> None:
    metrics = count_metrics(np.array([1.0, 4.0, 2.0]), np.array([2.0, 2.0, 2.0]), ["a", "b", "c"])

    assert metrics.rmse == pytest.approx(np.sqrt(5 / 3))
    assert metrics.mae == pytest.approx(1.0)
    assert metrics.bias == pytest.approx(1 / 3)
    assert metrics.worst_error == 2.0
    assert metrics.worst_image == "b"


def test_count_metrics_rejects_empty() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        count_metrics(np.array([]), np.array([]), [])


def test_load_evaluation_images_keeps_failures(real_photo_paths: list[Path], tmp_path: Path) -> None:
    from edgecount.runs import Sample

    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8not a jpeg")
    images = load_evaluation_images([Sample(real_photo_paths[0], 3.0), Sample(corrupt, 1.0)])

    assert len(images) == 1
    assert len(images.failures) == 1
    assert "corrupt.jpg" in images.failures[0]


def test_comparison_failed_row_keeps_others(comparison) -> None:
    rows = {row.name: row for row in comparison.rows}

    assert rows["broken"].status == "failed"
    assert "ModelError" in rows["broken"].reason
    for mode in MODES:
        assert rows[mode].status == "ok"
        assert rows[mode].metrics.images == 8
        assert set(rows[mode].latency) == {1, 2}
    assert rows["float32"].speedup[1] == pytest.approx(1.0)
    assert rows["int8"].rmse_change_vs_keras is None
    assert rows["int8"].keras_note == "not loaded in this test"


def test_comparison_text_has_both_tables(comparison) -> None:
    text = format_text(comparison)

    assert "RMSE" in text
    assert "invoke p50" in text
    assert "Keras model: n/a (not loaded in this test)" in text
    assert "failed: ModelError" in text
    assert "cores" in text


def test_comparison_markdown_columns(comparison) -> None:
    markdown = format_markdown(comparison)
    header = next(line for line in markdown.splitlines() if line.startswith("| model | size MB"))

    assert header == "| model | size MB | RMSE | MAE | bias | worst | dRMSE vs Keras | status |"
    assert "| model | threads | invoke p50 | invoke p90 | pipeline p50 | pipeline p90 | FPS | speed-up |" in markdown
    assert "| int8 |" in markdown


def test_comparison_csv_columns(comparison) -> None:
    rows = list(csv.DictReader(io.StringIO(format_csv(comparison))))

    assert list(rows[0]) == CSV_COLUMNS
    ok_rows = [row for row in rows if row["status"] == "ok"]
    assert len(ok_rows) == 4 * 2
    assert {row["threads"] for row in ok_rows} == {"1", "2"}
    assert all(float(row["invoke_median_ms"]) > 0 for row in ok_rows)
    assert all(row["rmse_change_vs_keras"] == "n/a" for row in ok_rows)
    assert [row["model"] for row in rows if row["status"] == "failed"] == ["broken"]


def test_comparison_json_structure(comparison) -> None:
    document = json.loads(format_json(comparison))

    assert document["system"]["backend"] == "litert"
    assert document["settings"]["threads"] == [1, 2]
    assert document["images"] == 8
    int8 = next(row for row in document["rows"] if row["name"] == "int8")
    assert int8["latency"]["1"]["invoke"]["median_ms"] > 0
    assert int8["metrics"]["rmse"] >= int8["metrics"]["mae"]


def test_write_reports_and_plot(comparison, tmp_path: Path) -> None:
    written = write_reports(comparison, tmp_path / "report")
    png = plot_rmse_latency(comparison, tmp_path / "report" / "comparison.png")
    image = cv2.imread(str(png))

    assert sorted(path.name for path in written.values()) == ["comparison.csv", "comparison.json", "comparison.md"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert image is not None
    assert image.shape[0] > 300
    assert image.shape[1] > 500
