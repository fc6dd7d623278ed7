"""Choosing the TFLite interpreter implementation.

Three packages provide the same ``Interpreter`` class:

- ``litert``: ``ai_edge_litert.interpreter`` from the ``ai-edge-litert`` wheel, the maintained one;
- ``tflite-runtime``: ``tflite_runtime.interpreter`` from the ``tflite-runtime`` wheel, whose last
  release (2.14) was built against NumPy 1.x and has no wheels for Python 3.12 or newer;
- ``tensorflow``: ``tf.lite.Interpreter`` from a full TensorFlow install.

``auto`` tries them in that order, so the runtime imports TensorFlow only when neither of the light
packages is installed.
"""

from __future__ import annotations

import importlib
import logging
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import BackendError
from .metadata import FlatBufferError, _read, _Table, is_tflite

_log = logging.getLogger(__name__)

BACKENDS = ("litert", "tflite-runtime", "tensorflow")

_MODULES = {
    "litert": "ai_edge_litert.interpreter",
    "tflite-runtime": "tflite_runtime.interpreter",
    "tensorflow": "tensorflow",
}
_INSTALL_HINTS = {
    "litert": "pip install ai-edge-litert",
    "tflite-runtime": "pip install 'edgecount[tflite-runtime]' (tflite-runtime 2.14 with numpy<2, Python 3.11 or older)",
    "tensorflow": "pip install 'edgecount[train]'",
}


@dataclass(frozen=True)
class Backend:
    """An importable interpreter implementation."""

    name: str
    version: str
    interpreter_class: Any
    load_delegate: Any


