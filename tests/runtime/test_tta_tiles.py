"""Test-time tiling: ``CountModel(..., tta="tiles")`` and ``--tta tiles`` on count.

``tests/runtime/test_tta.py`` runs webcam and compare with both modes.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecount.converters import embed_metadata
from edgecount.runtime import CountModel, load_image
from edgecount.runtime.tiles import crop_quadrants

MODEL_LOGGER = "edgecount.runtime.model"


@pytest.fixture(autouse=True)
def forget_quadrant_notices():
    """Let every test see the once-per-file warning about quadrant training afresh."""
    from edgecount.runtime import model

    model._QUADRANT_NOTICES.clear()
    yield
    model._QUADRANT_NOTICES.clear()


@pytest.fixture(scope="module")
def brightness_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real float32 .tflite model whose count is ``(mean pixel value - 110) / 20``.

    The untrained head of ``tiny_run`` returns mostly negative counts, which clipping turns into 0. This
    model returns positive counts for bright crops and negative ones for dark crops, and its weights are
    fixed, so the signs do not depend on a random initialisation.
    """
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1)])
    model.layers[-1].set_weights([np.full((3, 1), 1 / 60, dtype=np.float32), np.array([-110 / 20], dtype=np.float32)])
    path = tmp_path_factory.mktemp("brightness") / "brightness.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


def _hand_tiled_count(plain: CountModel, frame: np.ndarray) -> float:
    """Count the whole frame and its quadrants one by one with a model without test-time augmentation."""
    whole = plain.invoke(plain.prepare(frame))
    quadrants = [plain.invoke(plain.prepare(np.ascontiguousarray(crop))) for crop in crop_quadrants(frame)]
    return (max(0.0, whole) + sum(max(0.0, count) for count in quadrants)) / 2.0


def _with_metadata(tiny_run: Path, folder: Path, training: dict | None) -> Path:
    """Write the tiny float32 model with metadata whose ``training`` entry is ``training``."""
    metadata = {"quantization": "float32", "input_size": [96, 96]}
    if training is not None:
        metadata["training"] = training
    path = folder / "edited.tflite"
    path.write_bytes(embed_metadata((tiny_run / "model_float32.tflite").read_bytes(), metadata))
    return path


@pytest.mark.parametrize("mode", ["float32", "int8"])
def test_tiles_equals_hand_computed_mean(tiny_run: Path, real_photo_paths: list[Path], mode: str):
    path = tiny_run / f"model_{mode}.tflite"
    plain, tiled = CountModel(path, num_threads=1, tta=None), CountModel(path, num_threads=1, tta="tiles")
    for photo in real_photo_paths[:3]:
        frame = load_image(photo)
        assert tiled.predict(frame) == pytest.approx(_hand_tiled_count(plain, frame), abs=1e-6)


def test_tiles_clips_each_count(brightness_model: Path, real_photo_paths: list[Path]):
    plain, tiled = CountModel(brightness_model, num_threads=1), CountModel(brightness_model, num_threads=1, tta="tiles")
    raw_counts = []
    for photo in real_photo_paths:
        frame = load_image(photo)
        raw_counts += [plain.invoke(row[np.newaxis]) for row in tiled.prepare(frame)]
        assert tiled.predict(frame) == pytest.approx(_hand_tiled_count(plain, frame), abs=1e-5)

    # Both signs occur, so the check above covers clipping as well as the sum and the mean.
    assert min(raw_counts) < -0.1
    assert max(raw_counts) > 0.1


def test_tiles_prepare_shape_and_rows(tiny_run: Path, real_photo_paths: list[Path]):
    path = tiny_run / "model_int8.tflite"
    plain, tiled = CountModel(path, num_threads=1), CountModel(path, num_threads=1, tta="tiles")
    frame = load_image(real_photo_paths[4])

    tensor = tiled.prepare(frame)

    assert tensor.shape == (5, 96, 96, 3)
    assert tensor.dtype == tiled.input.dtype
    assert np.array_equal(tensor[0:1], plain.prepare(frame))
    for row, crop in enumerate(crop_quadrants(frame), start=1):
        assert np.array_equal(tensor[row : row + 1], plain.prepare(np.ascontiguousarray(crop)))


@pytest.mark.parametrize("tta", [None, "flip"])
def test_prepare_shape_without_tiles(tiny_run: Path, real_photo_paths: list[Path], tta):
    model = CountModel(tiny_run / "model_float32.tflite", num_threads=1, tta=tta)
    assert model.prepare(load_image(real_photo_paths[0])).shape == (1, 96, 96, 3)


def test_tiles_int8_quantized_input(tiny_run: Path, real_photo_paths: list[Path]):
    model = CountModel(tiny_run / "model_int8.tflite", num_threads=1, tta="tiles")
    assert model.input.quantized
    frame = load_image(real_photo_paths[7])

    tensor = model.prepare(frame)

    assert tensor.dtype in (np.uint8, np.int8)
    count = model.predict_prepared(tensor)
    assert math.isfinite(count)
    assert count >= 0.0
    assert count == model.predict(frame)


@pytest.mark.parametrize("size", [(101, 77), (3, 3), (2, 2), (240, 321)])
def test_tiles_odd_sized_frame(tiny_run: Path, real_photo_paths: list[Path], size: tuple[int, int]):
    height, width = size
    frame = cv2.resize(load_image(real_photo_paths[5]), (width, height), interpolation=cv2.INTER_AREA)
    path = tiny_run / "model_float32.tflite"
    plain, tiled = CountModel(path, num_threads=1), CountModel(path, num_threads=1, tta="tiles")

    assert tiled.prepare(frame).shape == (5, 96, 96, 3)
    assert tiled.predict(frame) == pytest.approx(_hand_tiled_count(plain, frame), abs=1e-6)


