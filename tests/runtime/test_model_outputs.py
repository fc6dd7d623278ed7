"""CountModel on models that load but cannot count: NaN outputs and dynamic input sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgecount.runtime import CountModel, ModelError


def _convert(model) -> bytes:
    import tensorflow as tf

    return bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())


@pytest.fixture(scope="module")
def broken_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import keras

    folder = tmp_path_factory.mktemp("broken_models")

    # log(-1 - mean pixel) is NaN for every image.
    inputs = keras.Input((16, 16, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    summed = keras.layers.Dense(1, kernel_initializer="ones", bias_initializer="zeros")(pooled)
    nan_output = keras.layers.Lambda(lambda value: keras.ops.log(-1.0 - keras.ops.abs(value)))(summed)
    (folder / "nan.tflite").write_bytes(_convert(keras.Model(inputs, nan_output)))

    dynamic_inputs = keras.Input((None, None, 3))
    dynamic_output = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(dynamic_inputs))
    (folder / "dynamic.tflite").write_bytes(_convert(keras.Model(dynamic_inputs, dynamic_output)))
    return {"nan": folder / "nan.tflite", "dynamic": folder / "dynamic.tflite"}


def test_predict_rejects_nan_output(broken_models):
    model = CountModel(broken_models["nan"])

    with pytest.raises(ModelError, match="instead of a count") as raised:
        model.predict(np.full((40, 60, 3), 100, dtype=np.uint8))

    assert "nan.tflite" in str(raised.value)


def test_model_rejects_dynamic_input_size(broken_models):
    with pytest.raises(ModelError, match="input size is dynamic") as raised:
        CountModel(broken_models["dynamic"])

    assert "fixed input shape" in str(raised.value)


def test_count_reports_nan_model_per_file(broken_models, real_photo_paths, run_cli):
    code, out, err = run_cli("count", broken_models["nan"], real_photo_paths[0], "--json")

    assert code == 1
    assert "instead of a count" in out
