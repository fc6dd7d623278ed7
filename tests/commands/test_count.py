"""``edgecount count`` on real photos, broken files and bad models, in-process and without TensorFlow."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest


@pytest.fixture
def photo_folder(tmp_path: Path, real_photo_paths: list[Path]) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in real_photo_paths[:3]:
        (folder / photo.name).write_bytes(photo.read_bytes())
    return folder


@pytest.fixture
def broken_folder(photo_folder: Path, real_photo_paths: list[Path]) -> Path:
    """Three real photos beside a corrupt, an empty, a truncated and a text file named .jpg."""
    (photo_folder / "corrupt.jpg").write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (photo_folder / "empty.jpg").write_bytes(b"")
    (photo_folder / "truncated.jpg").write_bytes(real_photo_paths[5].read_bytes()[:500])
    (photo_folder / "notes.jpg").write_text("not a photo")
    return photo_folder


def test_count_real_photos_table(run_cli, tiny_run, photo_folder):
    code, out, err = run_cli("count", tiny_run / "model_int8.tflite", photo_folder, "--threads", "1")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].split() == ["path", "count", "rounded", "ms", "error"]
    assert len(lines) == 4
    for line in lines[1:]:
        assert float(line.split()[1]) >= 0.0


def test_count_json_content(run_cli, tiny_run, photo_folder):
    code, out, _ = run_cli("count", tiny_run / "model_float32.tflite", photo_folder, "--json")
    assert code == 0
    document = json.loads(out)
    assert document["model"].endswith("model_float32.tflite")
    assert document["backend"] == "litert"
    assert [Path(r["path"]).name for r in document["results"]] == sorted(p.name for p in photo_folder.iterdir())
    assert all(r["error"] is None and r["count"] >= 0 and r["latency_ms"] > 0 for r in document["results"])
    assert document["total_count"] == pytest.approx(sum(r["count"] for r in document["results"]), abs=0.01)


def test_count_csv_content(run_cli, tiny_run, photo_folder):
    code, out, _ = run_cli("count", tiny_run / "model_int8.tflite", photo_folder, "--csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == ["path", "count", "latency_ms", "error"]
    assert len(rows) == 3
    assert all(float(row["count"]) >= 0 and row["error"] == "" for row in rows)


def test_count_json_and_csv_conflict(run_cli, tiny_run, photo_folder):
    code, _, err = run_cli("count", tiny_run / "model_int8.tflite", photo_folder, "--json", "--csv")
    assert code == 2
    assert "choose one of --json and --csv" in err


def test_count_broken_files_reported(run_cli, tiny_run, broken_folder):
    code, out, err = run_cli("count", tiny_run / "model_int8.tflite", broken_folder, "--json")
    assert code == 1
    results = {Path(r["path"]).name: r for r in json.loads(out)["results"]}
    assert len(results) == 7
    assert sum(1 for r in results.values() if r["count"] is not None) == 3
    assert "not a decodable image (4000 bytes)" in results["corrupt.jpg"]["error"]
    assert "the file is empty (0 bytes)" in results["empty.jpg"]["error"]
    assert "corrupt, truncated" in results["truncated.jpg"]["error"]
    assert "not a decodable image" in results["notes.jpg"]["error"]
    assert "4 of 7 inputs failed" in err


def test_count_folder_skips_non_image_suffix(run_cli, tiny_run, photo_folder):
    (photo_folder / "README.txt").write_text("party photos")
    code, out, _ = run_cli("count", tiny_run / "model_int8.tflite", photo_folder, "--csv")
    assert code == 0
    assert "README.txt" not in out


def test_count_missing_path_and_empty_glob(run_cli, tiny_run, real_photo_paths, tmp_path):
    missing = tmp_path / "missing.jpg"
    pattern = str(tmp_path / "party-*.jpg")
    code, out, err = run_cli("count", tiny_run / "model_int8.tflite", missing, pattern, real_photo_paths[0], "--json")
    assert code == 1
    results = json.loads(out)["results"]
    errors = {r["path"]: r["error"] for r in results}
    assert errors[str(missing)] == f"{missing}: no such file or folder; check the path"
    assert "the pattern matched no files" in errors[pattern]
    assert errors[str(real_photo_paths[0])] is None
    assert "2 of 3 inputs failed" in err


def test_count_empty_folder(run_cli, tiny_run, tmp_path):
    code, out, _ = run_cli("count", tiny_run / "model_int8.tflite", tmp_path, "--json")
    assert code == 1
    assert "the folder has no image files" in json.loads(out)["results"][0]["error"]


def test_count_file_above_byte_limit(run_cli, tiny_run, real_photo_paths, monkeypatch):
    small = min(real_photo_paths[:4], key=lambda p: p.stat().st_size)
    large = max(real_photo_paths[:4], key=lambda p: p.stat().st_size)
    monkeypatch.setenv("EDGECOUNT_MAX_IMAGE_BYTES", str(small.stat().st_size))
    code, out, _ = run_cli("count", tiny_run / "model_int8.tflite", small, large, "--json")
    assert code == 1
    results = {r["path"]: r for r in json.loads(out)["results"]}
    assert results[str(small)]["error"] is None
    assert "raise EDGECOUNT_MAX_IMAGE_BYTES" in results[str(large)]["error"]


def test_count_image_above_pixel_limit(run_cli, tiny_run, tmp_path, real_photo_paths):
    import struct
    import zlib

    width = height = 12_000
    row = b"\x00" * (1 + width // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    huge = tmp_path / "huge.png"
    huge.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    code, out, _ = run_cli("count", tiny_run / "model_int8.tflite", huge, real_photo_paths[0], "--csv")
    assert code == 1
    rows = {row["path"]: row for row in csv.DictReader(io.StringIO(out))}
    assert "declares 12000x12000 pixels" in rows[str(huge)]["error"]
    assert rows[str(real_photo_paths[0])]["error"] == ""


def test_count_gray_rgba_16bit(run_cli, tiny_run, av_faces_dir, real_photo_paths, tmp_path):
    bgr = cv2.imread(str(real_photo_paths[0]))
    cv2.imwrite(str(tmp_path / "rgba.png"), np.dstack([bgr, np.full(bgr.shape[:2], 200, np.uint8)]))
    cv2.imwrite(str(tmp_path / "deep.png"), bgr.astype(np.uint16) * 257)
    gray = av_faces_dir / "images" / "11175.jpg"
    code, out, err = run_cli("count", tiny_run / "model_int8.tflite", tmp_path, gray, "--json")
    assert code == 0, err
    assert len(json.loads(out)["results"]) == 3


@pytest.mark.parametrize(
    ("model_name", "fragment"),
    [("missing.tflite", "model file not found"), ("model.keras", "not a TFLite model")],
)
def test_count_bad_model_path(run_cli, tiny_run, real_photo_paths, model_name, fragment):
    code, out, err = run_cli("count", tiny_run / model_name, real_photo_paths[0])
    assert code == 1
    assert out == ""
    assert err.startswith("error: ")
    assert fragment in err
    assert "hint: set EDGECOUNT_DEBUG=1" in err


def test_count_classifier_model(run_cli, classifier_tflite, real_photo_paths):
    code, out, err = run_cli("count", classifier_tflite, real_photo_paths[0])
    assert code == 1
    assert out == ""
    assert "the output has shape [1, 1001]" in err


def test_count_unknown_backend(run_cli, tiny_run, real_photo_paths):
    code, _, err = run_cli("count", tiny_run / "model_int8.tflite", real_photo_paths[0], "--backend", "onnx")
    assert code == 2
    assert "unknown backend 'onnx'" in err


def test_count_without_tensorflow(python_without_tensorflow, tiny_run, real_photo_paths, broken_folder):
    code = (
        "import json, sys\n"
        "from edgecount.cli import main\n"
        "from edgecount.runtime import CountModel\n"
        f"model = CountModel({str(tiny_run / 'model_int8.tflite')!r})\n"
        "print('metadata', json.dumps(model.metadata))\n"
        "try:\n"
        f"    main(['count', {str(tiny_run / 'model_int8.tflite')!r}, {str(broken_folder)!r}, '--json'])\n"
        "except SystemExit as exit_:\n"
        "    print('exit', exit_.code)\n"
        "print('tensorflow loaded', 'tensorflow' in sys.modules)\n"
    )
    result = python_without_tensorflow(code)
    assert result.returncode == 0, result.stderr
    assert '"input_size": [96, 96]' in result.stdout
    assert '"quantization": "int8"' in result.stdout
    assert "exit 1" in result.stdout
    assert "tensorflow loaded False" in result.stdout
    document = json.loads(result.stdout[result.stdout.index("{\n") : result.stdout.rindex("}") + 1])
    assert sum(1 for r in document["results"] if r["count"] is not None) == 3


def test_count_help_without_tensorflow(python_without_tensorflow):
    result = python_without_tensorflow("from edgecount.cli import main\nmain(['count', '--help'])\n")
    assert result.returncode == 0, result.stderr
    assert "Count faces in images" in result.stdout
