"""Op versions of converted models stay loadable by tflite-runtime 2.14, the last tflite-runtime release."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from edgecount.converters import QuantMode, convert_keras_model
from edgecount.converters.op_versions import lower_single_scale_fully_connected
from edgecount.runtime.backends import (
    TFLITE_RUNTIME_2_14_OP_VERSIONS,
    find_ops_missing_from_tflite_runtime,
    read_operator_versions,
)
from edgecount.runtime.metadata import FlatBufferError

FULLY_CONNECTED = 9


def _hidden_dense_model():
    """A 32 -> 64 -> 1 model: the hidden kernel has 2,048 weights, above the 1,024 below which dynamic
    range quantization keeps weights in float, and a different scale per output unit."""
    import keras

    inputs = keras.Input((32,))
    hidden = keras.layers.Dense(64, activation="relu")
    outputs = keras.layers.Dense(1)(hidden(inputs))
    model = keras.Model(inputs, outputs)
    kernel, bias = hidden.get_weights()
    hidden.set_weights([kernel * np.linspace(0.1, 4.0, 64, dtype=np.float32), bias])
    return model


def _count_head_model():
    """A 1280 -> 1 dense layer, the shape of the count head on MobileNetV2's pooled features."""
    import keras

    inputs = keras.Input((1280,))
    return keras.Model(inputs, keras.layers.Dense(1)(inputs))


def _default_dynamic_conversion(model) -> bytes:
    import tensorflow as tf

    # TensorFlow's own dynamic-range conversion, without edgecount's settings.
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return bytes(converter.convert())


def _litert_outputs(data: bytes, inputs: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    outputs = []
    for row in inputs:
        interpreter.set_tensor(input_index, row[np.newaxis])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(output_index).reshape(-1)[0])
    return np.array(outputs)


def _operator_versions_from_tensorflow(data: bytes) -> dict[int, int]:
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    versions: dict[int, int] = {}
    for code in model.operatorCodes:
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        versions[builtin] = max(code.version, versions.get(builtin, 0))
    return versions


@pytest.mark.parametrize("mode", list(QuantMode))
def test_converted_model_loads_in_tflite_runtime_2_14(tiny_run: Path, mode: QuantMode):
    data = (tiny_run / mode.file_name).read_bytes()

    assert find_ops_missing_from_tflite_runtime(data) == []


@pytest.mark.parametrize("mode", list(QuantMode))
def test_read_operator_versions_matches_tensorflow(tiny_run: Path, mode: QuantMode):
    data = (tiny_run / mode.file_name).read_bytes()

    assert read_operator_versions(data) == _operator_versions_from_tensorflow(data)


@pytest.fixture(scope="module")
def hidden_dense_model():
    return _hidden_dense_model()


@pytest.fixture(scope="module")
def count_head_model():
    return _count_head_model()


@pytest.fixture(scope="module")
def default_conversions(hidden_dense_model, count_head_model) -> dict[str, bytes]:
    return {
        "hidden_dense": _default_dynamic_conversion(hidden_dense_model),
        "count_head": _default_dynamic_conversion(count_head_model),
    }


@pytest.mark.parametrize("name", ["hidden_dense", "count_head"])
def test_default_dynamic_conversion_writes_fully_connected_12(default_conversions: dict[str, bytes], name: str):
    assert read_operator_versions(default_conversions[name])[FULLY_CONNECTED] == 12


@pytest.mark.parametrize("name", ["hidden_dense", "count_head"])
def test_dynamic_dense_layers_avoid_fully_connected_12(request: pytest.FixtureRequest, name: str):
    model = request.getfixturevalue(f"{name}_model")

    data = convert_keras_model(model, QuantMode.DYNAMIC)

    assert read_operator_versions(data)[FULLY_CONNECTED] == 9
    assert find_ops_missing_from_tflite_runtime(data) == []


def test_lowered_count_head_computes_the_same(default_conversions: dict[str, bytes]):
    data = default_conversions["count_head"]
    inputs = np.random.default_rng(0).normal(size=(8, 1280)).astype(np.float32)

    lowered = lower_single_scale_fully_connected(data)

    assert read_operator_versions(lowered)[FULLY_CONNECTED] == 9
    np.testing.assert_array_equal(_litert_outputs(lowered, inputs), _litert_outputs(data, inputs))


def test_lower_keeps_per_channel_weights_at_12(default_conversions: dict[str, bytes]):
    data = default_conversions["hidden_dense"]

    assert lower_single_scale_fully_connected(data) is data


def test_per_channel_dense_weights_are_reported_missing(default_conversions: dict[str, bytes]):
    missing = find_ops_missing_from_tflite_runtime(default_conversions["hidden_dense"])

    assert len(missing) == 1
    assert missing[0].startswith("FULLY_CONNECTED version 12")
    assert "versions 1 to 10" in missing[0]


def test_read_operator_versions_rejects_non_tflite():
    with pytest.raises(FlatBufferError, match="no TFL3 identifier"):
        read_operator_versions(b"\x00" * 64)


def test_read_operator_versions_rejects_truncated_model(tiny_run: Path):
    data = (tiny_run / QuantMode.FLOAT32.file_name).read_bytes()

    with pytest.raises(FlatBufferError, match="outside the"):
        read_operator_versions(data[:64])


@pytest.mark.skipif(
    importlib.util.find_spec("tflite_runtime") is None,
    reason="tflite-runtime is an optional backend (pip install 'edgecount[tflite-runtime]', Python 3.11 or older)",
)
@pytest.mark.parametrize("mode", list(QuantMode))
def test_converted_model_runs_in_tflite_runtime(tiny_run: Path, mode: QuantMode):
    from tflite_runtime.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tiny_run / mode.file_name))
    interpreter.allocate_tensors()
    interpreter.invoke()

    assert interpreter.get_output_details()[0]["shape"].tolist() == [1, 1]
