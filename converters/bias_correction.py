"""Empirical bias correction of a full-integer int8 model.

Rounding weights and activations to int8 shifts the mean output of each convolution a little, per
channel, and the shifts add up through the network. The correction runs the float32 model and the
int8 model on the same calibration images, and layer by layer, in graph order, adds the mean
difference of each output channel to that channel's int32 bias. Each layer is measured after the
layers before it were corrected, so a shift is not corrected twice.

On the alpha 0.35 count model (224x224, 560 validation photos), 64 calibration images lowered the int8
RMSE from 1.690 to 1.643 against 1.631 for float32, and took about a minute on 2 shared x86 cores.

Only the int32 bias values change: the file size, the ops and their speed stay the same. The result
is checked on the same images, and the uncorrected model is kept when the correction moves the
count further from float32.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecount.converters.compact import first_op_name, pack_model
from edgecount.converters.ops import operator_name
from edgecount.runtime.model import TensorSpec, quantize
from edgecount.tensorflow_import import import_tensorflow

_log = logging.getLogger(__name__)

CORRECTION_SAMPLES = 64
CORRECTED_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"})


@dataclass
class BiasCorrection:
    """The outcome of one correction: what changed and how close the count came to float32."""

    layers: int
    samples: int
    error_before: float
    error_after: float
    applied: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": self.layers,
            "samples": self.samples,
            "mean_abs_difference_from_float32_before": self.error_before,
            "mean_abs_difference_from_float32_after": self.error_after,
            "applied": self.applied,
        }


def correct_int8_bias(int8_model: bytes, float_model: bytes, samples: Sequence[np.ndarray]) -> tuple[bytes, BiasCorrection]:
    """Return the int8 model with its convolution and dense biases corrected towards the float32 model.

    Args:
        int8_model: a full-integer model from ``convert_keras_model(..., "int8")``.
        float_model: the float32 model converted from the same Keras model.
        samples: calibration inputs, float32 ``(1, height, width, 3)`` arrays of pixels in 0..255.

    Returns:
        ``(model bytes, BiasCorrection)``; the bytes are the input model when nothing was corrected.
    """
    import_tensorflow("correcting int8 biases")
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils


    if not samples:
        raise ValueError("bias correction needs at least one calibration sample")
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(int8_model))
    layers = _correctable_layers(model, schema)
    float_means, float_counts = _float_channel_means(float_model, model, layers, samples)
    error_before = _count_error(int8_model, samples, float_counts)

    for op, float_mean in zip(layers, float_means):
        if float_mean is None:
            continue
        int8_mean = _int8_channel_mean(pack_model(model), model, op, samples)
        _add_to_bias(model, op, float_mean - int8_mean)

    corrected = pack_model(model)
    error_after = _count_error(corrected, samples, float_counts)
    applied = error_after <= error_before
    corrected_layers = sum(mean is not None for mean in float_means)
    _log.info(
        "int8 bias correction on %d layers with %d images: mean |int8 - float32| count %.4f -> %.4f%s",
        corrected_layers, len(samples), error_before, error_after, "" if applied else " (worse, so not applied)",
    )
    report = BiasCorrection(corrected_layers, len(samples), error_before, error_after, applied)
    return (corrected if applied else int8_model), report


def spread_samples(representative_dataset: Any, limit: int) -> list[np.ndarray]:
    """Pick ``limit`` inputs evenly spread over a representative dataset, which is ordered by count."""
    samples = [batch[0] for batch in representative_dataset()]
    if len(samples) <= limit:
        return samples
    return [samples[int(position)] for position in np.linspace(0, len(samples) - 1, limit)]


def _correctable_layers(model: Any, schema: Any) -> list[Any]:
    """List the ops with a per-channel int32 bias, in graph order."""
    subgraph = model.subgraphs[0]
    layers = []
    for op in subgraph.operators:
        if operator_name(model, op) not in CORRECTED_OPS or len(op.inputs) < 3 or op.inputs[2] < 0:
            continue
        bias = subgraph.tensors[op.inputs[2]]
        output = subgraph.tensors[op.outputs[0]]
        if bias.type == schema.TensorType.INT32 and output.type == schema.TensorType.INT8 and bias.quantization is not None:
            layers.append(op)
    return layers


def _tensor_name(tensor: Any) -> str:
    return tensor.name.decode("utf-8") if isinstance(tensor.name, bytes) else str(tensor.name)


def _debug_interpreter(model_bytes: bytes) -> Any:
    """Create an interpreter that keeps every intermediate tensor readable after ``invoke``."""
    from edgecount.runtime.backends import load_backend

    interpreter_class = load_backend("auto").interpreter_class
    with warnings.catch_warnings():
        # LiteRT warns that keeping every tensor uses more memory, which is the point here.
        warnings.simplefilter("ignore", UserWarning)
        interpreter = interpreter_class(model_content=model_bytes, experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    return interpreter


def _run(interpreter: Any, sample: np.ndarray) -> None:
    """Feed one float32 sample of pixels in 0..255 through the interpreter, quantized as the runtime does."""
    spec = TensorSpec.from_details(interpreter.get_input_details()[0])
    interpreter.set_tensor(spec.index, quantize(sample, spec))
    interpreter.invoke()


def _float_channel_means(float_model: bytes, model: Any, layers: list[Any], samples: Sequence[np.ndarray]) -> tuple[list[Any], np.ndarray]:
    """Compute each layer's per-channel mean output in the float32 model, matched by tensor name.

    Names are compared by their first op (``compact.first_op_name``). The int8 tensor that is
    dequantized into the model output has no float twin by name, so it is
    matched with the float model's output. A layer without a match gets None and is not corrected.
    """
    subgraph = model.subgraphs[0]
    interpreter = _debug_interpreter(float_model)
    by_name = {first_op_name(detail["name"]): detail["index"] for detail in interpreter.get_tensor_details()}
    output_index = interpreter.get_output_details()[0]["index"]
    dequantized_output = {int(op.inputs[0]) for op in subgraph.operators if list(op.outputs) == list(subgraph.outputs)}

    indices = []
    for op in layers:
        tensor_index = int(op.outputs[0])
        name = first_op_name(_tensor_name(subgraph.tensors[tensor_index]))
        indices.append(output_index if tensor_index in dequantized_output else by_name.get(name))

    sums: list[Any] = [None] * len(layers)
    counts = []
    for sample in samples:
        _run(interpreter, sample)
        counts.append(float(interpreter.get_tensor(output_index).reshape(-1)[0]))
        for position, index in enumerate(indices):
            if index is None:
                continue
            value = interpreter.get_tensor(index).astype(np.float64)
            channel_mean = value.reshape(-1, value.shape[-1]).mean(axis=0)
            sums[position] = channel_mean if sums[position] is None else sums[position] + channel_mean
    means = [None if total is None else total / len(samples) for total in sums]
    return means, np.array(counts)


def _int8_channel_mean(model_bytes: bytes, model: Any, op: Any, samples: Sequence[np.ndarray]) -> np.ndarray:
    """Compute the per-channel mean of one layer's dequantized int8 output."""
    tensor_index = int(op.outputs[0])
    quantization = model.subgraphs[0].tensors[tensor_index].quantization
    scale = float(np.asarray(quantization.scale).reshape(-1)[0])
    zero_point = int(np.asarray(quantization.zeroPoint).reshape(-1)[0])
    interpreter = _debug_interpreter(model_bytes)
    total = None
    for sample in samples:
        _run(interpreter, sample)
        value = (interpreter.get_tensor(tensor_index).astype(np.float64) - zero_point) * scale
        channel_mean = value.reshape(-1, value.shape[-1]).mean(axis=0)
        total = channel_mean if total is None else total + channel_mean
    return total / len(samples)


