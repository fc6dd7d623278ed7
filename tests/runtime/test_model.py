"""CountModel on real converted models, and the errors for files that are not counting models."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from edgecount.converters import embed_metadata
from edgecount.runtime import CountModel, ModelError, load_image


def _convert(model) -> bytes:
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


@pytest.fixture(scope="session")
def odd_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny real .tflite models that break the counting contract, plus one that keeps it without metadata."""
    import keras

    folder = tmp_path_factory.mktemp("odd_models")
    models = {}

    gray = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1)])
    models["gray"] = gray

    image = keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(image)
    models["two_outputs"] = keras.Model(image, [keras.layers.Dense(1)(pooled), keras.layers.Dense(1)(pooled)])

    first, second = keras.Input((32, 32, 3)), keras.Input((32, 32, 3))
    joined = keras.layers.Concatenate()([first, second])
    models["two_inputs"] = keras.Model([first, second], keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(joined)))

    models["plain"] = keras.Sequential([keras.Input((48, 40, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1)])

    paths = {}
    for name, model in models.items():
        paths[name] = folder / f"{name}.tflite"
        paths[name].write_bytes(_convert(model))
    return paths


def test_count_model_predicts_real_photo(tiny_run, real_photo_paths):
    model = CountModel(tiny_run / "model_int8.tflite", num_threads=1)
    value = model.predict(load_image(real_photo_paths[0]))
    assert isinstance(value, float)
    assert value >= 0.0
    assert model.input_size == (96, 96)
    assert model.quantization == "int8"
    assert model.metadata["input_size"] == [96, 96]


@pytest.mark.parametrize("mode", ["float32", "float16", "dynamic", "int8"])
def test_count_model_loads_every_mode(tiny_run, real_photo_paths, mode):
    model = CountModel(tiny_run / f"model_{mode}.tflite", num_threads=1)
    assert model.quantization == mode
    assert np.isfinite(model.predict(load_image(real_photo_paths[1])))
    assert model.describe()["input_shape"] == [1, 96, 96, 3]


def test_count_model_without_metadata_runs(odd_models, caplog):
    caplog.set_level(logging.INFO, logger="edgecount.runtime.model")
    model = CountModel(odd_models["plain"], num_threads=1)
    assert model.metadata is None
    assert model.input_size == (48, 40)
    assert model.quantization == "float32"
    assert model.predict(np.zeros((100, 80, 3), dtype=np.uint8)) >= 0.0
    assert "no edgecount metadata" in caplog.text


def test_tiles_without_metadata_warns(odd_models, caplog):
    from edgecount.runtime import model as model_module

    model_module._QUADRANT_NOTICES.clear()
    caplog.set_level(logging.INFO, logger="edgecount.runtime.model")
    model = CountModel(odd_models["plain"], num_threads=1, tta="tiles")
    assert model.prepare(np.zeros((100, 80, 3), dtype=np.uint8)).shape == (5, 48, 40, 3)
    quadrant_records = [record for record in caplog.records if "quadrant crops" in record.getMessage()]
    assert len(quadrant_records) == 1
    assert quadrant_records[0].levelno == logging.WARNING
    assert "unknown whether the model was trained with quadrant crops" in quadrant_records[0].getMessage()


def test_count_model_warns_on_wrong_metadata_size(odd_models, tmp_path, caplog):
    edited = tmp_path / "edited.tflite"
    edited.write_bytes(embed_metadata(odd_models["plain"].read_bytes(), {"quantization": "int8", "input_size": [224, 224]}))
    caplog.set_level(logging.WARNING, logger="edgecount.runtime.model")
    model = CountModel(edited, num_threads=1)
    assert model.input_size == (48, 40)
    assert "the metadata says the input is 224x224 but the input tensor is 48x40" in caplog.text
    assert "the metadata says int8 but the input tensor is float32" in caplog.text


def test_count_model_warns_on_wrong_channels_and_scale(odd_models, tmp_path, caplog):
    edited = tmp_path / "edited.tflite"
    metadata = {"quantization": "float32", "channel_order": "BGR", "input": {"scale": 0.5, "zero_point": 3}}
    edited.write_bytes(embed_metadata(odd_models["plain"].read_bytes(), metadata))
    caplog.set_level(logging.WARNING, logger="edgecount.runtime.model")
    CountModel(edited, num_threads=1)
    assert "the metadata says the model takes BGR pixels, but edgecount feeds RGB" in caplog.text
    assert "the input scale and zero point are 0.5 and 3 but the tensor has 0 and 0" in caplog.text


def test_count_model_real_metadata_no_warning(tiny_run, caplog):
    caplog.set_level(logging.WARNING, logger="edgecount.runtime.model")
    for mode in ("float32", "int8"):
        CountModel(tiny_run / f"model_{mode}.tflite", num_threads=1)
    assert caplog.text == ""


def test_count_model_missing_file(tmp_path):
    with pytest.raises(ModelError, match="missing.tflite: model file not found"):
        CountModel(tmp_path / "missing.tflite")


def test_count_model_folder(tmp_path):
    with pytest.raises(ModelError, match="is a folder; pass a .tflite file"):
        CountModel(tmp_path)


def test_count_model_empty_file(tmp_path):
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    with pytest.raises(ModelError, match=r"empty.tflite: the model file is empty \(0 bytes\)"):
        CountModel(empty)


def test_count_model_not_tflite(tmp_path, real_photo_paths):
    photo = tmp_path / "photo.tflite"
    photo.write_bytes(real_photo_paths[0].read_bytes())
    with pytest.raises(ModelError, match="photo.tflite: not a TFLite model"):
        CountModel(photo)


def test_count_model_keras_file_passed(tiny_run):
    with pytest.raises(ModelError, match="model.keras: not a TFLite model.*'edgecount convert'"):
        CountModel(tiny_run / "model.keras")


@pytest.mark.parametrize("keep", [0.5, 0.1, 0.98])
def test_count_model_truncated_file(tiny_run, tmp_path, keep):
    data = (tiny_run / "model_int8.tflite").read_bytes()
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelError, match="truncated.tflite: the TFLite FlatBuffer is truncated or corrupt"):
        CountModel(truncated)