def _import_backend(name: str) -> Backend:
    module_name = _MODULES[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and module_name.startswith(error.name.split(".")[0]):
            raise BackendError(
                f"the interpreter backend {name!r} is not installed (no module {module_name}); "
                f"install it with: {_INSTALL_HINTS[name]}"
            ) from error
        raise _broken_backend_error(name, error) from error
    except (ImportError, AttributeError, RuntimeError) as error:
        raise _broken_backend_error(name, error) from error

    if name == "tensorflow":
        return Backend(name, module.__version__, module.lite.Interpreter, module.lite.experimental.load_delegate)
    version = _distribution_version(name)
    if name == "tflite-runtime":
        _check_numpy_abi(version)
    return Backend(name, version, module.Interpreter, getattr(module, "load_delegate", None))


def _check_numpy_abi(version: str) -> None:
    """Reject tflite-runtime wheels built against NumPy 1.x when NumPy 2 is installed.

    tflite-runtime 2.14 (the last release) imports without error under NumPy 2, then fails when the
    first interpreter is created with ``SystemError`` caused by ``AttributeError: _ARRAY_API not
    found``. Checking here makes ``auto`` pass it over and gives one clear message.
    """
    numpy_major = int(np.__version__.split(".")[0])
    release = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
    if numpy_major >= 2 and release and release < (2, 15):
        raise BackendError(
            f"the interpreter backend 'tflite-runtime' {version} is installed but was built against NumPy 1.x "
            f"and fails under NumPy {np.__version__} (AttributeError: _ARRAY_API not found); install numpy<2 "
            "beside it (pip install 'numpy<2'), or use --backend litert (pip install ai-edge-litert)"
        )


def interpreter_failure(backend: Backend, error: BaseException) -> BackendError:
    """Describe an interpreter that fails to start for a reason of its build, not of the model."""
    causes = [f"{type(error).__name__}: {error}"]
    cause = error.__cause__ or error.__context__
    while cause is not None and len(causes) < 4:
        causes.append(f"{type(cause).__name__}: {cause}")
        cause = cause.__cause__ or cause.__context__
    text = " <- ".join(causes)
    fix = f"reinstall it with: {_INSTALL_HINTS[backend.name]}, or use --backend litert"
    if "numpy" in text.lower() or "_ARRAY_API" in text:
        fix = "it was built against NumPy 1.x; install numpy<2 beside it (pip install 'numpy<2'), or use --backend litert"
    return BackendError(
        f"the interpreter backend {backend.name!r} {backend.version} imports but cannot create an interpreter ({text}); {fix}"
    )


def _broken_backend_error(name: str, error: BaseException) -> BackendError:
    text = f"{type(error).__name__}: {error}"
    fix = f"reinstall it with: {_INSTALL_HINTS[name]}"
    # tflite-runtime 2.14 was compiled against NumPy 1.x and fails to import under NumPy 2.
    if "numpy" in text.lower() or "_ARRAY_API" in text:
        fix = "it was built against NumPy 1.x; install numpy<2 beside it (pip install 'numpy<2'), or use --backend litert"
    return BackendError(f"the interpreter backend {name!r} is installed but fails to import ({text}); {fix}")


def _distribution_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    distribution = {"litert": "ai-edge-litert", "tflite-runtime": "tflite-runtime"}[name]
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def load_backend(name: str = "auto") -> Backend:
    """Import an interpreter backend.

    Args:
        name: ``auto`` (default), ``litert``, ``tflite-runtime`` or ``tensorflow``.

    Returns:
        The backend with its interpreter class and version.

    Raises:
        ValueError: for an unknown name.
        BackendError: if the backend is missing or broken; for ``auto``, if none of the three imports.
    """
    if name == "auto":
        failures = []
        for candidate in BACKENDS:
            try:
                backend = _import_backend(candidate)
            except BackendError as error:
                failures.append(str(error))
                continue
            if candidate != "litert":
                _log.info("ai-edge-litert is not usable here, using the %s backend", candidate)
            return backend
        raise BackendError(
            "no TFLite interpreter could be imported; install ai-edge-litert (pip install ai-edge-litert). "
            "Details: " + " | ".join(failures)
        )
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of: auto, {', '.join(BACKENDS)}")
    return _import_backend(name)


# The highest version of each builtin op that tflite-runtime 2.14.0 registers, keyed by builtin code.
# Measured with the x86_64 and aarch64 cp311 wheels, which gave the same table, by loading a model whose
# operator codes name each op at rising versions until the interpreter raised "Didn't find op for
# builtin opcode" (scripts/measure_op_versions.py). Codes missing here (CUSTOM, CALL, the StableHLO ops)
# have no builtin kernel in tflite-runtime 2.14 at all.
TFLITE_RUNTIME_2_14_OP_VERSIONS: dict[int, tuple[str, int]] = {
    0: ("ADD", 5), 1: ("AVERAGE_POOL_2D", 3), 2: ("CONCATENATION", 4), 3: ("CONV_2D", 7),
    4: ("DEPTHWISE_CONV_2D", 7), 5: ("DEPTH_TO_SPACE", 2), 6: ("DEQUANTIZE", 5), 7: ("EMBEDDING_LOOKUP", 3),
    8: ("FLOOR", 1), 9: ("FULLY_CONNECTED", 10), 10: ("HASHTABLE_LOOKUP", 1), 11: ("L2_NORMALIZATION", 2),
    12: ("L2_POOL_2D", 1), 13: ("LOCAL_RESPONSE_NORMALIZATION", 1), 14: ("LOGISTIC", 3),
    15: ("LSH_PROJECTION", 1), 16: ("LSTM", 4), 17: ("MAX_POOL_2D", 3), 18: ("MUL", 7), 19: ("RELU", 3),
    20: ("RELU_N1_TO_1", 1), 21: ("RELU6", 3), 22: ("RESHAPE", 1), 23: ("RESIZE_BILINEAR", 4),
    24: ("RNN", 3), 25: ("SOFTMAX", 3), 26: ("SPACE_TO_DEPTH", 2), 27: ("SVDF", 4), 28: ("TANH", 3),
    30: ("SKIP_GRAM", 1), 33: ("EMBEDDING_LOOKUP_SPARSE", 1), 34: ("PAD", 4),
    35: ("UNIDIRECTIONAL_SEQUENCE_RNN", 3), 36: ("GATHER", 6), 37: ("BATCH_TO_SPACE_ND", 4),
    38: ("SPACE_TO_BATCH_ND", 4), 39: ("TRANSPOSE", 6), 40: ("MEAN", 3), 41: ("SUB", 5), 42: ("DIV", 2),
    43: ("SQUEEZE", 2), 44: ("UNIDIRECTIONAL_SEQUENCE_LSTM", 4), 45: ("STRIDED_SLICE", 8),
    46: ("BIDIRECTIONAL_SEQUENCE_RNN", 3), 47: ("EXP", 2), 48: ("TOPK_V2", 3), 49: ("SPLIT", 4),
    50: ("LOG_SOFTMAX", 2), 52: ("BIDIRECTIONAL_SEQUENCE_LSTM", 3), 53: ("CAST", 5), 54: ("PRELU", 1),
    55: ("MAXIMUM", 4), 56: ("ARG_MAX", 3), 57: ("MINIMUM", 4), 58: ("LESS", 3), 59: ("NEG", 1),
    60: ("PADV2", 4), 61: ("GREATER", 2), 62: ("GREATER_EQUAL", 3), 63: ("LESS_EQUAL", 2), 64: ("SELECT", 4),
    65: ("SLICE", 6), 66: ("SIN", 1), 67: ("TRANSPOSE_CONV", 4), 68: ("SPARSE_TO_DENSE", 3), 69: ("TILE", 3),
    70: ("EXPAND_DIMS", 1), 71: ("EQUAL", 4), 72: ("NOT_EQUAL", 3), 73: ("LOG", 1), 74: ("SUM", 2),
    75: ("SQRT", 1), 76: ("RSQRT", 2), 77: ("SHAPE", 1), 78: ("POW", 1), 79: ("ARG_MIN", 3),
    80: ("FAKE_QUANT", 2), 81: ("REDUCE_PROD", 2), 82: ("REDUCE_MAX", 3), 83: ("PACK", 4),
    84: ("LOGICAL_OR", 1), 85: ("ONE_HOT", 1), 86: ("LOGICAL_AND", 1), 87: ("LOGICAL_NOT", 1),
    88: ("UNPACK", 4), 89: ("REDUCE_MIN", 3), 90: ("FLOOR_DIV", 3), 91: ("REDUCE_ANY", 1), 92: ("SQUARE", 1),
    93: ("ZEROS_LIKE", 1), 94: ("FILL", 4), 95: ("FLOOR_MOD", 2), 96: ("RANGE", 2),
    97: ("RESIZE_NEAREST_NEIGHBOR", 4), 98: ("LEAKY_RELU", 2), 99: ("SQUARED_DIFFERENCE", 2),
    100: ("MIRROR_PAD", 3), 101: ("ABS", 5), 102: ("SPLIT_V", 2), 103: ("UNIQUE", 1), 104: ("CEIL", 1),
    105: ("REVERSE_V2", 3), 106: ("ADD_N", 1), 107: ("GATHER_ND", 4), 108: ("COS", 1), 109: ("WHERE", 2),
    110: ("RANK", 1), 111: ("ELU", 1), 112: ("REVERSE_SEQUENCE", 1), 113: ("MATRIX_DIAG", 1),
    114: ("QUANTIZE", 3), 115: ("MATRIX_SET_DIAG", 1), 116: ("ROUND", 1), 117: ("HARD_SWISH", 1),
    118: ("IF", 1), 119: ("WHILE", 1), 120: ("NON_MAX_SUPPRESSION_V4", 1),
    121: ("NON_MAX_SUPPRESSION_V5", 1), 122: ("SCATTER_ND", 1), 123: ("SELECT_V2", 2), 124: ("DENSIFY", 1),
    125: ("SEGMENT_SUM", 1), 126: ("BATCH_MATMUL", 4), 128: ("CUMSUM", 1), 129: ("CALL_ONCE", 1),
    130: ("BROADCAST_TO", 3), 131: ("RFFT2D", 1), 132: ("CONV_3D", 1), 133: ("IMAG", 1), 134: ("REAL", 1),
    135: ("COMPLEX_ABS", 1), 136: ("HASHTABLE", 1), 137: ("HASHTABLE_FIND", 1), 138: ("HASHTABLE_IMPORT", 1),
    139: ("HASHTABLE_SIZE", 1), 140: ("REDUCE_ALL", 1), 141: ("CONV_3D_TRANSPOSE", 1),
    142: ("VAR_HANDLE", 1), 143: ("READ_VARIABLE", 1), 144: ("ASSIGN_VARIABLE", 1),
    145: ("BROADCAST_ARGS", 1), 146: ("RANDOM_STANDARD_NORMAL", 1), 147: ("BUCKETIZE", 1),
    148: ("RANDOM_UNIFORM", 1), 149: ("MULTINOMIAL", 1), 150: ("GELU", 2), 151: ("DYNAMIC_UPDATE_SLICE", 1),
    152: ("RELU_0_TO_1", 1), 153: ("UNSORTED_SEGMENT_PROD", 1), 154: ("UNSORTED_SEGMENT_MAX", 1),
    155: ("UNSORTED_SEGMENT_SUM", 1), 156: ("ATAN2", 1), 157: ("UNSORTED_SEGMENT_MIN", 1), 158: ("SIGN", 2),
    159: ("BITCAST", 1), 160: ("BITWISE_XOR", 1), 161: ("RIGHT_SHIFT", 1),
}

# Field numbers in tflite/schema.fbs.
_MODEL_OPERATOR_CODES = 1
_OPERATOR_CODE_DEPRECATED_BUILTIN_CODE = 0
_OPERATOR_CODE_VERSION = 2
_OPERATOR_CODE_BUILTIN_CODE = 3
_CUSTOM_CODE = 32


def read_operator_versions(data: bytes) -> dict[int, int]:
    """Read the builtin ops a TFLite model uses and the version the converter gave each.

    Args:
        data: the whole ``.tflite`` file.

    Returns:
        Builtin code (``tflite/schema.fbs``, 9 is ``FULLY_CONNECTED``) to the highest version the
        model's operator codes list for it. Custom ops are left out.

    Raises:
        FlatBufferError: if the bytes are not a TFLite FlatBuffer or an offset points outside them.
    """
    if not is_tflite(data):
        raise FlatBufferError("the file has no TFL3 identifier, so it is not a TFLite model")
    model = _Table(data, _read(data, "<I", 0))
    versions: dict[int, int] = {}
    for operator_code in model.table_vector(_MODEL_OPERATOR_CODES):
        # Codes above 127 live only in builtin_code; older files set only the deprecated byte field.
        code = max(
            operator_code.scalar(_OPERATOR_CODE_BUILTIN_CODE, "<i", 0),
            operator_code.scalar(_OPERATOR_CODE_DEPRECATED_BUILTIN_CODE, "<b", 0),
        )
        if code == _CUSTOM_CODE:
            continue
        version = operator_code.scalar(_OPERATOR_CODE_VERSION, "<i", 1)
        versions[code] = max(version, versions.get(code, 0))
    return versions


def find_ops_missing_from_tflite_runtime(data: bytes) -> list[str]:
    """List the ops of a TFLite model that tflite-runtime 2.14 has no kernel for.

    tflite-runtime 2.14 is the last tflite-runtime release, so a model that TensorFlow 2.21 converts
    with a newer op version (``FULLY_CONNECTED`` version 12 for per-channel dynamic-range weights)
    loads with ai-edge-litert but fails in tflite-runtime with "Didn't find op for builtin opcode".

    Args:
        data: the whole ``.tflite`` file.

    Returns:
        One description per op, such as ``FULLY_CONNECTED version 12 (tflite-runtime 2.14 has
        versions 1 to 10)``; empty when tflite-runtime 2.14 can load every op.

    Raises:
        FlatBufferError: if the bytes are not a TFLite FlatBuffer.
    """
    missing = []
    for code, version in sorted(read_operator_versions(data).items()):
        name, highest = TFLITE_RUNTIME_2_14_OP_VERSIONS.get(code, (f"builtin op {code}", 0))
        if version > highest:
            supported = f"versions 1 to {highest}" if highest else "no version of it"
            missing.append(f"{name} version {version} (tflite-runtime 2.14 has {supported})")
    return missing
