"""A small real training run through ``edgecount train``: both phases, the run folder, refusals and errors."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

# The log target runs the inverse layers through both phases, the metrics and the saved model.
TRAIN_ARGS = (
    "--alpha", "0.35", "--image-size", "64", "--epochs", "2", "--fine-tune-epochs", "1", "--batch-size", "8", "--target", "log", "--mosaic", "0.5",
)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory, av_faces_dir: Path, av_labels) -> Path:
    """A labels-csv folder of 36 real photos plus one corrupt JPEG that only decoding can detect."""
    folder = tmp_path_factory.mktemp("small_dataset")
    (folder / "images").mkdir()
    rows = sorted(av_labels, key=lambda row: row[1])[:: len(av_labels) // 36][:36]
    for name, _ in rows:
        os.symlink(av_faces_dir / "images" / name, folder / "images" / name)
    (folder / "images" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated, not a JPEG body")
    lines = ["image,count"] + [f"{name},{count}" for name, count in rows] + ["corrupt.jpg,3"]
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory, small_dataset: Path, weights_035: Path) -> tuple[Path, str]:
    """One real run of both phases at 64x64; returns the run folder and the printed summary."""
    from edgecount.cli import main

    out = tmp_path_factory.mktemp("runs") / "small"
    import contextlib
    import io

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        try:
            main(["train", "--data", str(small_dataset), "--out", str(out), "--weights", str(weights_035), *TRAIN_ARGS])
        except SystemExit as exit_:
            assert exit_.code in (0, None)
    return out, stdout.getvalue()


def test_train_writes_complete_run_folder(trained_run):
    out, _ = trained_run
    for name in ("run.json", "split.csv", "model.keras", "history.csv", "loss.png"):
        assert (out / name).is_file(), name
    assert len(list((out / "features").glob("*.npy"))) == 5, "plain and mirrored phase 1 features and phase 2 maps, and the mosaic maps"
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert (state["phase"], state["phase2"]["finished"]) == (2, True)
    assert (out / "checkpoints" / state["arrays"]).is_file()
    assert (out / "train_config.json").is_file()
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out.parent / f".{out.name}.partial").exists()


def test_train_run_json_contract(trained_run, weights_035: Path):
    from edgecount.runs import RunDir

    out, _ = trained_run
    run = RunDir(out)
    assert run.alpha == 0.35
    assert run.image_size == 64
    assert run.config["model"]["weights"] == str(weights_035)
    assert run.config["model"]["file"] == "model.keras"
    assert run.config["preprocessing"]["function"] == "edgecount.runtime.preprocess"
    assert run.config["preprocessing"]["color"] == "RGB"
    assert run.config["preprocessing"]["range"] == [0, 255]
    for key in ("val_rmse", "val_mae", "val_bias", "train_rmse"):
        assert np.isfinite(run.config["metrics"][key]), key
    phases = run.config["training"]["phases"]
    assert [phase["phase"] for phase in phases] == [1, 2]
    assert phases[0]["epochs_run"] == 2
    assert phases[1]["epochs_run"] == 1
    assert "inference mode" in phases[1]["batch_norm"]
    assert run.config["training"]["augmentation"].endswith("phase 2: horizontal flip (plain or mirrored maps)")
    assert run.config["training"]["count_weighting"] == "none"
    assert run.config["training"]["mosaic"] == "mosaics of 4 training photos at half size in phase 2, 0.5 per training photo: a pool drawn once, its maps computed once"
    assert phases[1]["mosaics_per_epoch"] == round(0.5 * run.config["split"]["train"])
    assert run.config["training"]["mosaic_seconds"] >= 0
    assert run.config["split"]["train"] + run.config["split"]["validation"] == 36
    assert run.config["training"]["target"] == "log"
    assert run.config["data"]["images"] == 36
    assert run.config["data"]["format"] == "labels-csv"
    assert run.config["edgecount_version"]


def test_train_log_target_model_outputs_counts(trained_run):
    from edgecount.runs import RunDir
    from edgecount.training.model import model_target

    model = RunDir(trained_run[0]).load_keras_model()
    assert model_target(model) == "log"
    assert model.layers[-1].name == "count"


def test_train_skips_undecodable_image(trained_run):
    from edgecount.runs import RunDir

    out, _ = trained_run
    run = RunDir(out)
    assert run.config["data"]["skipped"] == 1
    assert "corrupt.jpg" in run.config["data"]["skipped_rows"][0]
    paths = [sample.path.name for sample in run.samples("train") + run.samples("validation")]
    assert "corrupt.jpg" not in paths
    assert len(paths) == 36


def test_train_split_matches_run_json(trained_run):
    from edgecount.runs import RunDir

    out, _ = trained_run
    run = RunDir(out)
    train, validation = run.samples("train"), run.samples("validation")
    assert len(validation) == run.config["split"]["validation"] == 7
    assert {sample.path for sample in train}.isdisjoint(sample.path for sample in validation)
    assert all(sample.path.is_absolute() for sample in train + validation)


def test_train_history_has_both_phases(trained_run):
    out, _ = trained_run
    with open(out / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["phase"], row["epoch"]) for row in rows] == [("1", "1"), ("1", "2"), ("2", "3")]
    assert all(float(row["val_rmse"]) >= 0 for row in rows)


def test_train_prints_metrics_json(trained_run):
    out, stdout = trained_run
    summary = json.loads(stdout)
    assert summary["run"] == str(out)
    assert summary["val_rmse"] >= 0
    assert summary["seconds"] > 0


def test_train_model_reproduces_val_metrics(trained_run):
    """The saved model.keras, fed by the runtime's preprocessing, gives the val RMSE in run.json."""
    from edgecount.runs import RunDir
    from edgecount.runtime import load_image, preprocess

    run = RunDir(trained_run[0])
    model = run.load_keras_model()
    validation = run.samples("validation")
    images = np.stack([preprocess(load_image(sample.path), (64, 64)) for sample in validation]).astype(np.float32)
    predictions = np.maximum(np.asarray(model(images, training=False)).reshape(-1), 0.0)
    truth = np.array([sample.count for sample in validation])
    rmse = float(np.sqrt(np.mean((predictions - truth) ** 2)))
    assert rmse == pytest.approx(run.config["metrics"]["val_rmse"], abs=1e-3)


