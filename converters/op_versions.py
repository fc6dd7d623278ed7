"""Keeping dynamic-range models loadable by tflite-runtime 2.14, the last tflite-runtime release.

TensorFlow 2.21 gives a hybrid ``FULLY_CONNECTED`` (float input and output, int8 weights) version 12
when it counts the weights as per-channel quantized, and tflite-runtime 2.14 registers versions 1 to
10 only, so it fails with "Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'".

The converter option ``_experimental_disable_per_channel_quantization_for_dense_layers`` gives each
dense layer one weight scale. TensorFlow still picks version 12 for a dense layer with a single
output unit, the count head, because its one scale equals the number of output channels (the
``is_per_channel_quantized`` test of TensorFlow's ``op_version.cc``). A per-channel scale vector of
length one is the per-tensor case, so ``lower_single_scale_fully_connected`` gives such an op the
version it has without per-channel weights. LiteRT 2.3 computes bit-identical outputs for both
versions, with and without XNNPACK.
"""

from __future__ import annotations

from edgecount.tensorflow_import import import_tensorflow

FULLY_CONNECTED = 9
PER_CHANNEL_HYBRID_VERSION = 12


def lower_single_scale_fully_connected(model_bytes: bytes) -> bytes:
    """Lower version-12 hybrid ``FULLY_CONNECTED`` ops whose weights have one scale to version 3 to 9.

    Args:
        model_bytes: a ``.tflite`` FlatBuffer, normally from a dynamic-range conversion.

    Returns:
        The model with those op codes lowered, or the same bytes when no op code qualifies. An op code
        that any op with more than one weight scale uses keeps version 12.
    """
    import_tensorflow("lowering op versions of a .tflite model")
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
    candidates = {
        index
        for index, code in enumerate(model.operatorCodes)
        if max(code.builtinCode, code.deprecatedBuiltinCode) == FULLY_CONNECTED and code.version == PER_CHANNEL_HYBRID_VERSION
    }
    if not candidates:
        return model_bytes

    # Each candidate op code gets the highest version its ops need; None marks one that must stay at 12.
    lowered: dict[int, int | None] = {}
    for subgraph in model.subgraphs:
        for operator in subgraph.operators:
            if operator.opcodeIndex not in candidates:
                continue
            version = _version_without_per_channel(subgraph, operator, schema)
            previous = lowered.get(operator.opcodeIndex, 0)
            lowered[operator.opcodeIndex] = None if version is None or previous is None else max(version, previous)

    changed = False
    for index, version in lowered.items():
        if version is not None:
            model.operatorCodes[index].version = version
            changed = True
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)) if changed else model_bytes


def _version_without_per_channel(subgraph, operator, schema) -> int | None:
    """Return the version ``op_version.cc`` gives this hybrid op with per-tensor weights, or None if it
    is not a hybrid op with a single weight scale."""
    tensors = subgraph.tensors
    inputs = list(operator.inputs)
    if len(inputs) < 2 or inputs[0] < 0 or inputs[1] < 0:
        return None
    data, weights, output = tensors[inputs[0]], tensors[inputs[1]], tensors[operator.outputs[0]]
    if (data.type, weights.type, output.type) != (schema.TensorType.FLOAT32, schema.TensorType.INT8, schema.TensorType.FLOAT32):
        return None
    quantization = weights.quantization
    if quantization is None or quantization.scale is None or len(quantization.scale) != 1:
        return None

    # The checks that follow the per-channel one in op_version.cc, in the same order.
    options = operator.builtinOptions
    if weights.sparsity is not None:
        return 8
    if len(inputs) == 2:
        return 6
    if options is not None and options.keepNumDims:
        return 5
    if options is not None and options.asymmetricQuantizeInputs:
        return 9
    return 3
