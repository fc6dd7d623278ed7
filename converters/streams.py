"""Keeping TensorFlow's console output off stdout, which carries only a command's results."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout inside the block to stderr, at the file-descriptor level.

    The TFLite converter's C++ code prints lines such as ``fully_quantize: 0, inference_type: 6`` straight
    to file descriptor 1, past ``sys.stdout``; duplicating descriptor 2 onto 1 catches those too.
    """
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:
        # No usable descriptor 1 (a closed stdout): redirect Python-level writes only.
        with contextlib.redirect_stdout(sys.stderr):
            yield
        return
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