def _add_to_bias(model: Any, op: Any, shift: np.ndarray) -> None:
    """Add ``shift`` (real units, one value per output channel) to the op's int32 bias, in place."""
    subgraph = model.subgraphs[0]
    bias_tensor = subgraph.tensors[op.inputs[2]]
    buffer = model.buffers[bias_tensor.buffer]
    bias = np.frombuffer(np.asarray(buffer.data, dtype=np.uint8).tobytes(), dtype=np.int32).astype(np.int64)
    scales = np.asarray(bias_tensor.quantization.scale, dtype=np.float64)
    step = np.round(shift / scales)
    info = np.iinfo(np.int32)
    bias = np.clip(bias + step.astype(np.int64), info.min, info.max).astype(np.int32)
    buffer.data = np.frombuffer(bias.tobytes(), dtype=np.uint8)


def _count_error(model_bytes: bytes, samples: Sequence[np.ndarray], float_counts: np.ndarray) -> float:
    """Measure the mean |int8 count - float32 count| over the samples."""
    from edgecount.runtime.backends import load_backend

    interpreter = load_backend("auto").interpreter_class(model_content=model_bytes)
    interpreter.allocate_tensors()
    output_index = interpreter.get_output_details()[0]["index"]
    counts = []
    for sample in samples:
        _run(interpreter, sample)
        counts.append(float(interpreter.get_tensor(output_index).reshape(-1)[0]))
    return float(np.mean(np.abs(np.array(counts) - float_counts)))
