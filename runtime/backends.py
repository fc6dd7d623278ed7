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
