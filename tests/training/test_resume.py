"""Seeded runs repeat exactly, and a run interrupted twice and resumed ends where an uninterrupted one does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

SEED = 3


@pytest.fixture(scope="module")
def boxed_dataset(tmp_path_factory: pytest.TempPathFactory, av_faces_dir: Path, av_labels, boxed_dataset_writer) -> Path:
    """A labels-csv folder of 36 real photos with their face boxes, so phase 2 crops are recounted."""
    rows = sorted(av_labels, key=lambda row: row[1])[:: len(av_labels) // 36][:36]
    return boxed_dataset_writer(tmp_path_factory.mktemp("boxed_dataset"), av_faces_dir, rows)


def make_config(data: Path, out: Path, weights: Path, **overrides):
    from edgecount.training.config import TrainConfig

    settings = dict(
        data_dir=data, out_dir=out, alpha=0.35, image_size=64, weights=str(weights), seed=SEED, batch_size=8,
        epochs=3, fine_tune_epochs=2, fine_tune_layers=12, patience=8, stream=False, verbose=0, mosaic=0.5,
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def stop_after(phase: int, epoch: int):
    """An ``on_step`` callback that raises KeyboardInterrupt, like Ctrl-C, once a given epoch is saved."""

    def on_step(stage: str, done: int, total: int) -> None:
        if stage == f"phase{phase}" and done == epoch:
            raise KeyboardInterrupt

    return on_step


def final_weights(run_dir: Path) -> list[np.ndarray]:
    from edgecount.runs import RunDir

    return RunDir(run_dir).load_keras_model().get_weights()


def validation_rmse(run_dir: Path) -> float:
    """The validation RMSE of the saved model.keras, unrounded, through the runtime's preprocessing."""
    from edgecount.runs import RunDir
    from edgecount.runtime import load_image, preprocess

    run = RunDir(run_dir)
    samples = run.samples("validation")
    images = np.stack([preprocess(load_image(sample.path), (64, 64)) for sample in samples]).astype(np.float32)
    predictions = np.maximum(np.asarray(run.load_keras_model()(images, training=False)).reshape(-1), 0.0)
    return float(np.sqrt(np.mean((predictions - np.array([sample.count for sample in samples])) ** 2)))


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory, boxed_dataset: Path, weights_035: Path) -> Path:
    from edgecount.training.trainer import train

    out = tmp_path_factory.mktemp("reference") / "run"
    train(make_config(boxed_dataset, out, weights_035))
    return out


def test_train_same_seed_same_result(reference_run: Path, boxed_dataset: Path, weights_035: Path, tmp_path: Path):
    from edgecount.training.trainer import train

    out = tmp_path / "again"
    train(make_config(boxed_dataset, out, weights_035))
    for expected, actual in zip(final_weights(reference_run), final_weights(out), strict=True):
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6)
    assert validation_rmse(out) == pytest.approx(validation_rmse(reference_run), abs=1e-6)
    expected_history = (reference_run / "history.csv").read_text()
    assert (out / "history.csv").read_text() == expected_history


def test_train_resume_matches_uninterrupted(reference_run: Path, boxed_dataset: Path, weights_035: Path, tmp_path: Path, run_cli):
    from edgecount.training.trainer import train

    out = tmp_path / "interrupted"
    partial = tmp_path / ".interrupted.partial"
    config = make_config(boxed_dataset, out, weights_035)

    # Ctrl-C after phase 1 epoch 2, then again after phase 2 epoch 1.
    with pytest.raises(KeyboardInterrupt):
        train(config, on_step=stop_after(1, 2))
    state = json.loads((partial / "checkpoints" / "state.json").read_text())
    assert (state["phase"], state["phase1"]["epochs_done"]) == (1, 2)
    assert not out.exists()
    with pytest.raises(KeyboardInterrupt):
        train(config, on_step=stop_after(2, 1), resume=True)
    state = json.loads((partial / "checkpoints" / "state.json").read_text())
    assert (state["phase"], state["phase2"]["epochs_done"]) == (2, 1)

    # The command reads the settings from the partial folder and finishes the run.
    code, stdout, stderr = run_cli("-q", "train", "--resume", out)
    assert code == 0, stderr
    assert "Phase 2 epoch" not in stderr, "-q hides the per-epoch progress"
    assert json.loads(stdout)["run"] == str(out)
    assert not partial.exists()
    for expected, actual in zip(final_weights(reference_run), final_weights(out), strict=True):
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6)
    assert validation_rmse(out) == pytest.approx(validation_rmse(reference_run), abs=1e-6)
    assert (out / "history.csv").read_text() == (reference_run / "history.csv").read_text()
    resumed, reference = (json.loads((folder / "run.json").read_text()) for folder in (out, reference_run))
    assert resumed["metrics"] == reference["metrics"]
    assert [phase["epochs_run"] for phase in resumed["training"]["phases"]] == [3, 2]


