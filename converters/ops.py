"""Listing the ops of a converted model that still compute in float.

The TFLite converter in TensorFlow 2.21 does not enforce ``TFLITE_BUILTINS_INT8``: an op without an
int8 kernel (``SIN``, for example) is kept in float between a ``DEQUANTIZE`` and a ``QUANTIZE``, and the
conversion succeeds. ``float_ops`` finds such ops, so that an int8 conversion can fail and name them.
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any

from edgecount.tensorflow_import import import_tensorflow

# Ops that convert between float and integer tensors at the model's edges; they are expected in an int8 model.
_BOUNDARY_OPS = {"QUANTIZE", "DEQUANTIZE"}


def operator_name(model: Any, operator: Any) -> str:
    """Return the builtin op name (``CONV_2D``, ...) of an operator in a ``schema_py_generated.ModelT``, or ``CUSTOM``."""
    from tensorflow.lite.python import schema_py_generated as schema

    names = _builtin_names(schema)
    code = model.operatorCodes[operator.opcodeIndex]
    # Builtin codes above 127 are stored only in builtinCode; older ones in deprecatedBuiltinCode too.
    return names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")


@functools.cache
def _builtin_names(schema: Any) -> dict[int, str]:
    return {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}


def float_ops(model_bytes: bytes) -> Counter[str]:
    """Count the ops that take or produce float32 tensors, other than ``QUANTIZE`` and ``DEQUANTIZE``.

    Args:
        model_bytes: a ``.tflite`` FlatBuffer.

    Returns:
        Op name (``SIN``, ``CONV_2D``, ...) to how many times it computes in float; empty for a
        full-integer model.
    """
    import_tensorflow("inspecting a converted model")
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
    float32 = schema.TensorType.FLOAT32

    found: Counter[str] = Counter()
    for subgraph in model.subgraphs:
        for operator in subgraph.operators:
            name = operator_name(model, operator)
            if name in _BOUNDARY_OPS:
                continue
            tensors = [index for index in list(operator.inputs) + list(operator.outputs) if index >= 0]
            if any(subgraph.tensors[index].type == float32 for index in tensors):
                found[name] += 1
    return found
