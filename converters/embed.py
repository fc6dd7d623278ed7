"""Embedding edgecount's JSON metadata in a ``.tflite`` FlatBuffer.

The runtime reads it back with ``edgecount.runtime.metadata.read_edgecount_metadata``. Writing uses
TensorFlow's own FlatBuffer schema bindings, which every TensorFlow install ships.
"""

from __future__ import annotations

import json
from typing import Any

from edgecount.converters.compact import pack_model
from edgecount.runtime.metadata import METADATA_NAME, is_tflite
from edgecount.tensorflow_import import import_tensorflow


def embed_metadata(model_bytes: bytes, metadata: dict[str, Any]) -> bytes:
    """Return a copy of a TFLite model with ``metadata`` stored as a JSON entry named ``edgecount``.

    An existing ``edgecount`` entry is replaced; other entries (the converter's own) are kept. The
    model is written with ``compact.pack_model``, so a compacted model stays compact.

    Args:
        model_bytes: a TFLite FlatBuffer.
        metadata: JSON-serialisable values.

    Raises:
        ValueError: if the bytes are not a TFLite model or the metadata is not JSON-serialisable.
    """
    if not is_tflite(model_bytes):
        raise ValueError("cannot embed metadata: the bytes are not a TFLite model (no TFL3 identifier)")
    payload = json.dumps(metadata, sort_keys=True, allow_nan=False).encode("utf-8")

    import_tensorflow("embedding metadata in a .tflite model")
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
    buffer = schema.BufferT()
    buffer.data = list(payload)

    entries = [entry for entry in (model.metadata or []) if _entry_name(entry) != METADATA_NAME]
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    entries.append(entry)
    model.metadata = entries
    return pack_model(model)


def _entry_name(entry: Any) -> str:
    name = entry.name
    return name.decode("utf-8") if isinstance(name, bytes) else str(name)
