"""Ctrl-C during ``fit``: raised at the end of a batch, where Python runs, instead of inside a TensorFlow op.

Python delivers a SIGINT as ``KeyboardInterrupt`` wherever the main thread is. Inside ``fit`` that is
mostly TensorFlow's C++ code, which can turn the interrupt into a ``SystemError`` traceback or swallow
it in a destructor, so the run goes on. During ``fit``, a handler only records the first Ctrl-C, and a
Keras callback raises it at the next batch end. A second Ctrl-C raises at once.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import TracebackType
from typing import Any

_log = logging.getLogger(__name__)


class DeferredInterrupt:
    """A context that defers Ctrl-C in the main thread to ``check``, which raises it as ``KeyboardInterrupt``.

    Outside the main thread, where Python cannot install signal handlers, and when SIGINT is ignored, it
    changes nothing.
    """

    def __init__(self) -> None:
        self.pending = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> DeferredInterrupt:
        # A process started with SIGINT ignored (a background job of a script) keeps ignoring it.
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _handle(self, signum: int, frame: Any) -> None:
        del signum, frame
        if self.pending:
            raise KeyboardInterrupt
        self.pending = True
        _log.warning("Ctrl-C: stopping at the end of the current batch. Press Ctrl-C again to stop at once")

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if a Ctrl-C arrived since the context began."""
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


def create_interrupt_callback(interrupt: DeferredInterrupt) -> Any:
    """Return a Keras callback that calls ``interrupt.check`` after every training and validation batch."""
    import keras

    class RaiseDeferredInterrupt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            interrupt.check()

        def on_test_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            interrupt.check()

    return RaiseDeferredInterrupt()
