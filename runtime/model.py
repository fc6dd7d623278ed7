"""``CountModel``: a validated TFLite face-counting model behind one ``predict(frame)`` call."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .backends import Backend, interpreter_failure, load_backend
from .errors import ModelError
from .metadata import FlatBufferError, is_tflite, read_edgecount_metadata
from .native_stderr import QUIET_VARIABLE, hide_native_info_lines
from .preprocess import preprocess
from .tiles import QUADRANTS, combine_tile_counts, crop_quadrants

_log = logging.getLogger(__name__)

_INPUT_DTYPES = (np.float32, np.uint8, np.int8)


@dataclass(frozen=True)
class TensorSpec:
    """Shape, type and quantization parameters of a model input or output tensor.

    ``scale`` is 0.0 for a tensor that is not quantized.
    """

    index: int
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0

    @classmethod
    def from_details(cls, details: dict[str, Any]) -> TensorSpec:
        scale, zero_point = details.get("quantization", (0.0, 0))
        return cls(
            index=int(details["index"]),
            shape=tuple(int(d) for d in details["shape"]),
            dtype=np.dtype(details["dtype"]),
            scale=float(scale),
            zero_point=int(zero_point),
        )


def quantize(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Convert real values to a tensor's type, quantizing them when the tensor is quantized.

    Raw uint8 pixels feed a uint8 input with scale 1 and zero point 0 unchanged, which is what
    ``edgecount convert --quantize int8`` produces, so that common case copies nothing.

    Args:
        values: real values, for an image input the 0..255 RGB pixels.
        spec: the tensor's quantization parameters.

    Returns:
        An array of ``spec.dtype``.
    """
    if not spec.quantized:
        return values.astype(spec.dtype, copy=False)
    if values.dtype == spec.dtype == np.uint8 and spec.scale == 1.0 and spec.zero_point == 0:
        return values
    info = np.iinfo(spec.dtype)
    quantized = np.round(values.astype(np.float32) / spec.scale) + spec.zero_point
    return np.clip(quantized, info.min, info.max).astype(spec.dtype)