def test_train_refuses_existing_run_without_force(trained_run, small_dataset: Path, run_cli):
    out, _ = trained_run
    before = (out / "run.json").read_bytes()
    code, _, stderr = run_cli("train", "--data", small_dataset, "--out", out)
    assert code == 1
    assert "already exists" in stderr
    assert "--force" in stderr
    assert (out / "run.json").read_bytes() == before


def test_train_force_streams_cached_features(trained_run, small_dataset: Path, weights_035: Path, run_cli, tmp_path: Path):
    import shutil

    from edgecount.training.features import feature_cache_key

    out = tmp_path / "copy"
    shutil.copytree(trained_run[0], out)
    # Drop the mirrored features, so the stream computes them again.
    # The feature files list every image, the phase 2 maps only the decodable ones.
    listed = [json.loads(index.read_text())["paths"] for index in (out / "features").glob("*.json")]
    paths = [Path(path) for path in max(listed, key=len)]
    mirrored_file = out / "features" / f"{feature_cache_key(paths, 0.35, 64, str(weights_035), 0, mirrored=True)}.npy"
    in_memory = np.load(mirrored_file)
    mirrored_file.unlink()
    code, stdout, stderr = run_cli(
        "-v", "train", "--data", small_dataset, "--out", out, "--weights", weights_035, "--force",
        "--alpha", "0.35", "--image-size", "64", "--epochs", "1", "--fine-tune-epochs", "1", "--stream",
        "--tensorboard", "--count-weighting", "sqrt-inverse", "--mosaic", "1",
    )
    assert code == 0, stderr
    assert "reusing cached features" in stderr
    assert "phase 2 trains over images instead of cached maps (--fine-tune-on maps)" in stderr
    np.testing.assert_allclose(np.load(mirrored_file), in_memory, rtol=1e-4, atol=1e-4)
    config = json.loads((out / "run.json").read_text())
    assert config["training"]["input_path"] == "tf.data stream"
    assert [phase["epochs_run"] for phase in config["training"]["phases"]] == [1, 1]
    assert config["training"]["phases"][1]["input"] == "images", "streamed images fine-tune over images"
    assert config["training"]["count_weighting"] == "sqrt-inverse"
    assert config["training"]["mosaic"] == "mosaics of 4 training photos at half size in phase 2, 1 per training photo: fresh mosaics of the augmented photos in every epoch"
    assert config["training"]["augmentation"].startswith("phase 1: horizontal flip (plain or mirrored features); phase 2: horizontal flip, brightness")
    assert config["data"]["skipped"] == 1
    assert list((out / "logs" / "phase1").rglob("events.out.tfevents.*"))
    assert list((out / "logs" / "phase2").rglob("events.out.tfevents.*"))
    assert json.loads(stdout)["val_rmse"] == config["metrics"]["val_rmse"]


def test_train_mosaic_without_phase_two_warns(small_dataset: Path, weights_035: Path, run_cli, tmp_path: Path):
    code, _, stderr = run_cli(
        "train", "--data", small_dataset, "--out", tmp_path / "run", "--weights", weights_035,
        "--alpha", "0.35", "--image-size", "64", "--epochs", "1", "--fine-tune-epochs", "0", "--mosaic", "1",
    )
    assert code == 0, stderr
    assert "--mosaic 1 has no effect without phase 2" in stderr
    assert json.loads((tmp_path / "run" / "run.json").read_text())["training"]["mosaic"] == "none"


