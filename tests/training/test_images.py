"""Training inputs: the in-memory path and the tf.data stream decode, preprocess and featurise alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgecount.runtime import load_image, preprocess
from edgecount.training.images import create_image_stream, create_memory_dataset, load_images, should_stream

SIZE = 64


@pytest.fixture(scope="module")
def photo_paths(real_photo_paths: list[Path]) -> list[Path]:
    return real_photo_paths[:6]


@pytest.fixture(scope="module")
def extractor(weights_035: Path):
    from edgecount.training.features import create_feature_extractor
    from edgecount.training.model import build_count_model

    return create_feature_extractor(build_count_model(0.35, SIZE, weights_035))


def test_load_images_matches_runtime_preprocess(photo_paths: list[Path]):
    images, failures = load_images(photo_paths, SIZE, workers=2)
    assert failures == {}
    assert images.shape == (6, SIZE, SIZE, 3)
    assert images.dtype == np.uint8
    for image, path in zip(images, photo_paths):
        np.testing.assert_array_equal(image, preprocess(load_image(path), (SIZE, SIZE)))


def test_load_images_reports_corrupt_file(photo_paths: list[Path], tmp_path: Path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8 not really a jpeg")
    steps = []
    images, failures = load_images([photo_paths[0], corrupt, photo_paths[1]], SIZE, on_step=lambda *step: steps.append(step))
    assert images.shape[0] == 2
    assert list(failures) == [corrupt]
    assert "not a decodable image" in failures[corrupt]
    assert steps[-1] == ("decode", 3, 3)


def test_stream_pixels_equal_memory_pixels(photo_paths: list[Path]):
    images, _ = load_images(photo_paths, SIZE)
    counts = np.arange(6, dtype=np.float32)
    streamed = list(create_image_stream(photo_paths, counts, SIZE, batch_size=4))
    pixels = np.concatenate([batch.numpy() for batch, _, _ in streamed])
    np.testing.assert_array_equal(pixels, images.astype(np.float32))
    np.testing.assert_array_equal(np.concatenate([labels.numpy() for _, labels, _ in streamed]), counts)
    assert all(ok.numpy().all() for _, _, ok in streamed)


def test_stream_flags_corrupt_file(photo_paths: list[Path], tmp_path: Path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"")
    flags = np.concatenate([ok.numpy() for _, _, ok in create_image_stream([photo_paths[0], corrupt], None, SIZE, 2)])
    assert flags.tolist() == [True, False]


def test_stream_features_equal_memory_features(photo_paths: list[Path], extractor, tmp_path: Path):
    from edgecount.training.features import features_from_images, features_from_stream

    images, _ = load_images(photo_paths, SIZE)
    in_memory = features_from_images(extractor, images, batch_size=4)
    streamed, ok = features_from_stream(extractor, photo_paths, SIZE, batch_size=4)
    assert ok.all()
    assert in_memory.shape == (6, 1280)
    np.testing.assert_allclose(streamed, in_memory, rtol=1e-5, atol=1e-5)


def test_mirrored_features_match_flipped_images(photo_paths: list[Path], extractor):
    from edgecount.training.features import features_from_images, features_from_stream

    images, _ = load_images(photo_paths, SIZE)
    mirrored = features_from_images(extractor, images, batch_size=4, mirrored=True)
    np.testing.assert_allclose(mirrored, features_from_images(extractor, images[:, :, ::-1].copy(), batch_size=4), rtol=1e-5, atol=1e-5)
    # Group photos are not symmetric, so the mirrored features differ from the plain ones.
    assert not np.allclose(mirrored, features_from_images(extractor, images, batch_size=4), atol=1e-3)
    streamed, ok = features_from_stream(extractor, photo_paths, SIZE, batch_size=4, mirrored=True)
    assert ok.all()
    np.testing.assert_allclose(streamed, mirrored, rtol=1e-5, atol=1e-5)


def test_choose_mirrored_follows_seed():
    from edgecount.training.features import choose_mirrored

    features = np.zeros((400, 3), np.float32)
    mirrored = np.ones((400, 3), np.float32)
    rows = np.arange(0, 400, 2)
    first = choose_mirrored(features, mirrored, rows, np.random.default_rng(7))
    np.testing.assert_array_equal(first, choose_mirrored(features, mirrored, rows, np.random.default_rng(7)))
    assert 70 < first[:, 0].sum() < 130  # about half of the 200 rows are mirrored
    assert set(np.unique(first)) == {0.0, 1.0}
    assert not (first == choose_mirrored(features, mirrored, rows, np.random.default_rng(8))).all()
    np.testing.assert_array_equal(choose_mirrored(features, None, rows, np.random.default_rng(7)), features[rows])
    # The inputs are not modified.
    assert features.sum() == 0
    assert mirrored.min() == 1


def test_memory_dataset_shuffles_with_seed(photo_paths: list[Path]):
    images, _ = load_images(photo_paths, SIZE)
    counts = np.arange(6, dtype=np.float32)

    def order(seed: int) -> list[float]:
        return np.concatenate([labels.numpy() for _, labels in create_memory_dataset(images, counts, 3, shuffle_seed=seed)]).tolist()

    assert sorted(order(1)) == counts.tolist()
    assert order(1) == order(1)


def test_feature_batch_shrinks_with_pixels():
    from edgecount.training.features import feature_batch_size

    assert feature_batch_size(64) == 64
    assert feature_batch_size(224) == 64
    assert feature_batch_size(448) == 16
    assert feature_batch_size(4000) == 1


def test_should_stream_threshold():
    assert not should_stream(2800, 224)
    assert should_stream(20000, 224)
    assert should_stream(10, 64, threshold=10 * 64 * 64 * 3 - 1)


def test_feature_cache_round_trip(tmp_path: Path, photo_paths: list[Path]):
    from edgecount.training.features import FeatureCache, feature_cache_key

    key = feature_cache_key(photo_paths, 0.35, SIZE, "imagenet", seed=0)
    assert key == feature_cache_key(photo_paths, 0.35, SIZE, "imagenet", seed=5)
    assert key != feature_cache_key(photo_paths, 0.35, 96, "imagenet", seed=0)
    assert feature_cache_key(photo_paths, 0.35, SIZE, "none", seed=0) != feature_cache_key(photo_paths, 0.35, SIZE, "none", seed=1)
    assert key != feature_cache_key(photo_paths, 0.35, SIZE, "imagenet", seed=0, mirrored=True)
    cache = FeatureCache(tmp_path / "features")
    features = np.random.default_rng(0).random((6, 8)).astype(np.float32)
    cache.save(key, photo_paths, features, {photo_paths[2]: "broken"})
    loaded, failures = cache.load(key, photo_paths)
    np.testing.assert_array_equal(loaded, features)
    assert failures == {photo_paths[2]: "broken"}
    assert cache.load(key, photo_paths[:5]) is None
    assert cache.load("0" * 24, photo_paths) is None


def test_stream_predictions_equal_memory_predictions(photo_paths: list[Path], weights_035: Path):
    from edgecount.training.config import TrainConfig
    from edgecount.training.model import build_count_model
    from edgecount.training.trainer import _predict_images
    from edgecount.runs import Sample

    model = build_count_model(0.35, SIZE, weights_035)
    samples = [Sample(path, 1.0) for path in photo_paths]
    config = TrainConfig(data_dir=Path("."), out_dir=Path("."), image_size=SIZE)
    images, _ = load_images(photo_paths, SIZE)
    in_memory = _predict_images(model, samples, images, config, stream=False)
    streamed = _predict_images(model, samples, None, config, stream=True)
    assert in_memory.shape == (6,)
    np.testing.assert_allclose(streamed, in_memory, rtol=1e-5, atol=1e-5)
