"""Distribution strategies chosen by --strategy."""

from __future__ import annotations

import pytest

from edgecount.training.distribute import StrategyError, create_strategy


@pytest.mark.parametrize("name", ["default", "mirrored"])
def test_create_strategy_local(name: str):
    strategy = create_strategy(name)
    assert strategy.num_replicas_in_sync >= 1


def test_create_strategy_unknown_name():
    with pytest.raises(StrategyError, match="--strategy must be one of default, mirrored, multi-worker, got 'tpu'"):
        create_strategy("tpu")


def test_create_strategy_invalid_tf_config(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TF_CONFIG", "{cluster: not json")
    with pytest.raises(StrategyError, match="TF_CONFIG is not valid JSON"):
        create_strategy("multi-worker")