@pytest.mark.parametrize("size", [(1, 1), (1, 50), (50, 1)])
def test_tiles_tiny_frame_counted_whole(tiny_run: Path, size: tuple[int, int], caplog: pytest.LogCaptureFixture):
    path = tiny_run / "model_float32.tflite"
    plain, tiled = CountModel(path, num_threads=1), CountModel(path, num_threads=1, tta="tiles")
    frame = np.full((*size, 3), 128, dtype=np.uint8)
    caplog.set_level(logging.WARNING, logger=MODEL_LOGGER)

    assert tiled.prepare(frame).shape == (1, 96, 96, 3)
    assert tiled.predict(frame) == plain.predict(frame)
    assert f"a {size[1]}x{size[0]} frame is too small to cut into quadrants, so tta tiles counts it whole" in caplog.text


def test_tiny_frame_without_tiles_counts(tiny_run: Path):
    model = CountModel(tiny_run / "model_float32.tflite", num_threads=1)
    assert model.predict(np.zeros((1, 1, 3), dtype=np.uint8)) >= 0.0


def test_predict_prepared_rejects_wrong_rows(tiny_run: Path, real_photo_paths: list[Path]):
    path = tiny_run / "model_float32.tflite"
    plain, tiled = CountModel(path, num_threads=1), CountModel(path, num_threads=1, tta="tiles")
    frame = load_image(real_photo_paths[0])

    with pytest.raises(ValueError, match=r"shape \[5, height, width, 3\] for tta tiles, got shape \[3, 96, 96, 3\]"):
        tiled.predict_prepared(tiled.prepare(frame)[:3])
    with pytest.raises(ValueError, match=r"shape \[1, height, width, 3\] for tta none, got shape \[5, 96, 96, 3\]"):
        plain.predict_prepared(tiled.prepare(frame))


def test_tiles_warns_quadrants_zero(tiny_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    path = _with_metadata(tiny_run, tmp_path, {"quadrants": 0})
    caplog.set_level(logging.INFO, logger=MODEL_LOGGER)

    CountModel(path, num_threads=1, tta="tiles")

    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "the metadata says it was trained without quadrant crops ('edgecount train --quadrants'" in warnings[0].getMessage()
    assert "tiled counts may be off" in warnings[0].getMessage()


def test_tiles_warns_quadrants_missing(tiny_run: Path, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger=MODEL_LOGGER)

    CountModel(tiny_run / "model_float32.tflite", num_threads=1, tta="tiles")

    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "the metadata does not record training with quadrant crops" in warnings[0].getMessage()


def test_tiles_quiet_when_trained(tiny_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    path = _with_metadata(tiny_run, tmp_path, {"quadrants": 4})
    caplog.set_level(logging.INFO, logger=MODEL_LOGGER)

    CountModel(path, num_threads=1, tta="tiles")

    assert "quadrant" not in caplog.text


@pytest.mark.parametrize("tta", [None, "flip"])
def test_quadrant_warning_only_for_tiles(tiny_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, tta):
    path = _with_metadata(tiny_run, tmp_path, {"quadrants": 0})
    caplog.set_level(logging.INFO, logger=MODEL_LOGGER)

    CountModel(path, num_threads=1, tta=tta)

    assert "quadrant" not in caplog.text


def test_count_model_describe_tiles(tiny_run: Path):
    assert CountModel(tiny_run / "model_int8.tflite", tta="tiles").describe()["tta"] == "tiles"


def test_count_command_tta_tiles(tiny_run: Path, real_photo_paths: list[Path], run_cli):
    model = tiny_run / "model_float32.tflite"
    photos = (real_photo_paths[0], real_photo_paths[6])

    code, stdout, stderr = run_cli("count", model, *photos, "--tta", "tiles", "--json")

    assert code == 0, stderr
    tiled = CountModel(model, tta="tiles")
    assert json.loads(stdout)["tta"] == "tiles"
    results = json.loads(stdout)["results"]
    for result, photo in zip(results, photos, strict=True):
        assert result["count"] == pytest.approx(tiled.predict(load_image(photo)), abs=1e-3)


def test_count_command_tiles_tiny_image(tiny_run: Path, real_photo_paths: list[Path], tmp_path: Path, run_cli):
    tiny = tmp_path / "tiny.png"
    assert cv2.imwrite(str(tiny), np.full((1, 1, 3), 128, dtype=np.uint8))

    code, stdout, stderr = run_cli("count", tiny_run / "model_float32.tflite", tiny, real_photo_paths[0], "--tta", "tiles", "--json")

    assert code == 0, stderr
    results = {Path(result["path"]).name: result for result in json.loads(stdout)["results"]}
    assert results["tiny.png"]["count"] >= 0.0
    assert results[real_photo_paths[0].name]["count"] >= 0.0
    assert "a 1x1 frame is too small to cut into quadrants, so tta tiles counts it whole" in stderr


def test_tiles_warning_once_per_file(tiny_run: Path, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING, logger=MODEL_LOGGER)

    for _ in range(3):
        CountModel(tiny_run / "model_float32.tflite", num_threads=1, tta="tiles")

    assert caplog.text.count("quadrant crops") == 1


@pytest.mark.parametrize("command", ["count", "webcam", "compare"])
def test_command_help_lists_tiles(run_cli, command: str):
    code, stdout, _ = run_cli(command, "--help")
    assert code == 0
    help_text = " ".join(stdout.replace("│", " ").split())
    assert "tiles" in help_text
    assert "5 inferences per frame" in help_text
