"""Cross-validation through ``edgecount train --folds``: a real 2-fold run, the fold deal, and bad values."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

CV_ARGS = ("--alpha", "0.35", "--image-size", "64", "--epochs", "3", "--fine-tune-epochs", "1", "--batch-size", "8", "--target", "sqrt",
           "--count-weighting", "sqrt-inverse", "--mosaic", "0.5", "--quadrants", "1")


@pytest.fixture(scope="module")
def cv_dataset(tmp_path_factory: pytest.TempPathFactory, av_faces_dir: Path, av_labels) -> Path:
    """A labels-csv folder of 40 real photos with their face boxes, spread over the whole count range, crowded ones included."""
    folder = tmp_path_factory.mktemp("cv_dataset")
    (folder / "images").mkdir()
    ordered = sorted(av_labels, key=lambda row: (row[1], row[0]))
    rows = ordered[:: len(ordered) // 32][:32] + ordered[-8:]
    for name, _ in rows:
        os.symlink(av_faces_dir / "images" / name, folder / "images" / name)
    (folder / "labels.csv").write_text("image,count\n" + "".join(f"{name},{count}\n" for name, count in rows))
    names = {name for name, _ in rows}
    box_lines = [line for line in (av_faces_dir / "boxes.csv").read_text().splitlines()[1:] if line.split(",", 1)[0] in names]
    (folder / "boxes.csv").write_text("image,xmin,ymin,xmax,ymax\n" + "\n".join(box_lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory: pytest.TempPathFactory, cv_dataset: Path, weights_035: Path) -> tuple[Path, dict]:
    """One real 2-fold cross-validation with phase 2 and int8 scoring; returns the folder and the printed summary."""
    from edgecount.cli import main

    out = tmp_path_factory.mktemp("cv") / "small-cv"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            main(["train", "--data", str(cv_dataset), "--out", str(out), "--weights", str(weights_035), "--folds", "2", "--cv-int8", *CV_ARGS])
        except SystemExit as exit_:
            assert exit_.code in (0, None)
    (out.parent / "stderr.txt").write_text(stderr.getvalue())
    return out, json.loads(stdout.getvalue())


def read_predictions(out: Path) -> list[dict[str, str]]:
    with open(out / "predictions.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_crossval_writes_reports(cv_run):
    out, summary = cv_run
    for name in ("cv.json", "cv.md", "predictions.csv"):
        assert (out / name).is_file(), name
    assert len(list((out / "features").glob("*.npy"))) == 7, "plain and mirrored phase 1 features and phase 2 maps, each fold's mosaic maps, and the quadrant maps"
    assert not list(out.glob("**/*.keras")), "fold models are not kept"
    assert not list(out.glob("**/*.tflite"))
    assert not (out.parent / f".{out.name}.partial").exists()
    assert summary["folds"] == 2
    assert summary["rmse_mean"] > 0
    assert summary["int8_rmse_ratio_mean"] > 0
    assert summary["tiles_rmse_mean"] > 0


def test_crossval_fold_lines_off_terminal(cv_run):
    out, _ = cv_run
    lines = (out.parent / "stderr.txt").read_text().splitlines()
    folds = [line for line in lines if line.startswith("fold ")]
    assert [line.split(" done after ")[0] for line in folds] == ["fold 1/2", "fold 2/2"], lines
    assert all(line.endswith(" min") for line in folds)


def test_crossval_predicts_each_image_once(cv_run, cv_dataset: Path):
    out, _ = cv_run
    rows = read_predictions(out)
    labelled = {row["image"]: float(row["count"]) for row in csv.DictReader(open(cv_dataset / "labels.csv"))}
    names = [Path(row["path"]).name for row in rows]
    assert sorted(names) == sorted(labelled)
    assert all(float(row["true_count"]) == labelled[Path(row["path"]).name] for row in rows)
    assert {row["fold"] for row in rows} == {"1", "2"}
    assert abs(sum(row["fold"] == "1" for row in rows) - 20) <= 1
    assert all(float(row["count"]) >= 0 and float(row["count_int8"]) >= 0 for row in rows)
    assert all(float(row["count_tiles"]) >= 0 for row in rows)


def test_crossval_metrics_match_predictions(cv_run):
    out, _ = cv_run
    document = json.loads((out / "cv.json").read_text())
    rows = read_predictions(out)
    errors = np.array([float(row["count"]) - float(row["true_count"]) for row in rows])
    assert document["pooled"]["rmse"] == pytest.approx(np.sqrt(np.mean(errors**2)), abs=1e-3)
    assert document["pooled"]["bias"] == pytest.approx(errors.mean(), abs=1e-3)
    fold_rmse = [row["rmse"] for row in document["folds_detail"]]
    assert document["mean"]["rmse"]["mean"] == pytest.approx(np.mean(fold_rmse), abs=1e-3)
    assert document["mean"]["rmse"]["std"] == pytest.approx(np.std(fold_rmse, ddof=1), abs=1e-3)
    for fold in document["folds_detail"]:
        assert fold["early_stopping_images"] + fold["train_images"] + fold["images"] == 40
        assert fold["int8_rmse_ratio"] == pytest.approx(fold["int8"]["rmse"] / fold["rmse"], abs=1e-3)
        assert [phase["phase"] for phase in fold["phases"]] == [1, 2]
    assert document["settings"]["target"] == "sqrt"
    assert all(fold["mosaic_seconds"] > 0 for fold in document["folds_detail"]), "each fold draws and runs its own mosaics"
    assert document["timing"]["mosaic_seconds"] == pytest.approx(sum(fold["mosaic_seconds"] for fold in document["folds_detail"]), abs=0.02)
    assert f", mosaics {document['timing']['mosaic_seconds']:.0f} s and quadrants " in (out / "cv.md").read_text()


def test_crossval_bucket_table(cv_run):
    out, _ = cv_run
    document = json.loads((out / "cv.json").read_text())
    rows = read_predictions(out)
    buckets = {row["bucket"]: row for row in document["buckets"]}
    assert list(buckets) == ["1-4", "5-9", "10-14", "15+"]
    assert sum(row["images"] for row in buckets.values()) == 40
    crowded = [float(row["count"]) - float(row["true_count"]) for row in rows if float(row["true_count"]) >= 15]
    assert buckets["15+"]["images"] == len(crowded) > 0
    assert buckets["15+"]["bias"] == pytest.approx(np.mean(crowded), abs=1e-3)
    report = (out / "cv.md").read_text()
    assert "| faces | images | RMSE | MAE | bias | int8 RMSE | int8 bias | tiles RMSE | tiles bias |" in report
    assert "| 15+ | " in report
    assert (
        "fine-tuning of the last 39 layers on cached maps for up to 1 epochs, sample weights sqrt-inverse of the count frequency, "
        "phase 2 mosaics of 4 half-size photos, 0.5 per training photo, phase 2 quadrant crops, 1 per training photo"
    ) in report
    assert report.count("\n| 1 | ") == 1
    assert report.count("\n| 2 | ") == 1


def test_crossval_buckets_by_prediction(cv_run):
    out, _ = cv_run
    document = json.loads((out / "cv.json").read_text())
    rows = read_predictions(out)
    predicted = np.array([float(row["count"]) for row in rows])
    first = "0-4" if (np.rint(predicted) == 0).any() else "1-4"
    buckets = {row["bucket"]: row for row in document["predicted_buckets"]}
    assert list(buckets) == [first, "5-9", "10-14", "15+"]
    assert sum(row["images"] for row in buckets.values()) == 40
    low = [float(row["count"]) - float(row["true_count"]) for row in rows if round(float(row["count"])) <= 4]
    assert buckets[first]["images"] == len(low)
    assert buckets[first]["bias"] == pytest.approx(np.mean(low), abs=1e-3)
    assert "| predicted faces | images | RMSE | MAE | bias |" in (out / "cv.md").read_text()


def test_bucket_name_with_zero_counts():
    from edgecount.training.crossval import bucket_metrics

    assert bucket_metrics(np.array([1.0, 3.0]), np.array([0.0, 3.0]))[0]["bucket"] == "0-4"
    assert bucket_metrics(np.array([1.0, 3.0]), np.array([1.0, 3.0]))[0]["bucket"] == "1-4"


def test_crossval_scores_counting_by_tiles(cv_run):
    out, _ = cv_run
    document = json.loads((out / "cv.json").read_text())
    rows = read_predictions(out)
    errors = np.array([float(row["count_tiles"]) - float(row["true_count"]) for row in rows])
    assert document["tiles"]["pooled"]["rmse"] == pytest.approx(np.sqrt(np.mean(errors**2)), abs=1e-3)
    fold_rmse = [fold["tiles"]["rmse"] for fold in document["folds_detail"]]
    assert document["tiles"]["mean"]["rmse"]["mean"] == pytest.approx(np.mean(fold_rmse), abs=1e-3)
    assert document["timing"]["quadrant_seconds"] > 0
    report = (out / "cv.md").read_text()
    assert "Counted by tiles (the mean of the whole-photo count and the sum of the 4 quadrant counts" in report
    assert f"Pooled out-of-fold: RMSE {document['tiles']['pooled']['rmse']:.3f}" in report
    assert "and quadrants " in report


def test_crossval_report_names_cached_mosaics(cv_run):
    """Mosaics read back from the cache take about 0 s, and cv.md still names them."""
    from edgecount.training.cv_report import format_cv_report

    out, _ = cv_run
    document = json.loads((out / "cv.json").read_text())
    document["timing"]["mosaic_seconds"] = 0.0
    assert ", mosaics 0 s and quadrants " in format_cv_report(document)
    document["settings"]["mosaic"] = 0
    assert " s and quadrants " in format_cv_report(document)
    assert "mosaics 0 s" not in format_cv_report(document)
    document["settings"]["quadrants"] = 0
    assert "of which features " in format_cv_report(document)
    assert format_cv_report(document).rstrip().endswith(" s.")
    assert " and " not in format_cv_report(document).splitlines()[-1]


def test_crossval_report_names_skipped_photos(cv_run):
    from edgecount.training.cv_report import format_cv_report

    out, _ = cv_run
    document = json.loads((out / "cv.json").read_text())
    assert "Skipped" not in format_cv_report(document)
    document["data"]["skipped"] = 7
    document["data"]["skipped_rows"] = [f"images/{index}.jpg: failed to decode" for index in range(7)]
    report = format_cv_report(document)
    assert "Skipped 7 rows or images:" in report
    assert "- images/4.jpg: failed to decode" in report
    assert "images/5.jpg" not in report
    assert "- 2 more, in cv.json (data.skipped_rows lists up to 20)" in report


def test_crossval_refuses_existing_folder(cv_run, cv_dataset: Path, run_cli):
    out, _ = cv_run
    code, _, err = run_cli("train", "--data", cv_dataset, "--out", out, "--folds", "2")
    assert code == 1
    assert "already exists; pass --force" in err


def test_assign_folds_stratified():
    from edgecount.training.crossval import assign_folds

    counts = np.repeat(np.arange(1, 11), 10).astype(float)
    folds = assign_folds(counts, 5, seed=3)
    assert np.bincount(folds).tolist() == [20] * 5
    for fold in range(5):
        assert sorted(counts[folds == fold]) == sorted(np.repeat(np.arange(1, 11), 2))
    assert np.array_equal(folds, assign_folds(counts, 5, seed=3))
    assert not np.array_equal(folds, assign_folds(counts, 5, seed=4))


def test_assign_folds_uneven_sizes():
    from edgecount.training.crossval import assign_folds

    folds = assign_folds(np.arange(23, dtype=float), 5)
    assert sorted(np.bincount(folds, minlength=5).tolist()) == [4, 4, 5, 5, 5]


@pytest.mark.parametrize(("folds", "fragment"), [(1, "at least 2"), (50, "more than the 40 usable images")])
def test_assign_folds_bad_count(folds: int, fragment: str):
    from edgecount.training.crossval import CrossValidationError, assign_folds

    with pytest.raises(CrossValidationError, match=fragment):
        assign_folds(np.ones(40), folds)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--folds", "1"), "--folds must be 0 (train one run) or at least 2, got 1"),
        (("--folds", "-3"), "got -3"),
        (("--cv-int8",), "--cv-int8 needs --folds K"),
        (("--folds", "2", "--target", "cube"), "--target must be one of count, sqrt, log"),
        (("--folds", "2", "--strategy", "mirrored"), "--folds trains on one device only, got --strategy mirrored"),
        (("--folds", "2", "--tensorboard"), "--folds does not write TensorBoard logs"),
    ],
)
def test_train_folds_bad_options(run_cli, cv_dataset: Path, tmp_path: Path, args, fragment: str):
    code, _, err = run_cli("train", "--data", cv_dataset, "--out", tmp_path / "cv", *args)
    assert code == 2
    assert fragment in " ".join(err.replace("│", " ").split())


def test_train_too_many_folds(run_cli, cv_dataset: Path, tmp_path: Path):
    code, _, err = run_cli("train", "--data", cv_dataset, "--out", tmp_path / "cv", "--folds", "41")
    assert code == 1
    assert "--folds 41 is more than the 40 usable images" in err
    assert not (tmp_path / "cv").exists()


def test_train_folds_too_small(run_cli, cv_dataset: Path, tmp_path: Path):
    """4 photos in 2 folds leave 2 training photos per fold, and 0.2 of 2 rounds to 0 for early stopping."""
    folder = tmp_path / "tiny"
    (folder / "images").mkdir(parents=True)
    rows = (cv_dataset / "labels.csv").read_text().splitlines()[1:5]
    for row in rows:
        name = row.split(",")[0]
        os.symlink(cv_dataset / "images" / name, folder / "images" / name)
    (folder / "labels.csv").write_text("image,count\n" + "\n".join(rows) + "\n")
    code, _, err = run_cli("train", "--data", folder, "--out", tmp_path / "cv", "--folds", "2")
    assert code == 1
    message = " ".join(err.split())
    assert "--folds 2 on 4 images leaves 2 training images in fold 1" in message
    assert "--validation-split 0.2 of them leaves 0 for early stopping and 2 to train" in message
    assert "a larger --validation-split" in message
    assert not (tmp_path / "cv").exists()
    assert not list(tmp_path.glob(".cv*")), "no staging folder is left behind"


def test_train_config_keeps_features_dir(tmp_path: Path):
    from edgecount.training.config import TrainConfig

    config = TrainConfig(data_dir=tmp_path, out_dir=tmp_path / "cv", features_dir=tmp_path / "cache", target="log")
    restored = TrainConfig.from_dict(json.loads(json.dumps(config.as_dict())))
    assert restored.features_dir == tmp_path / "cache"
    assert restored.target == "log"
    assert TrainConfig.from_dict({**config.as_dict(), "features_dir": None}).features_dir is None
    assert restored.fine_tune_on == "maps"
    older = {key: value for key, value in config.as_dict().items() if key != "fine_tune_on"}
    assert TrainConfig.from_dict(older).fine_tune_on == "images", "runs saved before phase 2 on maps fine-tune over images"
