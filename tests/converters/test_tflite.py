"""int8 conversion of an op without an int8 kernel fails with a message naming the op."""

from __future__ import annotations

import numpy as np
import pytest

from edgecount.converters import ConversionError, convert_keras_model


def test_int8_unquantizable_op_named() -> None:
    import tensorflow as tf

    keras = tf.keras
    inputs = keras.Input(shape=(8, 8, 3), dtype="float32")
    x = keras.layers.Lambda(lambda t: tf.math.sin(t), name="sine")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    rng = np.random.default_rng(0)

    def dataset():
        for _ in range(4):
            yield [rng.uniform(0, 255, size=(1, 8, 8, 3)).astype(np.float32)]

    with pytest.raises(ConversionError, match="(?i)int8 conversion failed") as raised:
        convert_keras_model(model, "int8", dataset)

    assert "sin" in str(raised.value).lower()


def test_float_ops_of_converted_models(tiny_run) -> None:
    from edgecount.converters.ops import float_ops

    assert float_ops((tiny_run / "model_int8.tflite").read_bytes()) == {}
    assert float_ops((tiny_run / "model_float32.tflite").read_bytes())["CONV_2D"] > 10


def test_write_model_file_permissions(tmp_path) -> None:
    import os
    import stat

    from edgecount.converters import ModelExistsError, write_model_file

    path = tmp_path / "model_float32.tflite"
    write_model_file(path, b"first")
    mask = os.umask(0o022)
    os.umask(mask)

    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    with pytest.raises(ModelExistsError, match="--force"):
        write_model_file(path, b"second")
    write_model_file(path, b"second", force=True)
    assert path.read_bytes() == b"second"
    assert [p.name for p in tmp_path.iterdir()] == ["model_float32.tflite"]
