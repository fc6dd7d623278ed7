"""Count-preserving augmentation: the recount on hand-made boxes and crops, and seeded epochs."""

from __future__ import annotations

import numpy as np
import pytest

from edgecount.training.augment import AugmentSettings, augment_image, normalise_boxes, recount_in_crop, resize_square

CROP = (10.0, 10.0, 50.0, 50.0)


@pytest.mark.parametrize("box, expected", [
    ((20, 20, 30, 30), 1.0),  # inside
    ((0, 0, 5, 5), 0.0),  # outside
    ((40, 20, 60, 30), 0.5),  # half over the right border
    ((0, 0, 20, 20), 0.25),  # a quarter in the top-left corner
    ((0, 0, 60, 60), 1600 / 3600),  # larger than the crop
    ((10, 10, 50, 50), 1.0),  # exactly the crop
    ((30, 30, 30, 30), 1.0),  # zero area, centre inside
    ((5, 30, 5, 40), 0.0),  # zero area, centre outside
])
def test_recount_in_crop_single_box(box, expected):
    assert recount_in_crop(np.array([box], np.float32), CROP) == pytest.approx(expected)


def test_recount_in_crop_sums_boxes():
    boxes = np.array([(20, 20, 30, 30), (40, 20, 60, 30), (0, 0, 5, 5), (0, 0, 20, 20)], np.float32)
    assert recount_in_crop(boxes, CROP) == pytest.approx(1.75)


def test_recount_in_crop_no_boxes():
    assert recount_in_crop(np.zeros((0, 4), np.float32), CROP) == 0.0


def test_recount_in_crop_whole_image_keeps_count():
    boxes = normalise_boxes(np.array([(0, 0, 100, 50), (150, 80, 200, 100), (10, 10, 20, 20)], np.float32), 200, 100)
    assert recount_in_crop(boxes, (0.0, 0.0, 1.0, 1.0)) == pytest.approx(3.0)


def test_normalise_boxes_clips_to_image():
    boxes = normalise_boxes(np.array([(-10, 0, 50, 120)], np.float32), 100, 100)
    np.testing.assert_allclose(boxes, [[0.0, 0.0, 0.5, 1.0]])


def random_image(seed: int = 0, size: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_augment_image_without_boxes_keeps_count():
    image = random_image()
    for seed in range(20):
        pixels, target = augment_image(image, 7.0, np.random.default_rng(seed), lambda crop: resize_square(crop, 32))
        assert target == 7.0
        assert pixels.shape == (32, 32, 3)
        assert pixels.dtype == np.float32
        assert pixels.min() >= 0.0
        assert pixels.max() <= 255.0


def test_augment_image_same_seed_same_result():
    image, boxes = random_image(), np.array([[0.1, 0.1, 0.3, 0.3], [0.6, 0.6, 0.9, 0.8]], np.float32)
    first = augment_image(image, 2.0, np.random.default_rng(5), lambda crop: resize_square(crop, 32), boxes)
    second = augment_image(image, 2.0, np.random.default_rng(5), lambda crop: resize_square(crop, 32), boxes)
    np.testing.assert_array_equal(first[0], second[0])
    assert first[1] == second[1]


def test_augment_image_crops_recount_from_boxes():
    boxes = np.array([[0.0, 0.0, 0.2, 0.2], [0.8, 0.8, 1.0, 1.0], [0.4, 0.4, 0.6, 0.6]], np.float32)
    settings = AugmentSettings(crop_probability=1.0, min_crop=0.5)
    targets = [augment_image(random_image(), 3.0, np.random.default_rng(seed), lambda crop: resize_square(crop, 32), boxes, settings)[1] for seed in range(40)]
    assert all(0.0 <= target <= 3.0 for target in targets)
    assert min(targets) < 3.0
    assert len(set(targets)) > 10


def test_augment_image_flip_only_mirrors():
    image = random_image()
    settings = AugmentSettings(brightness=0.0, contrast=0.0, saturation=0.0, hue_shift=0.0, crop_probability=0.0)
    seen = set()
    for seed in range(10):
        pixels, _ = augment_image(image, 1.0, np.random.default_rng(seed), lambda crop: crop, None, settings)
        if np.allclose(pixels, image, atol=1e-3):
            seen.add("same")
        else:
            np.testing.assert_allclose(pixels, image[:, ::-1], atol=1e-3)
            seen.add("mirrored")
    assert seen == {"same", "mirrored"}


def test_create_augmented_dataset_repeats_epoch():
    from edgecount.training.images import create_augmented_dataset

    images = np.stack([random_image(seed, 16) for seed in range(10)])
    counts = np.arange(10, dtype=np.float32)

    def load(row: int):
        return images[row], None, row != 3

    def batches(epoch: int):
        data = create_augmented_dataset(load, np.arange(10), counts, 16, 4, [0, 2, epoch], AugmentSettings(), lambda crop: crop)
        return [tuple(np.asarray(part) for part in batch) for batch in data]

    first, again, other = batches(0), batches(0), batches(1)
    for batch, repeat in zip(first, again, strict=True):
        for part, repeated in zip(batch, repeat, strict=True):
            np.testing.assert_array_equal(part, repeated)
    assert sorted(np.concatenate([batch[1] for batch in first])) == list(range(10))
    assert not np.array_equal(np.concatenate([batch[1] for batch in first]), np.concatenate([batch[1] for batch in other]))
    weights = {float(count): float(weight) for batch in first for count, weight in zip(batch[1], batch[2])}
    assert weights[3.0] == 0.0
    assert sum(weights.values()) == 9.0


@pytest.mark.parametrize("stream", [False, True])
def test_image_datasets_recount_real_boxes(av_faces_dir, av_labels, tmp_path, stream: bool, boxed_dataset_writer):
    from pathlib import Path

    from edgecount.datasets import load_dataset
    from edgecount.training.config import TrainConfig
    from edgecount.training.images import load_images
    from edgecount.training.trainer import _image_datasets

    # Six real photos with their face boxes, so crops cut real faces.
    boxed_dataset_writer(tmp_path, av_faces_dir, sorted(av_labels, key=lambda row: row[1])[-6:])
    dataset = load_dataset(tmp_path)
    assert len(dataset.boxes) == 6

    sizes: dict[Path, tuple[int, int]] = {}
    images = None if stream else load_images([sample.path for sample in dataset.samples], 32, sizes=sizes)[0]
    counts = np.array([sample.count for sample in dataset.samples], np.float32)
    config = TrainConfig(data_dir=tmp_path, out_dir=tmp_path / "run", image_size=32, seed=1)
    epoch_data, _ = _image_datasets(dataset, images, sizes, counts, np.arange(6), np.arange(0), config, stream, 6)
    targets = np.concatenate([np.asarray(batch[1]) for epoch in range(4) for batch in epoch_data(epoch)["x"]])
    truth = np.tile(np.sort(counts), 4)

    # Over four epochs some crops cut faces; no target ever exceeds the true count of its photo.
    assert len(targets) == 24
    assert np.sort(targets).sum() < truth.sum()
    assert targets.max() <= counts.max()
    assert targets.min() >= 0.0
