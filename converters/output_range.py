"""Headroom above the calibrated range for the count an int8 model returns.

Full-integer conversion gives the count, like every tensor, the range seen on the calibration images.
The count then saturates at the largest count predicted during calibration: with 200 training photos
whose largest prediction was 22.6 faces, a photo of a crowd would never be counted above 22.6.
``widen_count_range`` doubles the range of the int8 tensor that contains the count before it is
dequantized. That doubles the output step (for that model from 0.089 to 0.177 faces, a rounding error
of 0.05 faces RMS), and leaves every other tensor as calibrated.

This is exact for the ops allowed below: their int8 kernels derive the output rescaling from the
tensors' scales when the model is loaded, so a new output scale changes only where the result is
rounded. A count made by any other op keeps its calibrated range.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from edgecount.converters.ops import operator_name
from edgecount.tensorflow_import import import_tensorflow

_log = logging.getLogger(__name__)

COUNT_RANGE_FACTOR = 2.0

# Ops whose int8 kernels compute their requantization from the output tensor's scale at load time,
# and that end a head with a linear count output.
# NOTE: a head trained with --target sqrt or log ends in MUL or ADD after the transform's inverse. Its
# count stays capped by the calibrated ranges of the tensors before that op, so widening only the last
# one would cost resolution and gain nothing: those models keep the calibrated range.
RESCALABLE_OPS = frozenset({"FULLY_CONNECTED", "CONV_2D"})


def widen_count_range(model_bytes: bytes, factor: float = COUNT_RANGE_FACTOR) -> bytes:
    """Return the int8 model with the range of its count tensor multiplied by ``factor``.

    The lower end of the range (normally 0 faces) stays where it is. A model whose output is not
    ``DEQUANTIZE`` of an int8 tensor made by one of ``RESCALABLE_OPS`` is returned unchanged.
    """
    if factor <= 1.0:
        raise ValueError(f"the count range factor must be above 1, got {factor}")
    import_tensorflow("editing a .tflite model")
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    from edgecount.converters.compact import pack_model

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
    tensor = _count_tensor(model, schema)
    if tensor is None:
        return model_bytes
    quantization = tensor.quantization
    scale = float(np.asarray(quantization.scale).reshape(-1)[0])
    zero_point = int(np.asarray(quantization.zeroPoint).reshape(-1)[0])
    low = (-128 - zero_point) * scale
    new_scale = scale * factor
    new_zero_point = int(np.clip(round(-128 - low / new_scale), -128, 127))
    quantization.scale = np.array([new_scale], dtype=np.float32)
    quantization.zeroPoint = np.array([new_zero_point], dtype=np.int64)
    _log.info(
        "int8 count range widened from %.2f..%.2f to %.2f..%.2f faces (step %.3f)",
        low, (127 - zero_point) * scale, (-128 - new_zero_point) * new_scale, (127 - new_zero_point) * new_scale, new_scale,
    )
    return pack_model(model)


def _count_tensor(model: Any, schema: Any) -> Any:
    """Find the int8 tensor dequantized into the model's single output; None when it cannot be rescaled."""
    subgraph = model.subgraphs[0]
    if len(subgraph.outputs) != 1:
        return None
    operators = subgraph.operators or []

    producers = {int(out): op for op in operators for out in op.outputs}
    dequantize = producers.get(int(subgraph.outputs[0]))
    if dequantize is None or operator_name(model, dequantize) != "DEQUANTIZE":
        return None
    count_index = int(dequantize.inputs[0])
    consumers = [op for op in operators if count_index in [int(i) for i in op.inputs]]
    maker = producers.get(count_index)
    tensor = subgraph.tensors[count_index]
    quantization = tensor.quantization
    if (
        maker is None
        or operator_name(model, maker) not in RESCALABLE_OPS
        or len(consumers) != 1
        or tensor.type != schema.TensorType.INT8
        or quantization is None
        or quantization.scale is None
        or len(quantization.scale) != 1
    ):
        _log.debug("int8 count range left as calibrated: the output is not a rescalable int8 tensor")
        return None
    return tensor