def test_count_model_zeroed_body(tiny_run, tmp_path):
    data = (tiny_run / "model_float32.tflite").read_bytes()
    zeroed = tmp_path / "zeroed.tflite"
    zeroed.write_bytes(data[:8] + bytes(len(data) - 8))
    with pytest.raises(ModelError, match="zeroed.tflite: the"):
        CountModel(zeroed)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_count_model_unreadable(tiny_run, tmp_path):
    locked = tmp_path / "locked.tflite"
    locked.write_bytes((tiny_run / "model_int8.tflite").read_bytes())
    locked.chmod(0)
    with pytest.raises(ModelError, match="cannot read the model file"):
        CountModel(locked)


def test_count_model_gray_input(odd_models):
    with pytest.raises(ModelError, match=r"gray.tflite: the input has shape \[1, 32, 32, 1\]; a counting model takes one RGB image"):
        CountModel(odd_models["gray"])


def test_count_model_two_outputs(odd_models):
    with pytest.raises(ModelError, match="two_outputs.tflite: the model has 2 outputs; a counting model returns one count"):
        CountModel(odd_models["two_outputs"])


def test_count_model_two_inputs(odd_models):
    with pytest.raises(ModelError, match="two_inputs.tflite: the model has 2 inputs"):
        CountModel(odd_models["two_inputs"])


def test_count_model_imagenet_classifier(classifier_tflite):
    with pytest.raises(ModelError, match=r"mobilenet_v2_1.0_224_quant.tflite: the output has shape \[1, 1001\].*classifier"):
        CountModel(classifier_tflite)


def test_count_model_rejects_zero_threads(tiny_run):
    with pytest.raises(ValueError, match="num_threads must be 1 or more, got 0"):
        CountModel(tiny_run / "model_int8.tflite", num_threads=0)


def test_count_model_unknown_backend(tiny_run):
    with pytest.raises(ValueError, match="unknown backend 'onnx'; choose one of: auto, litert"):
        CountModel(tiny_run / "model_int8.tflite", backend="onnx")


def test_count_model_tensorflow_backend_agrees(tiny_run, real_photo_paths):
    frame = load_image(real_photo_paths[2])
    litert = CountModel(tiny_run / "model_float32.tflite", num_threads=1, backend="litert").predict(frame)
    tensorflow = CountModel(tiny_run / "model_float32.tflite", num_threads=1, backend="tensorflow").predict(frame)
    assert tensorflow == pytest.approx(litert, abs=1e-4)
