"""Distribution strategies for ``edgecount train --strategy``."""

from __future__ import annotations

import json
import logging
import os
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
