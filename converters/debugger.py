"""Finding the layers that int8 quantization hurts most, and converting with those layers left in float.

TensorFlow's quantization debugger (``tf.lite.experimental.QuantizationDebugger``) runs a debug
model in which every quantized op is followed by a ``NumericVerify`` op that compares it with the
float op fed the same input. The error is reported per op output tensor. ``rmse/scale`` is the root
mean squared error in units of the tensor's quantization step: about 0.29 (``1/sqrt(12)``) is the
rounding error every int8 tensor has, and values far above it mark a layer whose range does not fit
8 bits.

A mixed model keeps the chosen tensors' ops in float32 (``denylisted_nodes``) and quantizes the rest.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgecount.converters.compact import compact_model
from edgecount.converters.representative import CalibrationError
from edgecount.converters.tflite import ConversionError, RepresentativeDataset
from edgecount.tensorflow_import import import_tensorflow

_log = logging.getLogger(__name__)

# The rounding error of a uniformly quantized tensor, in units of its scale.
ROUNDING_RMSE_PER_SCALE = 1.0 / math.sqrt(12.0)
# How many of the worst layers ``--keep-float auto`` keeps in float.
AUTO_KEEP_FLOAT_LAYERS = 5


@dataclass(frozen=True)
class LayerError:
    """The quantization error of one op output tensor, measured by the debugger."""

    tensor_name: str
    op_name: str
    num_elements: int
    rmse: float
    max_abs_error: float
    scale: float

    @property
    def short_name(self) -> str:
        """The tensor's layer path without the model-name prefix, e.g. ``block_16_project_BN_1/batchnorm/add_1``.

        The converter names a fused op's output after every op it fused, joined by ``;``; the first one
        names the layer.
        """
        parts = self.tensor_name.split(";")[0].split("/")
        while len(parts) > 2 and "mobilenetv2" in parts[0]:
            parts = parts[1:]
        return "/".join(parts)

    @property
    def rmse_per_scale(self) -> float:
        """RMSE in units of the quantization step; ``ROUNDING_RMSE_PER_SCALE`` is the floor."""
        return self.rmse / self.scale if self.scale > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {
            "tensor_name": self.tensor_name,
            "short_name": self.short_name,
            "op_name": self.op_name,
            "num_elements": self.num_elements,
            "rmse": self.rmse,
            "max_abs_error": self.max_abs_error,
            "scale": self.scale,
            "rmse_per_scale": self.rmse_per_scale,
        }


def _int8_converter(tf: Any, model: Any, representative_dataset: RepresentativeDataset, allow_float: bool) -> Any:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if allow_float:
        # The layers left in float need the float kernels beside the int8 ones.
        ops.append(tf.lite.OpsSet.TFLITE_BUILTINS)
    converter.target_spec.supported_ops = ops
    return converter


def rank_layer_errors(model: Any, representative_dataset: RepresentativeDataset) -> list[LayerError]:
    """Measure each quantized layer's error against float and return them worst first.

    Args:
        model: the Keras counting model.
        representative_dataset: calibration samples, as ``representative_samples`` returns them; the
            debugger calibrates on them and then measures the error on the same samples.

    Returns:
        One entry per quantized op output, sorted by ``rmse_per_scale``, largest first.

    Raises:
        CalibrationError: if the dataset is missing.
        ConversionError: if TensorFlow fails to build or run the debug model.
    """
    if representative_dataset is None:
        raise CalibrationError("the quantization debugger needs the representative dataset used for int8 calibration")
    tf = import_tensorflow("running the quantization debugger")

    converter = _int8_converter(tf, model, representative_dataset, allow_float=False)
    dump = io.StringIO()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=representative_dataset)
            debugger.run()
        debugger.layer_statistics_dump(dump)
    except Exception as error:  # noqa: BLE001 - the debugger raises ValueError, RuntimeError or ConverterError
        raise ConversionError(f"the quantization debugger failed: {type(error).__name__}: {error}") from error

    layers = []
    for row in csv.DictReader(io.StringIO(dump.getvalue())):
        layers.append(
            LayerError(
                tensor_name=row["tensor_name"],
                op_name=row["op_name"],
                num_elements=int(float(row["num_elements"])),
                rmse=math.sqrt(max(0.0, float(row["mean_squared_error"]))),
                max_abs_error=float(row["max_abs_error"]),
                scale=float(row["scale"]),
            )
        )
    layers.sort(key=lambda layer: layer.rmse_per_scale, reverse=True)
    return layers


def choose_keep_float(requested: Sequence[str], layers: Sequence[LayerError], auto_count: int = AUTO_KEEP_FLOAT_LAYERS) -> list[str]:
    """Resolve ``--keep-float`` values into tensor names.

    Args:
        requested: full tensor names or ``LayerError.short_name`` values, or the single value ``auto``
            for the ``auto_count`` worst layers.
        layers: the debugger's ranking, worst first.
        auto_count: how many layers ``auto`` keeps. Default ``AUTO_KEEP_FLOAT_LAYERS`` (5).

    Returns:
        The full tensor names to leave in float, without duplicates.

    Raises:
        ValueError: if ``auto`` is mixed with names, there is no ranking, or a name matches no quantized
            tensor or more than one.
    """
    requested = [name.strip() for name in requested if name.strip()]
    if not layers:
        raise ValueError("--keep-float needs the quantization debugger's ranking, which is empty")
    if "auto" in requested:
        if len(requested) > 1:
            raise ValueError(f"--keep-float takes either 'auto' or tensor names, not both: {requested}")
        return [layer.tensor_name for layer in layers[:auto_count]]

    chosen, unknown = [], []
    for name in requested:
        matches = [layer.tensor_name for layer in layers if name in (layer.tensor_name, layer.short_name)]
        if not matches:
            unknown.append(name)
        elif len(set(matches)) > 1:
            raise ValueError(f"--keep-float {name!r} matches {len(matches)} tensors; pass the full tensor name from --json")
        else:
            chosen.append(matches[0])
    if unknown:
        examples = ", ".join(layer.short_name for layer in layers[:3])
        raise ValueError(
            f"--keep-float names {unknown} are not quantized tensors of this model; use names from the "
            f"debugger's table (worst first: {examples}) or 'auto'"
        )
    return list(dict.fromkeys(chosen))


def convert_int8_mixed(model: Any, representative_dataset: RepresentativeDataset, keep_float: Sequence[str]) -> bytes:
    """Convert to int8 with the ops producing ``keep_float`` tensors left in float32.

    Args:
        model: the Keras counting model.
        representative_dataset: calibration samples, as for ``convert_keras_model``.
        keep_float: op output tensor names from ``rank_layer_errors``.

    Returns:
        The ``.tflite`` bytes.

    Note:
        TensorFlow's debugger writes the mixed model with a float32 input and output, so this model
        takes float pixels 0..255 where ``model_int8.tflite`` takes uint8; ``CountModel`` feeds both.

    Raises:
        CalibrationError: if the dataset is missing.
        ValueError: if ``keep_float`` is empty.
        ConversionError: if TensorFlow cannot build the mixed model.
    """
    if representative_dataset is None:
        raise CalibrationError("a mixed int8 model needs the representative dataset for calibration")
    if not keep_float:
        raise ValueError("keep_float is empty; name at least one tensor to leave in float, or use 'auto'")
    tf = import_tensorflow("converting a mixed int8 model")

    # NOTE: the mixed model gets neither the bias correction nor the widened count range of the plain
    # int8 model (convert_keras_model), so its RMSE can be above that model's.
    converter = _int8_converter(tf, model, representative_dataset, allow_float=True)
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(keep_float))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=representative_dataset, debug_options=options
            )
            data = bytes(debugger.get_nondebug_quantized_model())
    except Exception as error:  # noqa: BLE001 - the debugger raises ValueError, RuntimeError or ConverterError
        raise ConversionError(
            f"mixed int8 conversion with {len(keep_float)} float layers failed: {type(error).__name__}: {error}"
        ) from error
    _log.info("mixed int8 model: %d layers kept in float", len(keep_float))
    return compact_model(data)


def format_layer_table(layers: Sequence[LayerError], limit: int = 10) -> str:
    """Format the worst layers as a text table for stderr."""
    lines = [f"{'rmse/scale':>10}  {'rmse':>10}  {'max err':>10}  {'op':<18}  layer (--keep-float name)"]
    for layer in layers[:limit]:
        lines.append(
            f"{layer.rmse_per_scale:>10.3f}  {layer.rmse:>10.4g}  {layer.max_abs_error:>10.4g}  "
            f"{layer.op_name:<18}  {layer.short_name}"
        )
    return "\n".join(lines)