def test_train_force_rejects_unrelated_folder(small_dataset: Path, run_cli, tmp_path: Path):
    (tmp_path / "thesis.tex").write_text("precious")
    code, _, stderr = run_cli("train", "--data", small_dataset, "--out", tmp_path, "--force")
    assert code == 1
    assert "not a training run" in stderr
    assert (tmp_path / "thesis.tex").read_text() == "precious"


def test_train_missing_weights_file(small_dataset: Path, run_cli, tmp_path: Path):
    code, _, stderr = run_cli("train", "--data", small_dataset, "--out", tmp_path / "run", "--weights", tmp_path / "absent.h5", "--image-size", "64")
    assert code == 1
    assert "absent.h5 not found" in stderr
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5" in stderr
    assert not (tmp_path / "run").exists()
    assert not (tmp_path / ".run.partial").exists(), "nothing staged that --resume could continue"
    assert "--resume" not in stderr


def test_train_weights_for_other_alpha(small_dataset: Path, weights_035: Path, run_cli, tmp_path: Path):
    weights_05 = weights_035.parent / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_224_no_top.h5"
    if not weights_05.exists():
        pytest.skip(f"the alpha 0.5 weights are not at {weights_05}")
    code, _, stderr = run_cli("train", "--data", small_dataset, "--out", tmp_path / "run", "--weights", weights_05, "--alpha", "0.35", "--image-size", "64")
    assert code == 1
    assert "do not fit MobileNetV2 alpha 0.35" in stderr
    assert not (tmp_path / ".run.partial").exists()
    assert "--resume" not in stderr


def test_train_missing_dataset(run_cli, tmp_path: Path):
    code, _, stderr = run_cli("train", "--data", tmp_path / "nowhere", "--out", tmp_path / "run")
    assert code == 1
    assert "dataset folder" in stderr
    assert "not found" in stderr


@pytest.mark.parametrize("args, fragment", [
    (("--alpha", "0.4"), "--alpha must be one of 0.35, 0.5, 0.75, 1.0"),
    (("--validation-split", "1.5"), "--validation-split must be between 0 and 1"),
    (("--strategy", "cluster"), "--strategy must be one of default, mirrored, multi-worker"),
    (("--loss", "mae"), "--loss must be one of huber, mse"),
    (("--learning-rate", "0"), "--learning-rate must be positive"),
    (("--fine-tune-on", "pixels"), "--fine-tune-on must be one of maps, images"),
    (("--fine-tune-layers", "150"), "--fine-tune-layers 150 reaches the first block of MobileNetV2"),
    (("--fine-tune-layers", "1"), "so no base weight would train; pass at least --fine-tune-layers 3 (Conv_1), or 0 to skip phase 2"),
    (("--fine-tune-layers", "2"), "--fine-tune-layers 2 unfreezes only out_relu and Conv_1_bn"),
    (("--count-weighting", "inverse"), "--count-weighting must be one of none, sqrt-inverse, got 'inverse'"),
    (("--mosaic", "5"), "--mosaic must be between 0 (no mosaics) and 4 mosaics per training photo, got 5"),
    (("--mosaic", "-0.5"), "--mosaic must be between 0 (no mosaics) and 4 mosaics per training photo, got -0.5"),
    (("--mosaic", "nan"), "--mosaic must be between 0 (no mosaics) and 4 mosaics per training photo, got nan"),
])
def test_train_rejects_bad_option(run_cli, tmp_path: Path, small_dataset: Path, args, fragment):
    code, _, stderr = run_cli("train", "--data", small_dataset, "--out", tmp_path / "run", *args)
    assert code == 2
    # Rich wraps long messages inside a box, so drop its borders before matching.
    assert fragment in " ".join(stderr.replace("│", " ").split())


def test_train_help_without_tensorflow(python_without_tensorflow):
    result = python_without_tensorflow("from edgecount.cli import main\nmain(['train', '--help'])")
    assert result.returncode == 0, result.stderr
    for option in ("--data", "--out", "--resume", "--augment", "--alpha", "--weights", "--fine-tune-layers", "--stream", "--strategy"):
        assert option in result.stdout


def test_train_strict_fails_on_undecodable_image(small_dataset: Path, weights_035: Path, run_cli, tmp_path: Path):
    out = tmp_path / "strict"
    code, _, stderr = run_cli(
        "train", "--data", small_dataset, "--out", out, "--weights", weights_035, "--image-size", "64", "--strict",
    )
    assert code == 1
    assert "corrupt.jpg" in stderr
    assert "strict mode" in stderr
    assert "partial run stays in" in stderr
    assert not out.exists()
    assert list((tmp_path / ".strict.partial" / "features").glob("*.npy"))
