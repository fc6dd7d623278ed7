"""Training settings: absolute paths, so a saved run resumes from any folder, and defaults for older saved settings."""

from __future__ import annotations

from pathlib import Path

from edgecount.training.config import TrainConfig


def test_config_paths_made_absolute(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = TrainConfig(data_dir=Path("data"), out_dir=Path("runs/one"), features_dir=Path("cache"), weights="weights/base.h5")
    assert config.data_dir == tmp_path / "data"
    assert config.out_dir == tmp_path / "runs" / "one"
    assert config.features_dir == tmp_path / "cache"
    assert config.weights == str(tmp_path / "weights" / "base.h5")


def test_config_normalises_paths(tmp_path: Path, monkeypatch):
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    config = TrainConfig(data_dir=Path("../data/"), out_dir=Path("../runs/x/../one"), weights="./w/../base.h5")
    assert config.data_dir == tmp_path / "data"
    assert config.out_dir == tmp_path / "runs" / "one"
    assert config.weights == str(tmp_path / "work" / "base.h5")


def test_config_weight_keywords_any_case(tmp_path: Path):
    for keyword, expected in (("imagenet", "imagenet"), ("ImageNet", "imagenet"), ("none", "none"), ("None", "none"), ("NONE", "none"), (None, "none")):
        assert TrainConfig(data_dir=tmp_path, out_dir=tmp_path, weights=keyword).weights == expected


def test_saved_config_resumes_elsewhere(tmp_path: Path, monkeypatch):
    (tmp_path / "start").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "start")
    saved = TrainConfig(data_dir=Path("data"), out_dir=Path("run"), weights="base.h5").as_dict()

    monkeypatch.chdir(tmp_path / "elsewhere")
    restored = TrainConfig.from_dict(saved)
    assert restored.data_dir == tmp_path / "start" / "data"
    assert restored.out_dir == tmp_path / "start" / "run"
    assert restored.weights == str(tmp_path / "start" / "base.h5")
    assert restored.features_dir is None


def test_settings_saved_before_mosaics_resume_without_them(tmp_path: Path):
    saved = TrainConfig(data_dir=tmp_path, out_dir=tmp_path / "run", mosaic=1.5).as_dict()
    assert saved["mosaic"] == 1.5
    assert TrainConfig.from_dict(saved).mosaic == 1.5
    del saved["mosaic"]
    assert TrainConfig.from_dict(saved).mosaic == 0.0
