"""Making a TFLite FlatBuffer smaller without changing what it computes.

TensorFlow's converter writes two kinds of repetition, which cost the int8 count model 13% of its size:

- Each per-channel quantized weight and bias has its own vector of int64 zero points, all zero. The
  alpha 0.35 MobileNetV2 count model has about 14,700 of them: 117 KB of its 0.99 MB as int8.
- Each tensor is named after every op fused into it, joined with ``;`` and each with the full Keras
  scope, so names average about 280 characters (about 50 KB per model, in every mode).

``compact_model`` stores each distinct quantization vector once and points every tensor that has the
same one at it (FlatBuffers allows several tables to reference one vector), and keeps the first op's
name of a fused name. Weights, scales, shapes and signatures are unchanged, so every output is
bit-identical (``tests/converters/test_compact.py`` checks it on all four modes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgecount.runtime.metadata import is_tflite
from edgecount.tensorflow_import import import_tensorflow

# Dtypes of the vectors in QuantizationParameters: scale, min, max (float32) and zero_point (int64).
# Weight buffers are uint8 vectors and are never shared.
SHARED_VECTOR_DTYPES = (np.dtype(np.float32), np.dtype(np.int64))

FUSED_NAME_SEPARATOR = ";"
TFLITE_FILE_IDENTIFIER = b"TFL3"


def compact_model(model_bytes: bytes) -> bytes:
    """Return the same TFLite model with repeated quantization vectors shared and fused names shortened.

    Raises:
        ValueError: if the bytes are not a TFLite model.
    """
    if not is_tflite(model_bytes):
        raise ValueError("cannot compact the model: the bytes are not a TFLite model (no TFL3 identifier)")
    import_tensorflow("compacting a .tflite model")
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
    shorten_fused_names(model)
    return pack_model(model)


def pack_model(model: Any) -> bytes:
    """Serialise a TFLite model object (``schema_py_generated.ModelT``), sharing repeated quantization vectors.

    Every edit of a compacted model packs it with this function, so that the edit keeps the sharing.
    """
    builder = _vector_sharing_builder()
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_FILE_IDENTIFIER)
    return bytes(builder.Output())


def shorten_fused_names(model: Any) -> None:
    """Keep the first op's name of each fused tensor name (``a;b;c`` becomes ``a``), in place."""
    for subgraph in model.subgraphs or []:
        for tensor in subgraph.tensors or []:
            name = tensor.name.decode("utf-8") if isinstance(tensor.name, bytes) else tensor.name
            if name and FUSED_NAME_SEPARATOR in name:
                tensor.name = first_op_name(name)


def first_op_name(name: str) -> str:
    """Return the first op's part of a fused tensor name (``a;b;c`` gives ``a``)."""
    return name.split(FUSED_NAME_SEPARATOR, 1)[0]


def _vector_sharing_builder() -> Any:
    import flatbuffers

    class VectorSharingBuilder(flatbuffers.Builder):
        """Writes each distinct float32 or int64 vector once and returns its offset for every copy.

        The Python builder's offsets count from the end of the buffer, which does not move while the
        buffer grows towards its start, so an offset stays valid for every table packed after it.
        """

        def __init__(self, initial_size: int) -> None:
            super().__init__(initial_size)
            self._written: dict[tuple[str, bytes], int] = {}

        def CreateNumpyVector(self, x: Any) -> int:  # noqa: N802 - overrides flatbuffers' method name
            array = np.asarray(x)
            if array.ndim != 1 or array.dtype not in SHARED_VECTOR_DTYPES:
                return super().CreateNumpyVector(x)
            key = (array.dtype.str, array.tobytes())
            offset = self._written.get(key)
            if offset is None:
                offset = super().CreateNumpyVector(array)
                self._written[key] = offset
            return offset

    return VectorSharingBuilder(1024)