def dequantize(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Convert a tensor's values to float32 real values."""
    if not spec.quantized:
        return values.astype(np.float32)
    return (values.astype(np.float32) - spec.zero_point) * spec.scale


def read_model_file(path: Path) -> bytes:
    """Read a ``.tflite`` file and check its identifier, with errors that name the file."""
    if not path.exists():
        raise ModelError(f"{path}: model file not found; pass the path of a .tflite file written by 'edgecount convert'")
    if path.is_dir():
        raise ModelError(f"{path}: is a folder; pass a .tflite file such as {path / 'model_int8.tflite'}")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ModelError(f"{path}: cannot read the model file: {error.strerror}; check its permissions") from error
    if not data:
        raise ModelError(f"{path}: the model file is empty (0 bytes); convert the model again")
    if not is_tflite(data):
        raise ModelError(
            f"{path}: not a TFLite model (no TFL3 identifier in its first 8 bytes); pass a .tflite file "
            "written by 'edgecount convert' or tf.lite.TFLiteConverter"
        )
    return data


def _metadata_input_size(metadata: dict[str, Any]) -> tuple[int, int] | None:
    """Read ``input_size`` ([height, width]) or ``image_size`` (one side) from metadata, None if absent or malformed."""
    value = metadata.get("input_size", metadata.get("image_size"))
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    return None


# Test-time augmentation modes of CountModel: None and "none" run once, "flip" adds the mirror image
# and "tiles" adds the four quadrants of the frame.
TTA_MODES = (None, "none", "flip", "tiles")
# Modes written by edgecount convert. int8_mixed keeps the worst int8 layers in float and, like the
# float modes, takes float32 input.
QUANTIZATION_MODES = ("float32", "float16", "dynamic", "int8", "int8_mixed")
FLOAT_INPUT_MODES = ("float32", "float16", "dynamic", "int8_mixed")


# Model files whose missing quadrant training was already reported, so a command that loads a model
# several times (compare loads it once per thread count) warns once.
_QUADRANT_NOTICES: set[str] = set()


class CountModel:
    """A TFLite model that takes one image and returns one face count.

    The model is checked when it loads: its only input must be a ``1xHxWx3`` image of float32, uint8
    or int8, and its only output a single value. Models written by ``edgecount convert`` also carry
    metadata (input size, quantization, training results); other models run from their tensor details.

    Example:
        >>> model = CountModel("runs/av/model_int8.tflite")
        >>> model.predict(load_image("group.jpg"))
        4.12

    Args:
        path: the ``.tflite`` file.
        num_threads: interpreter threads; default None uses every core.
        backend: ``auto`` (default), ``litert``, ``tflite-runtime`` or ``tensorflow``.
        tta: test-time augmentation. ``None`` or ``"none"`` (default) runs the model once per frame.
            ``"flip"`` averages the raw counts of the frame and its left-right mirror image, which
            doubles the inference time. ``"tiles"`` averages the whole-frame count and the sum of the
            counts of the frame's 4 quadrants (see ``tiles.crop_quadrants``), each clipped at 0. That
            is 5 inferences per frame, and it suits models trained with ``edgecount train
            --quadrants``, so other models get a warning when they load.

    Raises:
        ModelError: if the file is missing, not a TFLite model, truncated, or not a counting model.
        BackendError: if the interpreter backend is missing or broken.
        ValueError: for ``num_threads`` below 1 or an unknown ``tta``.

    Note:
        With the environment variable ``EDGECOUNT_QUIET=1``, which ``edgecount -q`` sets, the
        interpreter's own ``INFO:`` start-up lines are hidden (see ``hide_native_info_lines``).
    """

    def __init__(self, path: str | os.PathLike[str], num_threads: int | None = None, backend: str = "auto", tta: str | None = None) -> None:
        self.path = Path(path)
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads must be 1 or more, got {num_threads}")
        if tta not in TTA_MODES:
            raise ValueError(f"tta must be one of {', '.join(str(mode) for mode in TTA_MODES)}, got {tta!r}")
        self.tta = None if tta == "none" else tta
        self.num_threads = num_threads or os.cpu_count() or 1
        self.backend: Backend = load_backend(backend)

        data = read_model_file(self.path)
        self.size_bytes = len(data)
        try:
            self.metadata = read_edgecount_metadata(data)
        except FlatBufferError as error:
            raise ModelError(
                f"{self.path}: the TFLite FlatBuffer is truncated or corrupt ({error}); copy or convert the model again"
            ) from error

        self._interpreter = self._create_interpreter(data)
        self.input, self.output = self._check_signature()
        self._check_metadata()
        if self.tta == "tiles":
            self._check_quadrant_training()

    def _create_interpreter(self, data: bytes) -> Any:
        try:
            with hide_native_info_lines(os.environ.get(QUIET_VARIABLE) == "1"):
                interpreter = self.backend.interpreter_class(model_content=data, num_threads=self.num_threads)
                interpreter.allocate_tensors()
        except (SystemError, ImportError, AttributeError) as error:
            # A backend built against another NumPy ABI fails here, not at import.
            raise interpreter_failure(self.backend, error) from error
        except (ValueError, RuntimeError) as error:
            raise ModelError(
                f"{self.path}: the interpreter ({self.backend.name} {self.backend.version}) cannot load the "
                f"model, which is truncated, corrupt or uses ops this runtime lacks: {error}"
            ) from error
        return interpreter

    def _check_signature(self) -> tuple[TensorSpec, TensorSpec]:
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1:
            raise ModelError(f"{self.path}: the model has {len(inputs)} inputs; a counting model takes one image")
        if len(outputs) != 1:
            raise ModelError(f"{self.path}: the model has {len(outputs)} outputs; a counting model returns one count")

        input_spec = TensorSpec.from_details(inputs[0])
        signature = [int(d) for d in inputs[0].get("shape_signature", inputs[0]["shape"])]
        if len(signature) == 4 and min(signature[1:3]) < 1:
            raise ModelError(
                f"{self.path}: the input size is dynamic (shape signature {signature}); edgecount needs a fixed "
                "height and width, so convert the model from a Keras model with a fixed input shape"
            )
        shape = input_spec.shape
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3 or min(shape) < 1:
            raise ModelError(
                f"{self.path}: the input has shape {list(shape)}; a counting model takes one RGB image of "
                "shape [1, height, width, 3]"
            )
        if input_spec.dtype not in _INPUT_DTYPES:
            raise ModelError(f"{self.path}: the input type is {input_spec.dtype}; expected float32, uint8 or int8")

        output_spec = TensorSpec.from_details(outputs[0])
        if int(np.prod(output_spec.shape)) != 1:
            raise ModelError(
                f"{self.path}: the output has shape {list(output_spec.shape)} "
                f"({int(np.prod(output_spec.shape))} values); a counting model returns a single count. "
                "Is this a classifier or a detector?"
            )
        return input_spec, output_spec

    def _check_metadata(self) -> None:
        """Warn when the embedded metadata disagrees with the tensors; the tensors decide what runs."""
        if self.metadata is None:
            _log.info("%s: no edgecount metadata; running from the tensor details", self.path)
            return

        expected_size = _metadata_input_size(self.metadata)
        if expected_size is not None and expected_size != self.input_size:
            _log.warning(
                "%s: the metadata says the input is %dx%d but the input tensor is %dx%d; using the tensor. "
                "The file was probably edited after conversion; convert it again",
                self.path, expected_size[0], expected_size[1], self.input_size[0], self.input_size[1],
            )
        channel_order = self.metadata.get("channel_order")
        if channel_order is not None and channel_order != "RGB":
            _log.warning(
                "%s: the metadata says the model takes %s pixels, but edgecount feeds RGB; counts may be wrong",
                self.path, channel_order,
            )
        declared_input = self.metadata.get("input")
        if isinstance(declared_input, dict) and "scale" in declared_input and "zero_point" in declared_input:
            try:
                declared = (float(declared_input["scale"]), int(declared_input["zero_point"]))
            except (TypeError, ValueError):
                declared = None
            if declared is not None and (
                abs(declared[0] - self.input.scale) > 1e-6 * max(1.0, abs(declared[0])) or declared[1] != self.input.zero_point
            ):
                _log.warning(
                    "%s: the metadata says the input scale and zero point are %g and %d but the tensor has %g "
                    "and %d; using the tensor",
                    self.path, declared[0], declared[1], self.input.scale, self.input.zero_point,
                )

        mode = self.metadata.get("quantization")
        if mode is None:
            return
        integer_input = self.input.dtype != np.float32
        if str(mode) == "int8" and not integer_input:
            _log.warning(
                "%s: the metadata says int8 but the input tensor is %s; using the tensor. Convert it again "
                "with 'edgecount convert --quantize int8'", self.path, self.input.dtype,
            )
        elif str(mode) in FLOAT_INPUT_MODES and integer_input:
            _log.warning(
                "%s: the metadata says %s but the input tensor is %s with scale %g and zero point %d; using "
                "the tensor", self.path, mode, self.input.dtype, self.input.scale, self.input.zero_point,
            )
        elif str(mode) not in QUANTIZATION_MODES:
            _log.warning("%s: unknown quantization %r in the metadata; ignoring it", self.path, mode)

    def _check_quadrant_training(self) -> None:
        """Warn, once per model file in a process, when the metadata does not record training with quadrant crops."""
        key = str(self.path.resolve())
        if key in _QUADRANT_NOTICES:
            return
        _QUADRANT_NOTICES.add(key)
        if self.metadata is None:
            _log.warning(
                "%s: no edgecount metadata, so it is unknown whether the model was trained with quadrant crops "
                "('edgecount train --quadrants'). Without them, tiled counts may be off", self.path,
            )
            return
        training = self.metadata.get("training")
        quadrants = training.get("quadrants") if isinstance(training, dict) else None
        if isinstance(quadrants, (int, float)) and not isinstance(quadrants, bool) and quadrants > 0:
            return
        reason = "says it was trained without" if quadrants == 0 else "does not record training with"
        _log.warning(
            "%s: the metadata %s quadrant crops ('edgecount train --quadrants', which count only when phase 2 "
            "is kept), so tiled counts may be off. Check them against whole-frame counts with "
            "'edgecount compare RUN --tta tiles'", self.path, reason,
        )

    @property
    def input_size(self) -> tuple[int, int]:
        """``(height, width)`` of the model input."""
        return self.input.shape[1], self.input.shape[2]

    @property
    def quantization(self) -> str:
        """The quantization mode from the metadata, or one inferred from the input type."""
        if self.metadata and self.metadata.get("quantization") in QUANTIZATION_MODES:
            return str(self.metadata["quantization"])
        return "int8" if self.input.dtype != np.float32 else "float32"

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        """Preprocess a BGR frame into the model inputs that ``predict_prepared`` counts.

        It does not touch the interpreter, so one thread may prepare the next frame while another
        runs ``predict_prepared`` on the current one.

        Args:
            frame: HxWx3 uint8 BGR image of any size.

        Returns:
            An array of shape ``[k, height, width, 3]`` in the input tensor's type, one row per
            inference. ``k`` is 1 without test-time augmentation and with ``tta="flip"``, which
            mirrors the row in ``predict_prepared``. With ``tta="tiles"`` ``k`` is 5: the whole frame,
            then its 4 quadrants in the order of ``tiles.quadrant_boxes``. A frame with a side below 2
            pixels has no quadrants, so it gets 1 row and is counted whole, with a warning.

        Raises:
            ValueError: if the frame is not an HxWx3 uint8 array.
        """
        whole = quantize(preprocess(frame, self.input_size), self.input)
        if self.tta != "tiles":
            return whole[np.newaxis]
        height, width = frame.shape[:2]
        if height < 2 or width < 2:
            # Training counts such a photo whole too, so its tiles score and this count agree.
            _log.warning("%s: a %dx%d frame is too small to cut into quadrants, so tta tiles counts it whole", self.path, width, height)
            return whole[np.newaxis]
        return np.stack([whole, *(quantize(preprocess(crop, self.input_size), self.input) for crop in crop_quadrants(frame))])

    def invoke(self, tensor: np.ndarray) -> float:
        """Run the interpreter on one ``[1, height, width, 3]`` input and return the raw count (may be negative).

        With ``tta="tiles"`` pass one row of the ``prepare`` output, such as ``tensor[i : i + 1]``.
        """
        self._interpreter.set_tensor(self.input.index, tensor)
        self._interpreter.invoke()
        # get_tensor returns a copy, so nothing refers to interpreter memory after this call.
        raw = self._interpreter.get_tensor(self.output.index)
        return float(dequantize(raw, self.output).reshape(-1)[0])

    def predict(self, frame: np.ndarray) -> float:
        """Count the faces in one frame.

        Args:
            frame: HxWx3 uint8 BGR image of any size, as ``load_image`` or a video source returns it.

        Returns:
            The count, a float clipped below at 0 (the model's output is a linear regression). With
            ``tta="flip"`` it is the mean of the raw counts of the frame and its mirror image, clipped.
            With ``tta="tiles"`` it is ``(max(whole, 0) + sum(max(quadrant, 0))) / 2`` over the whole
            frame and its 4 quadrants.

        Raises:
            ModelError: if the model returns NaN or infinity.
        """
        return self.predict_prepared(self.prepare(frame))

    def predict_prepared(self, tensor: np.ndarray) -> float:
        """Count the faces in an input tensor from ``prepare``: the inference half of ``predict``.

        A pipeline that prepares the next frame in another thread while the interpreter runs calls
        this in the counting thread. ``predict(frame)`` equals ``predict_prepared(prepare(frame))``.

        Args:
            tensor: the ``prepare`` output for one frame, of shape ``[k, height, width, 3]``: ``k`` is 5
                (the whole frame, then its 4 quadrants) with ``tta="tiles"`` and 1 otherwise, or for a
                frame too small to cut. Each row is one inference.

        Returns:
            The count, as ``predict`` returns it.

        Raises:
            ValueError: if ``tensor`` has another number of rows than this model's ``tta`` prepares.
            ModelError: if the model returns NaN or infinity.
        """
        rows = 1 + QUADRANTS if self.tta == "tiles" else 1
        if tensor.ndim != 4 or tensor.shape[0] not in (1, rows):
            raise ValueError(
                f"predict_prepared expects the prepare output of shape [{rows}, height, width, 3] for tta "
                f"{self.tta or 'none'}, got shape {list(tensor.shape)}. Prepare the frame with this model's prepare"
            )
        if len(tensor) > 1:
            counts = [self._finite(self.invoke(tensor[row : row + 1])) for row in range(rows)]
            return float(combine_tile_counts(counts[0], np.array(counts[1:])))
        raw = self.invoke(tensor)
        if self.tta == "flip":
            # Mirroring the small input tensor instead of the frame resizes each frame only once.
            raw = (raw + self.invoke(np.ascontiguousarray(tensor[:, :, ::-1]))) / 2.0
        return max(0.0, self._finite(raw))

    def _finite(self, raw: float) -> float:
        """Check that a raw model output is a finite count and return it."""
        if not math.isfinite(raw):
            raise ModelError(
                f"{self.path}: the model returned {raw} instead of a count; the model is broken "
                "(for example NaN weights after a diverged training run), so train and convert it again"
            )
        return raw

    def describe(self) -> dict[str, Any]:
        """Summarise the model for reports: file, size, backend, tensors and metadata."""
        return {
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "backend": self.backend.name,
            "backend_version": self.backend.version,
            "num_threads": self.num_threads,
            "tta": self.tta or "none",
            "input_shape": list(self.input.shape),
            "input_dtype": str(self.input.dtype),
            "input_quantization": [self.input.scale, self.input.zero_point],
            "output_dtype": str(self.output.dtype),
            "quantization": self.quantization,
            "metadata": self.metadata,
        }
