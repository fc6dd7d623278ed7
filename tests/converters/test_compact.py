"""Compacted models compute the same counts; the int8 count keeps headroom above its calibrated range."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from edgecount.converters.compact import compact_model, shorten_fused_names
from edgecount.converters.output_range import COUNT_RANGE_FACTOR, widen_count_range
from edgecount.runtime.images import load_image
from edgecount.runtime.model import CountModel


@pytest.fixture(scope="module")
def raw_int8(tiny_run, tmp_path_factory):
    """The tiny run's model converted to int8 by TensorFlow alone: neither compacted nor widened."""
    import tensorflow as tf

    from edgecount.converters import load_calibration_frames, representative_samples
    from edgecount.runs import RunDir

    run = RunDir(tiny_run)
    model = run.load_keras_model()
    frames, _ = load_calibration_frames([sample.path for sample in run.samples("train")[:8]])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_samples(frames, (run.image_size, run.image_size))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.float32
    with contextlib.redirect_stdout(io.StringIO()):
        return bytes(converter.convert())


def _counts(data: bytes, path, photos) -> np.ndarray:
    path.write_bytes(data)
    model = CountModel(path, num_threads=1)
    return np.array([model.predict(load_image(photo)) for photo in photos])


def _tensor_names(data: bytes) -> list[str]:
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    return [tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name for tensor in model.subgraphs[0].tensors]


def test_compact_model_same_counts_smaller(raw_int8, tmp_path, real_photo_paths) -> None:
    photos = real_photo_paths[:6]
    compacted = compact_model(raw_int8)

    assert len(compacted) < 0.95 * len(raw_int8)
    assert np.array_equal(_counts(compacted, tmp_path / "compact.tflite", photos), _counts(raw_int8, tmp_path / "raw.tflite", photos))
    assert any(";" in name for name in _tensor_names(raw_int8))
    assert not any(";" in name for name in _tensor_names(compacted))


def test_compact_model_float_modes_same_counts(tiny_run, tmp_path, real_photo_paths) -> None:
    from tensorflow.lite.tools import flatbuffer_utils

    photos = real_photo_paths[:3]
    for mode in ("float32", "float16", "dynamic"):
        data = (tiny_run / f"model_{mode}.tflite").read_bytes()
        # Packing with TensorFlow's plain builder writes every vector again, as the converter does.
        expanded = bytes(flatbuffer_utils.convert_object_to_bytearray(flatbuffer_utils.convert_bytearray_to_object(bytearray(data))))
        compacted = compact_model(expanded)
        assert len(compacted) <= len(expanded)
        assert np.array_equal(_counts(compacted, tmp_path / f"{mode}_c.tflite", photos), _counts(expanded, tmp_path / f"{mode}.tflite", photos))


def test_compact_model_keeps_metadata(tiny_run) -> None:
    from edgecount.runtime.metadata import read_edgecount_metadata

    data = (tiny_run / "model_int8.tflite").read_bytes()
    assert read_edgecount_metadata(compact_model(data)) == read_edgecount_metadata(data)


def test_compact_model_not_tflite() -> None:
    with pytest.raises(ValueError, match="not a TFLite model"):
        compact_model(b"not a model at all")


def test_shorten_fused_names_keeps_first_op() -> None:
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT()
    subgraph = schema.SubGraphT()
    fused, plain = schema.TensorT(), schema.TensorT()
    fused.name, plain.name = b"net/conv/Relu6;net/conv_bn/add;net/conv/Conv2D", b"serving_default_image:0"
    subgraph.tensors = [fused, plain]
    model.subgraphs = [subgraph]
    shorten_fused_names(model)
    assert [fused.name, plain.name] == ["net/conv/Relu6", b"serving_default_image:0"]


def test_widen_count_range_doubles_range(raw_int8, tmp_path, real_photo_paths) -> None:
    photos = real_photo_paths[:6]
    widened = widen_count_range(raw_int8)
    raw_model = CountModel(_write(tmp_path / "raw.tflite", raw_int8))
    wide_model = CountModel(_write(tmp_path / "wide.tflite", widened))

    raw_scale, raw_zero_point = _count_quantization(raw_int8)
    wide_scale, _ = _count_quantization(widened)
    assert wide_scale == pytest.approx(raw_scale * COUNT_RANGE_FACTOR)
    raw_top = (127 - raw_zero_point) * raw_scale
    # Below the calibrated top only the rounding moves, by one new step at most. At the top the
    # calibrated model saturates, and the widened one goes on counting.
    for photo in photos:
        frame = load_image(photo)
        raw, wide = raw_model.predict(frame), wide_model.predict(frame)
        if raw >= raw_top - 1e-6:
            assert wide >= raw - wide_scale
        else:
            assert abs(wide - raw) <= wide_scale + 1e-6


def test_widen_count_range_factor_checked(raw_int8) -> None:
    with pytest.raises(ValueError, match="above 1, got 0.5"):
        widen_count_range(raw_int8, factor=0.5)


def test_widen_count_range_float_model_unchanged(tiny_run) -> None:
    data = (tiny_run / "model_float32.tflite").read_bytes()
    assert widen_count_range(data) == data


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _count_quantization(data: bytes) -> tuple[float, int]:
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    subgraph = model.subgraphs[0]
    producers = {int(out): op for op in subgraph.operators for out in op.outputs}
    dequantize = producers[int(subgraph.outputs[0])]
    quantization = subgraph.tensors[int(dequantize.inputs[0])].quantization
    return float(quantization.scale[0]), int(quantization.zeroPoint[0])


def test_widen_count_range_transformed_head_unchanged() -> None:
    import tensorflow as tf

    keras = tf.keras
    inputs = keras.Input(shape=(8, 8, 3), dtype="float32")
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    root = keras.layers.ReLU()(keras.layers.Dense(1)(x))
    # The inverse of a square-root target, as --target sqrt builds it: the count is root * root.
    count = keras.layers.Multiply()([root, root])
    model = keras.Model(inputs, count)
    rng = np.random.default_rng(0)

    def dataset():
        for _ in range(8):
            yield [rng.uniform(0, 255, size=(1, 8, 8, 3)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.float32
    with contextlib.redirect_stdout(io.StringIO()):
        data = bytes(converter.convert())

    assert widen_count_range(data) == data
