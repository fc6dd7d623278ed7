"""Mosaics of four half-size photos: tiles, counts, the pool of real mosaic images, and the batches of both phases."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from edgecount.training.mosaic import MosaicPool, choose_tiles, mosaic_count, tile_images


def test_tiles_come_from_training_rows_only():
    rows = np.array([3, 5, 8, 13, 21, 34])
    tiles = choose_tiles(np.random.default_rng(0), rows, 50)
    assert tiles.shape == (50, 4)
    assert set(tiles.ravel()) <= set(rows)
    assert all(len(set(tile)) == 4 for tile in tiles), "the four photos of a mosaic differ"


def test_tiles_repeat_with_the_seed():
    rows = np.arange(20)
    first = choose_tiles(np.random.default_rng([1, 2, 3]), rows, 10)
    np.testing.assert_array_equal(first, choose_tiles(np.random.default_rng([1, 2, 3]), rows, 10))


def test_tiles_with_fewer_than_four_rows_repeat_photos():
    tiles = choose_tiles(np.random.default_rng(0), np.array([7, 9]), 3)
    assert tiles.shape == (3, 4)
    assert set(tiles.ravel()) <= {7, 9}


def test_no_tiles_for_zero_mosaics():
    assert choose_tiles(np.random.default_rng(0), np.arange(10), 0).shape == (0, 4)
    assert mosaic_count(0.0, 100) == 0
    assert mosaic_count(0.5, 101) == 50


def test_images_tile_in_reading_order():
    quadrants = [np.full((2, 2, 3), value, np.uint8) for value in range(4)]
    tiled = tile_images(quadrants)
    assert tiled.shape == (4, 4, 3)
    assert [tiled[0, 0, 0], tiled[0, 3, 0], tiled[3, 0, 0], tiled[3, 3, 0]] == [0, 1, 2, 3]


def test_pool_selects_mosaics_of_training_rows_only():
    tiles = np.array([[0, 1, 2, 3], [0, 1, 2, 9], [4, 5, 6, 7]])
    counts = np.arange(1, 11, dtype=np.float32)
    pool = MosaicPool(tiles, np.arange(3, dtype=np.float32)[:, None], counts, target="sqrt")
    inputs, targets = pool.select(np.arange(8))
    # The mosaic with held-out row 9 is left out.
    np.testing.assert_array_equal(inputs[:, 0], [0, 2])
    np.testing.assert_allclose(targets**2, [1 + 2 + 3 + 4, 5 + 6 + 7 + 8], rtol=1e-6)


def test_draw_mosaic_tiles_repeats_with_the_seed():
    from edgecount.training.mosaic_pool import draw_mosaic_tiles

    rows = np.arange(10, 50)
    tiles = draw_mosaic_tiles(rows, 0.5, 7)
    assert tiles.shape == (20, 4)
    np.testing.assert_array_equal(tiles, draw_mosaic_tiles(rows, 0.5, 7))
    assert not np.array_equal(tiles, draw_mosaic_tiles(rows, 0.5, 8))


@pytest.fixture(scope="module")
def small_model(weights_035: Path):
    from edgecount.training.model import build_count_model

    return build_count_model(0.35, 96, weights_035)


def _config(tmp_path: Path, weights: Path, image_size: int = 96):
    from edgecount.training.config import TrainConfig

    return TrainConfig(data_dir=tmp_path, out_dir=tmp_path / "run", alpha=0.35, image_size=image_size, weights=str(weights))


def test_pool_matches_real_mosaic_maps(small_model, real_photo_paths: list[Path], weights_035: Path, tmp_path: Path):
    """Each mosaic's maps are the frozen front's output for its tiled photos, each resized to half by preprocess."""
    from edgecount.runtime import load_image, preprocess
    from edgecount.training.features import FeatureCache
    from edgecount.training.model import find_base
    from edgecount.training.mosaic_pool import compute_mosaic_pool
    from edgecount.training.tail import create_front_extractor, find_tail_start

    paths = real_photo_paths[:6]
    tiles = np.array([[0, 1, 2, 3], [5, 4, 3, 2]])
    counts = np.arange(1, 7, dtype=np.float32)
    start = find_tail_start(find_base(small_model), 39)
    cache = FeatureCache(tmp_path / "features")
    steps = []
    config = _config(tmp_path, weights_035)
    pool = compute_mosaic_pool(small_model, paths, tiles, counts, config, cache, start, lambda *step: steps.append(step))
    assert steps[-1] == ("mosaics", 2, 2)
    mosaics = np.stack([tile_images([preprocess(load_image(paths[row]), (48, 48)) for row in tile]) for tile in tiles]).astype(np.float32)
    np.testing.assert_allclose(pool.inputs, np.asarray(create_front_extractor(small_model, start)(mosaics)), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(pool.tiles, tiles)
    _, targets = pool.select(np.arange(6))
    np.testing.assert_array_equal(targets, [1 + 2 + 3 + 4, 6 + 5 + 4 + 3])

    # A second call reads the cache: nothing is computed, so no progress is reported.
    steps.clear()
    again = compute_mosaic_pool(small_model, paths, tiles, counts, config, cache, start, lambda *step: steps.append(step))
    assert steps == []
    np.testing.assert_array_equal(again.inputs, pool.inputs)


def test_pool_leaves_out_mosaics_with_a_broken_photo(small_model, real_photo_paths: list[Path], weights_035: Path, tmp_path: Path, caplog):
    from edgecount.training.features import FeatureCache
    from edgecount.training.model import find_base
    from edgecount.training.mosaic_pool import compute_mosaic_pool
    from edgecount.training.tail import find_tail_start

    caplog.set_level(logging.WARNING)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 truncated")
    paths = [*real_photo_paths[:4], broken]
    tiles = np.array([[0, 1, 2, 3], [0, 1, 2, 4]])
    cache = FeatureCache(tmp_path / "features")
    start = find_tail_start(find_base(small_model), 39)
    config = _config(tmp_path, weights_035)
    pool = compute_mosaic_pool(small_model, paths, tiles, np.ones(5, np.float32), config, cache, start)
    np.testing.assert_array_equal(pool.tiles, tiles[:1])
    assert len(pool.inputs) == 1
    assert "left out 1 mosaics" in caplog.text
    # The cache remembers the failure.
    again = compute_mosaic_pool(small_model, paths, tiles, np.ones(5, np.float32), config, cache, start)
    np.testing.assert_array_equal(again.tiles, tiles[:1])


def test_pool_with_an_odd_input_size(real_photo_paths: list[Path], weights_035: Path, tmp_path: Path):
    from edgecount.training.features import FeatureCache
    from edgecount.training.model import build_count_model, find_base
    from edgecount.training.mosaic_pool import compute_mosaic_pool
    from edgecount.training.tail import create_front_extractor, find_tail_start

    model = build_count_model(0.35, 97, weights_035)
    start = find_tail_start(find_base(model), 39)
    config = _config(tmp_path, weights_035, 97)
    pool = compute_mosaic_pool(model, real_photo_paths[:4], np.array([[0, 1, 2, 3]]), np.ones(4, np.float32), config, FeatureCache(tmp_path), start)
    assert pool.inputs.shape[1:] == tuple(create_front_extractor(model, start).output.shape[1:])


def test_epoch_datasets_add_the_pool():
    from edgecount.training.features import create_epoch_datasets

    counts = np.arange(1, 11, dtype=np.float32)
    features = np.repeat(counts[:, None], 4, axis=1)
    # Mosaic inputs are negative here, so the checks can tell them from the photos'.
    tiles = np.array([[0, 1, 2, 3], [4, 5, 6, 7], [1, 2, 3, 8]])
    pool = MosaicPool(tiles, -np.ones((3, 4), np.float32), counts)
    train_rows, validation_rows = np.arange(8), np.array([8, 9])
    epoch_data, validation = create_epoch_datasets(features, None, counts, train_rows, validation_rows, 0, 1, 32, None, [pool])
    (inputs, targets), = list(epoch_data(0)["x"])
    inputs, targets = inputs.numpy(), targets.numpy()
    mosaics = inputs[:, 0] < 0
    assert len(targets) == 8 + 2, "the mosaic holding validation row 8 is left out"
    np.testing.assert_array_equal(np.sort(targets[~mosaics]), counts[train_rows])
    np.testing.assert_array_equal(np.sort(targets[mosaics]), [10, 26])
    again, = list(epoch_data(0)["x"])
    np.testing.assert_array_equal(again[0].numpy(), inputs)
    assert sum(len(batch[1]) for batch in validation) == 2, "validation has no mosaics"


def test_epoch_mosaics_weigh_one():
    from edgecount.training.features import create_epoch_datasets

    counts = np.arange(6, dtype=np.float32)
    pool = MosaicPool(np.array([[0, 1, 2, 3], [2, 3, 4, 5]]), np.zeros((2, 2, 2, 1), np.float32), counts)
    weights = np.full(6, 3.0, np.float32)
    epoch_data, _ = create_epoch_datasets(np.zeros((6, 2, 2, 1), np.float32), None, counts, np.arange(6), np.array([0]), 0, 2, 64, weights, [pool])
    (maps, _, batch_weights), = list(epoch_data(3)["x"])
    assert maps.shape[1:] == (2, 2, 1)
    assert sorted(batch_weights.numpy()) == [1.0] * 2 + [3.0] * 6


def test_augmented_dataset_tiles_pixel_mosaics():
    from edgecount.training.images import create_augmented_dataset

    images = np.stack([np.full((16, 16, 3), 40 * row, np.uint8) for row in range(5)])

    def load(row):
        return images[row], None, row != 4

    counts = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    dataset = create_augmented_dataset(load, np.arange(4), counts, 16, 64, [0, 2, 0], None, lambda image: image, mosaic=1.0)
    pixels, targets, weights = next(iter(dataset))
    assert pixels.shape == (8, 16, 16, 3)
    mosaic_rows = [index for index, image in enumerate(pixels.numpy()) if len(np.unique(image)) > 1]
    assert len(mosaic_rows) == 4
    for index in mosaic_rows:
        quadrant_values = [pixels.numpy()[index][y, x, 0] for y, x in ((0, 0), (0, 8), (8, 0), (8, 8))]
        assert targets.numpy()[index] == pytest.approx(sum(value / 40 + 1 for value in quadrant_values))
        assert weights.numpy()[index] == 1.0


def test_pixel_mosaic_with_a_failed_photo_weighs_zero():
    from edgecount.training.images import create_augmented_dataset

    images = np.full((4, 16, 16, 3), 100, np.uint8)

    def load(row):
        return images[row], None, row != 0

    dataset = create_augmented_dataset(load, np.arange(4), np.ones(4), 16, 64, [0, 2, 0], None, lambda image: image, mosaic=1.0)
    _, _, weights = next(iter(dataset))
    # Row 0 failed: its own element weighs 0, and so does every mosaic (each contains all four rows).
    assert sorted(weights.numpy()) == [0.0] * 5 + [1.0] * 3


def test_empty_pool_leaves_epochs_unchanged():
    from edgecount.training.features import create_epoch_datasets

    counts = np.arange(1, 9, dtype=np.float32)
    features = np.repeat(counts[:, None], 2, axis=1)
    pool = MosaicPool(np.zeros((0, 4), np.int64), np.zeros((0, 2), np.float32), counts)
    rows = (np.arange(6), np.array([6, 7]))
    plain, _ = create_epoch_datasets(features, None, counts, *rows, 0, 2, 8)
    with_pool, _ = create_epoch_datasets(features, None, counts, *rows, 0, 2, 8, None, [pool])
    (expected, _), = list(plain(1)["x"])
    (actual, _), = list(with_pool(1)["x"])
    np.testing.assert_array_equal(actual.numpy(), expected.numpy())