def test_train_resume_keeps_split_after_image_breaks(boxed_dataset: Path, weights_035: Path, tmp_path: Path, caplog):
    """A validation photo that stops decoding before --resume is dropped; no other photo changes side or enters a mosaic."""
    import logging
    import shutil

    from edgecount.runs import read_split_paths
    from edgecount.training.trainer import train

    # An earlier `edgecount -q` in this process leaves the root logger at ERROR.
    caplog.set_level(logging.WARNING)
    data = tmp_path / "data"
    shutil.copytree(boxed_dataset, data, symlinks=True)
    out, partial = tmp_path / "run", tmp_path / ".run.partial"
    config = make_config(data, out, weights_035, epochs=2, fine_tune_epochs=1)
    with pytest.raises(KeyboardInterrupt):
        train(config, on_step=stop_after(1, 1))
    before = read_split_paths(partial / "split.csv")

    broken = sorted(before["validation"])[0]
    (data / "images" / broken.name).unlink()
    (data / "images" / broken.name).write_bytes(b"\xff\xd8 truncated")
    train(config, resume=True)
    after = read_split_paths(out / "split.csv")
    assert after["validation"] == before["validation"] - {broken}
    assert after["train"] == before["train"]
    assert "1 images of the saved split no longer load" in caplog.text


def test_train_resume_finished_run(reference_run: Path, run_cli):
    code, _, stderr = run_cli("train", "--resume", reference_run)
    assert code == 1
    assert "finished, so there is nothing to resume" in stderr
    assert "--force" in stderr


def test_train_resume_missing_run(run_cli, tmp_path: Path):
    code, _, stderr = run_cli("train", "--resume", tmp_path / "never")
    assert code == 1
    assert "no interrupted run at" in stderr
    assert ".never.partial not found" in " ".join(stderr.split())


def test_train_resume_old_relative_settings(run_cli, tmp_path: Path, monkeypatch, boxed_dataset: Path, weights_035: Path):
    values = make_config(boxed_dataset, tmp_path / "old", weights_035).as_dict()
    values["data_dir"] = "relative/dataset"
    (tmp_path / ".old.partial").mkdir()
    (tmp_path / ".old.partial" / "train_config.json").write_text(json.dumps(values))
    monkeypatch.chdir(tmp_path)
    code, _, stderr = run_cli("train", "--resume", tmp_path / "old")
    assert code == 1
    message = " ".join(stderr.split())
    assert "relative dataset path relative/dataset" in message
    assert "from the folder the run was started in" in message


def test_train_resume_partial_without_settings(run_cli, tmp_path: Path):
    (tmp_path / ".old.partial" / "features").mkdir(parents=True)
    code, _, stderr = run_cli("train", "--resume", tmp_path / ".old.partial")
    assert code == 1
    assert "train_config.json not found" in " ".join(stderr.split())


def test_train_resume_rejects_other_settings(run_cli, tmp_path: Path):
    code, _, stderr = run_cli("train", "--resume", tmp_path / "run", "--epochs", "5", "--alpha", "0.5")
    assert code == 2
    assert "drop --alpha, --epochs" in " ".join(stderr.split())


def test_train_requires_data_and_out(run_cli, tmp_path: Path):
    code, _, stderr = run_cli("train", "--out", tmp_path / "run")
    assert code == 2
    assert "--data and --out are required" in " ".join(stderr.split())
