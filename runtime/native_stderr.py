"""Hiding the INFO lines that the interpreter's native code prints, for ``edgecount -q``."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

# The environment variable that ``edgecount -q`` sets. When it is "1", CountModel hides LiteRT's own INFO lines.
QUIET_VARIABLE = "EDGECOUNT_QUIET"
# Held while file descriptor 2 points elsewhere, because that changes it for the whole process.
_STDERR_LOCK = threading.RLock()


def _flush_stderr() -> None:
    if sys.stderr is not None:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()


@contextlib.contextmanager
def hide_native_info_lines(enabled: bool = True) -> Iterator[None]:
    """Drop the ``INFO: ...`` lines that native code writes to file descriptor 2 inside the block.

    LiteRT's C++ logger writes ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` straight to
    file descriptor 2 when an interpreter allocates its tensors, past Python's ``sys.stderr`` and
    ``logging``. Inside the block, file descriptor 2 points at a temporary file. On exit, even after an
    exception, it is restored, and every captured line that does not start with ``INFO: `` is written
    back, so no warning or error from this or another thread is lost, only delayed.

    Args:
        enabled: whether to hide anything; False runs the block unchanged. Default True.

    Note:
        One lock serialises the blocks of all threads. When no temporary file can be created or file
        descriptor 2 is closed, nothing is hidden.
    """
    if not enabled:
        yield
        return
    with _STDERR_LOCK, contextlib.ExitStack() as stack:
        saved = None
        try:
            capture = stack.enter_context(tempfile.TemporaryFile())
            _flush_stderr()
            saved = os.dup(2)
            os.dup2(capture.fileno(), 2)
        except OSError:
            # Showing the INFO line is better than failing to load the model.
            if saved is not None:
                os.close(saved)
                saved = None
        try:
            yield
        finally:
            if saved is not None:
                _flush_stderr()
                os.dup2(saved, 2)
                os.close(saved)
                capture.seek(0)
                lines = capture.read().splitlines(keepends=True)
                other_lines = b"".join(line for line in lines if not line.startswith(b"INFO: "))
                while other_lines:
                    other_lines = other_lines[os.write(2, other_lines):]
