"""Distribution strategies for ``edgecount train --strategy``."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

from edgecount.runtime.errors import EdgecountError

_log = logging.getLogger(__name__)

STRATEGIES = ("default", "mirrored", "multi-worker")


class StrategyError(EdgecountError, ValueError):
    """An unknown strategy name or an invalid ``TF_CONFIG``."""


def create_strategy(name: str) -> Any:
    """Create the ``tf.distribute`` strategy that the model is built and trained under.

    Args:
        name: ``default`` (one device, no replication), ``mirrored`` (``MirroredStrategy`` over the
            local GPUs, or the CPU when there is none) or ``multi-worker`` (``MultiWorkerMirroredStrategy``).
            The multi-worker cluster comes from the ``TF_CONFIG`` environment variable. Without it, this
            process is a cluster of one worker.

    Returns:
        A ``tf.distribute.Strategy``; ``num_replicas_in_sync`` scales the batch and learning rate.

    Raises:
        StrategyError: for another name or a ``TF_CONFIG`` that is not valid JSON.
    """
    if name not in STRATEGIES:
        raise StrategyError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    from edgecount.tensorflow_import import import_tensorflow

    tf = import_tensorflow("distributed training")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()

    config = os.environ.get("TF_CONFIG")
    if not config:
        _log.warning("TF_CONFIG is not set, so --strategy multi-worker trains on this process alone")
    else:
        try:
            json.loads(config)
        except json.JSONDecodeError as error:
            raise StrategyError(f"TF_CONFIG is not valid JSON ({error}); see tf.distribute.cluster_resolver.TFConfigClusterResolver") from error
    # NOTE: every worker runs the same command and writes its own --out folder. Keep only the chief's
    # (task index 0), because the workers do not coordinate file writes.
    return tf.distribute.MultiWorkerMirroredStrategy()


@contextlib.contextmanager
def multi_worker_fit_fixes(strategy: Any) -> Iterator[None]:
    """Work around two Keras 3.15 bugs that stop ``fit`` under a multi-worker strategy, while in this block.

    With more than one worker, Keras 3.15 ``fit`` fails twice on the TensorFlow backend. First, it builds
    the model by calling ``strategy.reduce`` on the whole ``(x, y)`` batch tuple ("Attempt to convert a
    value (PerReplica...) to a Tensor"). Second, it averages the scalar loss and metrics of each step
    with ``strategy.reduce("MEAN", value, axis=0)`` ("Invalid reduction dimension 0 for input with 0
    dimensions"). Inside this block the step results are averaged over workers with ``axis=None`` when
    they are scalars; ``patch_multi_worker_build`` fixes the build per model. Nothing changes for other
    strategies or a single worker.
    """
    from keras.src.backend.tensorflow import trainer as keras_trainer

    original = keras_trainer.reduce_per_replica
    if not keras_trainer._collective_all_reduce_multi_worker(strategy):
        yield
        return

    def reduce_per_replica(values: Any, strategy: Any, reduction: str) -> Any:
        if reduction not in ("auto", "mean"):
            return original(values, strategy, reduction)
        import keras

        def reduce(value: Any) -> Any:
            if len(value.shape) == 0:
                return strategy.reduce("MEAN", value, axis=None)
            return original(value, strategy, reduction)

        return keras.tree.map_structure(reduce, values)

    keras_trainer.reduce_per_replica = reduce_per_replica
    try:
        yield
    finally:
        keras_trainer.reduce_per_replica = original


def patch_multi_worker_build(model: Any, strategy: Any) -> None:
    """Make ``model.fit`` work under ``MultiWorkerMirroredStrategy`` with more than one worker.

    Keras 3.15 ``fit`` builds the model from its first batch by calling ``strategy.reduce`` on the whole
    ``(x, y)`` tuple of per-replica values, which the multi-worker strategy rejects ("Attempt to convert
    a value (PerReplica...) to a Tensor"). This replaces that step, for this model only, with one reduce
    the local batch of the first replica, which has the shapes the build needs.
    """
    import keras

    original = model._maybe_symbolic_build

    def symbolic_build(iterator: Any = None, data_batch: Any = None) -> Any:
        if iterator is None or model._distribute_strategy is None:
            return original(iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            batch = next(batches)
            break
        # The build needs shapes and dtypes only, so this worker's first replica batch is enough. A
        # collective reduce here would also fail when workers' first batches differ in size.
        data_batch = keras.tree.map_structure(lambda value: strategy.experimental_local_results(value)[0], batch)
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = symbolic_build
