"""Reading the edgecount metadata stored inside a ``.tflite`` file, without TensorFlow.

A TFLite model is a FlatBuffer (schema ``tflite/schema.fbs``, file identifier ``TFL3``). Its root
``Model`` table has a ``metadata`` vector of ``(name, buffer index)`` entries; edgecount stores one
entry named ``edgecount`` whose buffer is UTF-8 JSON. This module reads that entry with ``struct``
alone, so the runtime needs neither TensorFlow nor the ``flatbuffers`` package.
"""

from __future__ import annotations

import json
import struct
from typing import Any

METADATA_NAME = "edgecount"
TFLITE_IDENTIFIER = b"TFL3"

# Field numbers in tflite/schema.fbs.
_MODEL_BUFFERS = 4
_MODEL_METADATA = 6
_METADATA_NAME = 0
_METADATA_BUFFER = 1
_BUFFER_DATA = 0
_BUFFER_OFFSET = 1
_BUFFER_SIZE = 2


class FlatBufferError(ValueError):
    """The bytes are not a well-formed TFLite FlatBuffer."""


class _Table:
    """A FlatBuffer table: a position in the buffer and its vtable."""

    def __init__(self, data: bytes, position: int) -> None:
        self.data = data
        self.position = position
        vtable = position - _read(data, "<i", position)
        self.vtable = vtable
        self.vtable_size = _read(data, "<H", vtable)

    def field_position(self, field: int) -> int | None:
        entry = 4 + 2 * field
        if entry >= self.vtable_size:
            return None
        offset = _read(self.data, "<H", self.vtable + entry)
        return self.position + offset if offset else None

    def scalar(self, field: int, fmt: str, default: int) -> int:
        position = self.field_position(field)
        return default if position is None else _read(self.data, fmt, position)

    def indirect(self, field: int) -> int | None:
        position = self.field_position(field)
        return None if position is None else position + _read(self.data, "<I", position)

    def vector(self, field: int) -> tuple[int, int] | None:
        """Return ``(first element position, length)`` of a vector field."""
        position = self.indirect(field)
        if position is None:
            return None
        return position + 4, _read(self.data, "<I", position)

    def table_vector(self, field: int) -> list[_Table]:
        vector = self.vector(field)
        if vector is None:
            return []
        start, length = vector
        tables = []
        for index in range(length):
            element = start + 4 * index
            tables.append(_Table(self.data, element + _read(self.data, "<I", element)))
        return tables

    def string(self, field: int) -> bytes | None:
        vector = self.vector(field)
        if vector is None:
            return None
        start, length = vector
        return _slice(self.data, start, length)


def _read(data: bytes, fmt: str, position: int) -> int:
    size = struct.calcsize(fmt)
    if position < 0 or position + size > len(data):
        raise FlatBufferError(f"offset {position} is outside the {len(data)}-byte file")
    return struct.unpack_from(fmt, data, position)[0]


def _slice(data: bytes, start: int, length: int) -> bytes:
    if start < 0 or start + length > len(data):
        raise FlatBufferError(f"a {length}-byte field at offset {start} is outside the {len(data)}-byte file")
    return bytes(data[start : start + length])


def is_tflite(data: bytes) -> bool:
    """Return whether the bytes carry the TFLite FlatBuffer file identifier ``TFL3``."""
    return len(data) >= 8 and data[4:8] == TFLITE_IDENTIFIER


def read_metadata_entries(data: bytes) -> dict[str, bytes]:
    """Read every metadata entry of a TFLite model.

    Args:
        data: the whole ``.tflite`` file.

    Returns:
        A mapping from entry name to its buffer bytes.

    Raises:
        FlatBufferError: if the file is not a TFLite FlatBuffer or an offset points outside it.
    """
    if not is_tflite(data):
        raise FlatBufferError("the file has no TFL3 identifier, so it is not a TFLite model")
    model = _Table(data, _read(data, "<I", 0))
    buffers = model.table_vector(_MODEL_BUFFERS)

    entries = {}
    for entry in model.table_vector(_MODEL_METADATA):
        name = entry.string(_METADATA_NAME)
        index = entry.scalar(_METADATA_BUFFER, "<I", 0)
        if name is None or index >= len(buffers):
            continue
        entries[name.decode("utf-8", "replace")] = _buffer_bytes(data, buffers[index])
    return entries


def _buffer_bytes(data: bytes, buffer: _Table) -> bytes:
    # Models above 2 GB keep buffers after the FlatBuffer and store their offset and size instead.
    offset = buffer.scalar(_BUFFER_OFFSET, "<Q", 0)
    if offset > 1:
        return _slice(data, offset, buffer.scalar(_BUFFER_SIZE, "<Q", 0))
    vector = buffer.vector(_BUFFER_DATA)
    if vector is None:
        return b""
    start, length = vector
    return _slice(data, start, length)


def read_edgecount_metadata(data: bytes) -> dict[str, Any] | None:
    """Read the JSON metadata that ``edgecount convert`` embeds.

    Args:
        data: the whole ``.tflite`` file.

    Returns:
        The decoded metadata, or None for a model that edgecount did not write.

    Raises:
        FlatBufferError: if the file is not a TFLite FlatBuffer or its metadata entry is not JSON.
    """
    raw = read_metadata_entries(data).get(METADATA_NAME)
    if raw is None:
        return None
    try:
        metadata = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FlatBufferError(f"the {METADATA_NAME!r} metadata entry is not valid JSON: {error}") from error
    if not isinstance(metadata, dict):
        raise FlatBufferError(f"the {METADATA_NAME!r} metadata entry is JSON but not an object")
    return metadata
