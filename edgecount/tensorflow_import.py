"""Lazy TensorFlow import for the commands that train, convert or compare against Keras."""

from __future__ import annotations

import os
from types import ModuleType

from edgecount.runtime.errors import EdgecountError

INSTALL_HINT = "pip install 'edgecount[train]'"


class TensorFlowMissingError(EdgecountError, ImportError):
    """TensorFlow is needed by a command but is not installed."""


def import_tensorflow(purpose: str) -> ModuleType:
    """Import TensorFlow, or fail with the install command.

    Args:
        purpose: what needs TensorFlow, for the message (for example ``"edgecount train"``).

    Returns:
        The ``tensorflow`` module.

    Raises:
        TensorFlowMissingError: if TensorFlow cannot be imported.
    """
    # TensorFlow's C++ start-up logs (CPU feature notes, oneDNN) go to stderr unless TF_CPP_MIN_LOG_LEVEL hides them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as error:
        raise TensorFlowMissingError(
            f"{purpose} needs TensorFlow, which is not installed or fails to import ({error}); "
            f"install it with: {INSTALL_HINT}. Counting with an existing .tflite model does not need it."
        ) from error
    return tf
