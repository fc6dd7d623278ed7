"""The epoch loop of one training phase: early stopping, a checkpoint after every epoch, exact resume.

Each epoch is one ``fit`` call whose training data is rebuilt from ``(seed, phase, epoch)``, so the
shuffle order and augmentation of an epoch do not depend on what ran before it in the process. With
the model variables (including the dropout seed state), the optimizer variables and the early-stopping
state restored from a checkpoint, a resumed run repeats the uninterrupted one operation for operation.
Early stopping follows ``keras.callbacks.EarlyStopping(monitor="val_loss", restore_best_weights=True)``:
an epoch improves when its validation loss is below the best so far, the phase stops after ``patience``
epochs without improvement (never after its first epoch), and the best weights are restored at the end.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgecount.training.checkpoint import CheckpointStore, assign_values, variable_values
from edgecount.training.interrupts import DeferredInterrupt, create_interrupt_callback

_log = logging.getLogger(__name__)

# Builds the ``fit`` arguments of one epoch: ``x``, and ``y`` and ``batch_size`` for arrays.
EpochData = Callable[[int], dict[str, Any]]
OnEpoch = Callable[[str, int, int], None]


@dataclass
class PhaseState:
    """Loop state of one phase, stored in ``state.json``.

    Attributes:
        phase: 1 or 2.
        epochs_done: epochs finished.
        best_val_loss: lowest validation loss so far.
        best_epoch: the epoch (1-based, within the phase) that reached it; 0 before the first epoch.
        wait: epochs since the last improvement.
        finished: whether the phase ended (early stop or its last epoch) and its best weights are restored.
        history: Keras-style history, one list per metric.
        seconds: training time so far, summed over interrupted attempts.
    """

    phase: int
    epochs_done: int = 0
    best_val_loss: float = float("inf")
    best_epoch: int = 0
    wait: int = 0
    finished: bool = False
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        # JSON has no infinity; None stands for "no epoch yet".
        values["best_val_loss"] = None if not np.isfinite(self.best_val_loss) else self.best_val_loss
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PhaseState:
        values = dict(values)
        values["best_val_loss"] = float("inf") if values.get("best_val_loss") is None else float(values["best_val_loss"])
        return cls(**values)


def model_variables(model: Any) -> list[Any]:
    """Return every variable of a Keras model, trainable or not, including dropout seed states."""
    return list(model.variables)


def restore_training(model: Any, fit_model: Any, arrays: dict[str, list[np.ndarray]]) -> list[np.ndarray] | None:
    """Load model and optimizer variables from checkpoint arrays; return the saved best weights, if any.

    Args:
        model: the full counting model.
        fit_model: the compiled model the phase trains (the head in phase 1), whose optimizer is built
            for its trainable variables first, so the slot variables exist in the order they were saved.
        arrays: the checkpoint arrays.
    """
    assign_values(model_variables(model), arrays["model"], "model")
    optimizer = fit_model.optimizer
    if arrays.get("optimizer"):
        if not optimizer.built:
            optimizer.build(fit_model.trainable_variables)
        assign_values(list(optimizer.variables), arrays["optimizer"], "optimizer")
    return arrays.get("best")


def create_phase_progbar(phase: int, max_epochs: int) -> Any:
    """Build a Keras progress logger whose epoch header counts within the phase, such as ``Phase 2 epoch 3/15``.

    Each epoch is its own ``fit`` call, so Keras' own header would read ``Epoch 3/3``. Passing this
    logger among the callbacks keeps ``fit`` from adding its default one.
    """
    import keras

    class PhaseProgbar(keras.callbacks.ProgbarLogger):
        def set_params(self, params: dict[str, Any]) -> None:
            super().set_params(params)
            # Keras 3 prints its header only when fit runs more than one epoch.
            self.epochs = 1

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            if self.verbose:
                print(f"Phase {phase} epoch {epoch + 1}/{max_epochs}", flush=True)
            super().on_epoch_begin(epoch, logs)

    return PhaseProgbar()


def run_phase(
    fit_model: Any,
    model: Any,
    state: PhaseState,
    epoch_data: EpochData,
    validation_data: Any,
    max_epochs: int,
    patience: int,
    store: CheckpointStore,
    saved_state: dict[str, Any],
    saved_arrays: dict[str, list[np.ndarray]],
    best_weights: list[np.ndarray] | None = None,
    callbacks: list[Any] | None = None,
    verbose: int = 2,
    on_epoch: OnEpoch | None = None,
) -> PhaseState:
    """Train one phase from ``state`` to its end, checkpointing after each epoch.

    Args:
        fit_model: the compiled Keras model that ``fit`` trains (the head in phase 1).
        model: the full counting model, whose variables the checkpoints store.
        state: the progress of the phase, either a fresh ``PhaseState`` or one read from a checkpoint.
        epoch_data: returns the ``fit`` data arguments of an epoch (0-based).
        validation_data: passed to ``fit`` unchanged.
        max_epochs: the phase's epoch limit.
        patience: epochs without improvement before the phase stops.
        store: where checkpoints go.
        saved_state: the other phases' state, stored beside this phase's in every checkpoint.
        saved_arrays: arrays stored in every checkpoint besides this phase's (the phase 1 result).
        best_weights: the best weights so far when resuming. Default None.
        callbacks: extra Keras callbacks for every ``fit`` call. Default None.
        verbose: Keras ``fit`` verbosity. Default 2.
        on_epoch: called as ``on_epoch("phase<N>", epochs_done, max_epochs)`` after each checkpoint.

    Returns:
        The final state; the model holds the best epoch's weights.
    """
    optimizer = fit_model.optimizer
    with DeferredInterrupt() as interrupt:
        while not state.finished:
            if state.epochs_done >= max_epochs:
                state.finished = True
                break
            epoch = state.epochs_done
            clock = time.perf_counter()
            with contextlib.redirect_stdout(sys.stderr):
                fit = fit_model.fit(
                    **epoch_data(epoch),
                    validation_data=validation_data,
                    initial_epoch=epoch,
                    epochs=epoch + 1,
                    shuffle=False,  # epoch_data orders the epoch from the seed
                    callbacks=[
                        *(callbacks or []),
                        create_interrupt_callback(interrupt),
                        *([create_phase_progbar(state.phase, max_epochs)] if verbose else []),
                    ],
                    verbose=verbose,
                )
            state.seconds += time.perf_counter() - clock
            for key, values in fit.history.items():
                state.history.setdefault(key, []).append(float(values[-1]))

            # Early stopping, as keras.callbacks.EarlyStopping does it.
            val_loss = float(fit.history["val_loss"][-1])
            state.epochs_done = epoch + 1
            state.wait += 1
            if val_loss < state.best_val_loss:
                state.best_val_loss, state.best_epoch, state.wait = val_loss, epoch + 1, 0
                best_weights = model.get_weights()
            elif state.wait >= patience and epoch > 0 and epoch + 1 < max_epochs:
                _log.info("phase %d stopped early after epoch %d; best epoch %d", state.phase, epoch + 1, state.best_epoch)
                state.finished = True
            if state.epochs_done >= max_epochs:
                state.finished = True
            if state.finished and best_weights is not None:
                model.set_weights(best_weights)

            arrays = {**saved_arrays, "model": variable_values(model_variables(model))}
            if not state.finished:
                arrays["optimizer"] = variable_values(list(optimizer.variables))
                if best_weights is not None:
                    arrays["best"] = best_weights
            store.save({**saved_state, f"phase{state.phase}": state.as_dict(), "phase": state.phase}, arrays)
            if on_epoch is not None:
                on_epoch(f"phase{state.phase}", state.epochs_done, max_epochs)
            # A Ctrl-C after the last batch stops here, with this epoch's checkpoint saved.
            interrupt.check()
    return state
