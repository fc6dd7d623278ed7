"""Reading the edgecount metadata entry of real .tflite files with struct alone."""

from __future__ import annotations

import pytest

from edgecount.converters import embed_metadata
from edgecount.runtime import read_edgecount_metadata
from edgecount.runtime.metadata import FlatBufferError, is_tflite, read_metadata_entries


@pytest.mark.parametrize("mode", ["float32", "float16", "dynamic", "int8"])
def test_read_edgecount_metadata_every_mode(tiny_run, mode):
    metadata = read_edgecount_metadata((tiny_run / f"model_{mode}.tflite").read_bytes())
    assert metadata["quantization"] == mode
    assert metadata["input_size"] == [96, 96]
    assert metadata["alpha"] == 0.35


def test_read_edgecount_metadata_foreign_model(classifier_tflite):
    data = classifier_tflite.read_bytes()
    assert is_tflite(data)
    assert read_edgecount_metadata(data) is None
    assert "edgecount" not in read_metadata_entries(data)


def test_read_edgecount_metadata_not_tflite(real_photo_paths):
    with pytest.raises(FlatBufferError, match="no TFL3 identifier"):
        read_edgecount_metadata(real_photo_paths[0].read_bytes())


def test_read_edgecount_metadata_truncated(tiny_run):
    data = (tiny_run / "model_int8.tflite").read_bytes()
    with pytest.raises(FlatBufferError, match="outside the"):
        read_edgecount_metadata(data[: len(data) // 2])


def test_read_edgecount_metadata_not_json(tiny_run):
    data = embed_metadata((tiny_run / "model_float32.tflite").read_bytes(), {"quantization": "float32"})
    broken = data.replace(b'{"quantization": "float32"}', b'{"quantization": "float32"!')
    if broken == data:
        pytest.skip("the embedded JSON is not stored byte for byte as json.dumps writes it")
    with pytest.raises(FlatBufferError, match="is not valid JSON"):
        read_edgecount_metadata(broken)
