"""The augmentation that run.json records follows what each phase trained on."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecount.training.config import TrainConfig
from edgecount.training.record import describe_augmentation


@pytest.fixture
def config(tmp_path: Path) -> TrainConfig:
    return TrainConfig(data_dir=tmp_path, out_dir=tmp_path / "run")


def test_augmentation_phase_two_on_maps(config):
    text = describe_augmentation(config, True, [{"phase": 1}, {"phase": 2, "input": "cached maps at the input of block_13_expand"}])
    assert text == "phase 1: horizontal flip (plain or mirrored features); phase 2: horizontal flip (plain or mirrored maps)"


def test_augmentation_phase_two_on_images(config):
    text = describe_augmentation(config, True, [{"phase": 1}, {"phase": 2, "input": "images"}])
    assert "phase 2: horizontal flip, brightness" in text
    assert text.endswith("crops recounted from boxes")
    assert describe_augmentation(config, False, [{"phase": 1}, {"phase": 2, "input": "images"}]).endswith("no crops (no boxes)")


def test_augmentation_phase_one_only(config):
    assert describe_augmentation(config, True, [{"phase": 1}]) == "phase 1: horizontal flip (plain or mirrored features)"


def test_augmentation_off(config):
    config.augment = False
    assert describe_augmentation(config, True, [{"phase": 1}, {"phase": 2, "input": "images"}]) == "none"
