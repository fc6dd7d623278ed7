"""Quadrant crops in phase 2: recounted targets, the pool each run draws, the cached maps, and a real run with --quadrants."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edgecount.training.quadrant_pool import QuadrantMaps, QuadrantPool, quadrant_targets, split_boxes


def _sample(name: str, count: float) -> SimpleNamespace:
    return SimpleNamespace(path=Path(name), count=count)


def test_targets_split_boxes_by_area():
    # A 100x80 photo: the cut is at x=50 and y=40. The second box straddles the vertical cut, 3 to 1.
    boxes = {Path("a.jpg"): np.array([[10, 10, 20, 20], [40, 50, 80, 60]], np.float32)}
    targets = quadrant_targets([_sample("a.jpg", 2)], boxes, {Path("a.jpg"): (100, 80)})
    np.testing.assert_allclose(targets, [[1.0, 0.0, 0.25, 0.75]])
    assert targets.sum() == pytest.approx(2.0)


def test_split_boxes_counts_each_once():
    boxes = np.array([[50, 50, 50, 50], [80, 80, 120, 120], [10, 10, 20, 20], [40, 50, 80, 60], [-30, -30, -10, -10]], np.float32)
    totals = split_boxes(boxes, 100, 100)
    # The point on the centre goes to the bottom-right quadrant, and the box mostly outside counts 1.
    np.testing.assert_allclose(totals, [2.0, 0.0, 0.25, 2.75])
    assert totals.sum() == pytest.approx(len(boxes))


def test_targets_without_boxes():
    samples = [_sample("empty.jpg", 0), _sample("unboxed.jpg", 3), _sample("undecoded.jpg", 1)]
    boxes = {Path("undecoded.jpg"): np.array([[0, 0, 4, 4]], np.float32)}
    targets = quadrant_targets(samples, boxes, {Path("empty.jpg"): (64, 64), Path("unboxed.jpg"): (64, 64)})
    np.testing.assert_array_equal(targets[0], [0, 0, 0, 0])
    assert np.isnan(targets[1]).all(), "faces without boxes cannot be split"
    assert np.isnan(targets[2]).all(), "a photo of unknown size cannot be split"


def _quadrant_maps(photos: int) -> QuadrantMaps:
    """Maps whose single value is 10 * row + quadrant, so a test can tell which crop it got."""
    maps = (10 * np.arange(photos)[:, None] + np.arange(4)[None, :]).astype(np.float32)[..., None]
    targets = np.tile(np.array([1.0, 4.0, 9.0, 16.0], np.float32), (photos, 1))
    return QuadrantMaps(maps, targets, np.ones(photos, bool), {})


def test_pool_draws_from_training_rows():
    pool = QuadrantPool(_quadrant_maps(10), per_photo=2, seed=5)
    inputs, targets = pool.select(np.array([7, 1, 3]))
    values = inputs[:, 0].astype(int)
    assert len(values) == 6
    assert sorted({value // 10 for value in values}) == [1, 3, 7]
    for row in (1, 3, 7):
        assert len({value % 10 for value in values if value // 10 == row}) == 2, "two different quadrants per photo"
    np.testing.assert_array_equal(targets, [(value % 10 + 1) ** 2 for value in values])
    again, _ = pool.select(np.array([1, 3, 7]))
    np.testing.assert_array_equal(again, inputs)


def test_pool_other_seed_other_quadrants():
    rows = np.arange(20)
    first, _ = QuadrantPool(_quadrant_maps(20), 1, seed=0).select(rows)
    second, _ = QuadrantPool(_quadrant_maps(20), 1, seed=1).select(rows)
    assert not np.array_equal(first, second)


def test_pool_skips_rows_without_targets():
    maps = _quadrant_maps(4)
    maps.targets[2] = np.nan
    inputs, targets = QuadrantPool(maps, 4, seed=0, target="sqrt").select(np.arange(4))
    assert sorted({int(value) // 10 for value in inputs[:, 0]}) == [0, 1, 3]
    np.testing.assert_allclose(np.sort(targets**2), np.repeat([1.0, 4.0, 9.0, 16.0], 3), rtol=1e-6)


def test_epoch_datasets_add_quadrants():
    from edgecount.training.features import create_epoch_datasets

    counts = np.arange(1, 7, dtype=np.float32)
    features = np.full((6, 1), 100.0, np.float32)
    pool = QuadrantPool(_quadrant_maps(6), 1, seed=0)
    epoch_data, _ = create_epoch_datasets(features, None, counts, np.arange(4), np.array([4, 5]), 0, 2, 64, None, [pool])
    (inputs, _), = list(epoch_data(0)["x"])
    quadrants = inputs.numpy()[:, 0] < 100
    assert quadrants.sum() == 4, "one quadrant of each of the 4 training photos"
    assert (~quadrants).sum() == 4


@pytest.fixture(scope="module")
def boxed_folder(tmp_path_factory: pytest.TempPathFactory, av_faces_dir: Path, av_labels, boxed_dataset_writer) -> Path:
    """A labels-csv folder of 24 real photos with their face boxes."""
    rows = sorted(av_labels, key=lambda row: (row[1], row[0]))[:: len(av_labels) // 24][:24]
    return boxed_dataset_writer(tmp_path_factory.mktemp("quadrant_dataset"), av_faces_dir, rows)


def test_quadrant_maps_match_real_crops(boxed_folder: Path, weights_035: Path, tmp_path: Path):
    """Each quadrant's maps are the frozen front's output for the crop preprocessed like a whole photo, read back from the cache."""
    from edgecount.datasets import load_dataset
    from edgecount.runtime import load_image, preprocess
    from edgecount.runtime.tiles import crop_quadrants
    from edgecount.training.config import TrainConfig
    from edgecount.training.features import FeatureCache
    from edgecount.training.model import build_count_model, find_base
    from edgecount.training.quadrant_pool import compute_quadrant_maps
    from edgecount.training.tail import create_front_extractor, find_tail_start

    dataset = load_dataset(boxed_folder)
    dataset.samples = dataset.samples[:3]
    model = build_count_model(0.35, 64, weights_035)
    start = find_tail_start(find_base(model), 39)
    config = TrainConfig(data_dir=boxed_folder, out_dir=tmp_path / "run", alpha=0.35, image_size=64, weights=str(weights_035))
    sizes = {sample.path: load_image(sample.path).shape[1::-1] for sample in dataset.samples}
    cache = FeatureCache(tmp_path / "features")
    steps = []
    maps = compute_quadrant_maps(model, dataset, sizes, config, cache, start, lambda *step: steps.append(step))
    assert steps[-1] == ("quadrants", 3, 3)

    crops = np.stack([preprocess(crop, (64, 64)) for sample in dataset.samples for crop in crop_quadrants(load_image(sample.path))])
    expected = np.asarray(create_front_extractor(model, start)(crops.astype(np.float32)))
    np.testing.assert_allclose(maps.maps.reshape(expected.shape), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(maps.targets.sum(axis=1), [sample.count for sample in dataset.samples], atol=1e-4)
    assert maps.decoded.all()

    steps.clear()
    again = compute_quadrant_maps(model, dataset, sizes, config, cache, start, lambda *step: steps.append(step))
    assert steps == [], "the second call reads the cache"
    np.testing.assert_array_equal(again.maps, maps.maps)


def test_quadrant_maps_skip_broken_photo(boxed_folder: Path, weights_035: Path, tmp_path: Path, caplog):
    from edgecount.datasets import load_dataset
    from edgecount.runs import Sample
    from edgecount.training.config import TrainConfig
    from edgecount.training.features import FeatureCache
    from edgecount.training.model import build_count_model, find_base
    from edgecount.training.quadrant_pool import compute_quadrant_maps
    from edgecount.training.tail import find_tail_start

    caplog.set_level(logging.WARNING)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 truncated")
    dataset = load_dataset(boxed_folder)
    dataset.samples = [dataset.samples[0], Sample(broken, 2)]
    model = build_count_model(0.35, 64, weights_035)
    start = find_tail_start(find_base(model), 39)
    config = TrainConfig(data_dir=boxed_folder, out_dir=tmp_path / "run", alpha=0.35, image_size=64, weights=str(weights_035))
    sizes = {dataset.samples[0].path: (640, 480), broken: (640, 480)}
    maps = compute_quadrant_maps(model, dataset, sizes, config, FeatureCache(tmp_path / "features"), start)
    np.testing.assert_array_equal(maps.decoded, [True, False])
    assert not maps.maps[1].any(), "a broken photo's maps are zeros"
    assert np.isnan(maps.targets[1]).all(), "and it does not train"
    assert "left out the quadrants of 1 photos" in caplog.text
    assert maps.failures[broken].startswith(str(broken))


def test_quadrants_need_boxes(tmp_path: Path, av_faces_dir: Path, av_labels):
    from edgecount.datasets import DatasetError, load_dataset
    from edgecount.training.quadrant_pool import check_quadrant_boxes

    (tmp_path / "images").mkdir()
    name, count = av_labels[0]
    os.symlink(av_faces_dir / "images" / name, tmp_path / "images" / name)
    (tmp_path / "labels.csv").write_text(f"image,count\n{name},{count}\n")
    dataset = load_dataset(tmp_path)
    check_quadrant_boxes(dataset, 0)
    with pytest.raises(DatasetError) as raised:
        check_quadrant_boxes(dataset, 2)
    assert "--quadrants 2 needs face boxes" in str(raised.value)
    assert "boxes.csv" in str(raised.value)
    assert "drop --quadrants" in str(raised.value)


@pytest.mark.parametrize("value", [-1, 5])
def test_config_rejects_bad_quadrants(tmp_path: Path, value: int):
    from edgecount.training.config import TrainConfig

    with pytest.raises(ValueError, match=f"--quadrants must be between 0 \\(none\\) and 4 quadrant crops per training photo, got {value}"):
        TrainConfig(data_dir=tmp_path, out_dir=tmp_path / "run", quadrants=value).validate()


def test_old_settings_have_no_quadrants(tmp_path: Path):
    from edgecount.training.config import TrainConfig

    settings = TrainConfig(data_dir=tmp_path, out_dir=tmp_path / "run", quadrants=3).as_dict()
    del settings["quadrants"]
    assert TrainConfig.from_dict(settings).quadrants == 0


def test_train_with_quadrants_scores_tiles(boxed_folder: Path, weights_035: Path, tmp_path: Path, run_cli):
    """A real run with --quadrants trains on them and reports the validation RMSE of counting by tiles."""
    code, stdout, stderr = run_cli(
        "train", "--data", boxed_folder, "--out", tmp_path / "run", "--weights", weights_035, "--alpha", "0.35", "--image-size", "64",
        "--epochs", "2", "--fine-tune-epochs", "1", "--batch-size", "8", "--quadrants", "2",
    )
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["val_rmse_tiles"] >= 0
    document = json.loads((tmp_path / "run" / "run.json").read_text())
    assert document["metrics"]["val_rmse_tiles"] == summary["val_rmse_tiles"]
    training = document["training"]
    assert training["settings"]["quadrants"] == 2
    assert training["phases"][1]["quadrants_per_epoch"] == 2 * document["split"]["train"]
    assert training["quadrant_seconds"] > 0
    if training["phases"][1]["kept"]:
        assert training["quadrants"].startswith("2 of the 4 quadrants of each training photo")
    else:
        assert "which was rolled back, so the saved model did not learn from them" in training["quadrants"]
        assert "phase 2 was rolled back, so the model did not learn from the quadrant crops" in stderr


def test_train_quadrants_without_boxes(tmp_path: Path, av_faces_dir: Path, av_labels, run_cli):
    (tmp_path / "data" / "images").mkdir(parents=True)
    for name, _ in av_labels[:4]:
        os.symlink(av_faces_dir / "images" / name, tmp_path / "data" / "images" / name)
    (tmp_path / "data" / "labels.csv").write_text("image,count\n" + "".join(f"{name},{count}\n" for name, count in av_labels[:4]))
    code, _, stderr = run_cli("train", "--data", tmp_path / "data", "--out", tmp_path / "run", "--quadrants", "1")
    assert code != 0
    assert "--quadrants 1 needs face boxes" in stderr
    assert not (tmp_path / "run").exists()


def test_tiles_score_matches_runtime(boxed_folder: Path, weights_035: Path, tmp_path: Path):
    """Training scores counting by tiles from the cached maps exactly as CountModel(tta="tiles") counts the photo."""
    import keras

    from edgecount.converters import QuantMode, convert_keras_model
    from edgecount.datasets import load_dataset
    from edgecount.runtime import CountModel, load_image, preprocess
    from edgecount.training.config import TrainConfig
    from edgecount.training.features import FeatureCache
    from edgecount.training.model import build_count_model, find_base
    from edgecount.training.quadrant_pool import compute_quadrant_maps
    from edgecount.training.tail import TailMaps, find_tail_start
    from edgecount.training.trainer import count_by_tiles

    dataset = load_dataset(boxed_folder)
    dataset.samples = dataset.samples[-3:]
    keras.utils.set_random_seed(1)
    model = build_count_model(0.35, 64, weights_035)
    start = find_tail_start(find_base(model), 39)
    config = TrainConfig(data_dir=boxed_folder, out_dir=tmp_path / "run", alpha=0.35, image_size=64, weights=str(weights_035))
    frames = [load_image(sample.path) for sample in dataset.samples]
    sizes = {sample.path: frame.shape[1::-1] for sample, frame in zip(dataset.samples, frames)}
    maps = compute_quadrant_maps(model, dataset, sizes, config, FeatureCache(tmp_path / "features"), start)
    whole = np.maximum(np.asarray(model(np.stack([preprocess(frame, (64, 64)) for frame in frames]).astype(np.float32))).reshape(-1), 0.0)
    tail_maps = TailMaps(start, find_base(model).layers[start].name, np.zeros(0), None)
    scored = count_by_tiles(model, tail_maps, maps, whole, np.arange(3), "count")

    path = tmp_path / "model.tflite"
    path.write_bytes(convert_keras_model(model, QuantMode.FLOAT32))
    runtime = CountModel(path, tta="tiles")
    counted = [runtime.predict(frame) for frame in frames]
    np.testing.assert_allclose(scored, counted, rtol=1e-3, atol=1e-3)


def test_train_names_unsplit_photos(boxed_folder: Path, weights_035: Path, tmp_path: Path, run_cli):
    """A photo too small to cut trains without quadrants, and the warning names it with the reason."""
    import cv2

    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    for image in (boxed_folder / "images").iterdir():
        os.symlink(os.readlink(image), data / "images" / image.name)
    assert cv2.imwrite(str(data / "images" / "dot.png"), np.full((1, 1, 3), 200, np.uint8))
    (data / "labels.csv").write_text((boxed_folder / "labels.csv").read_text() + "dot.png,1\n")
    (data / "boxes.csv").write_text((boxed_folder / "boxes.csv").read_text() + "dot.png,0,0,1,1\n")

    code, _, stderr = run_cli(
        "train", "--data", data, "--out", tmp_path / "run", "--weights", weights_035, "--alpha", "0.35", "--image-size", "64",
        "--epochs", "1", "--fine-tune-epochs", "1", "--batch-size", "8", "--quadrants", "1",
    )
    assert code == 0, stderr
    assert "1 of 25 photos train without quadrant crops (dot.png: " in stderr
    assert "at least 2x2 pixels to cut into quadrants, got 1x1" in stderr
