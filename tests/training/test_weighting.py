"""Sample weights by count: smoothed frequencies, normalisation and the batches that carry them."""

from __future__ import annotations

import numpy as np
import pytest

from edgecount.training.weighting import COUNT_WEIGHTINGS, count_weights, smoothed_count_density


def test_density_sums_to_one_over_counts():
    train = np.array([1, 1, 2, 3, 3, 3, 20], np.float64)
    density = smoothed_count_density(train, np.arange(0, 22))
    assert density.sum() == pytest.approx(1.0, abs=1e-9)
    assert np.all(density > 0)


def test_density_is_smoothed_over_neighbours():
    train = np.array([3] * 50 + [20], np.float64)
    density = smoothed_count_density(train, np.array([3, 4, 12, 20, 21]))
    assert density[0] > density[1] > density[2], "the frequency falls away from the common count"
    assert density[4] > 0.0, "a count no image has gets its neighbours' frequency"
    assert density[3] > density[2], "the rare count keeps its own mass"


def test_density_short_histogram_keeps_bins():
    density = smoothed_count_density(np.array([1.0, 2.0]), np.array([0.0, 1.0, 2.0, 3.0]))
    assert density.shape == (4,)
    assert density[1] == pytest.approx(density[2])


def test_density_beyond_kernel_is_positive():
    density = smoothed_count_density(np.array([1.0] * 10), np.array([1.0, 100.0]))
    assert density[1] > 0.0
    assert density[1] < density[0]


def test_weights_none_returns_none():
    assert count_weights(np.array([1.0, 20.0]), np.array([0, 1]), "none") is None


def test_weights_mean_one_over_training_rows():
    counts = np.array([1, 1, 2, 2, 2, 3, 9, 15, 25, 4], np.float64)
    train_rows = np.arange(8)
    weights = count_weights(counts, train_rows, "sqrt-inverse")
    assert weights.dtype == np.float32
    assert weights.shape == counts.shape
    assert weights[train_rows].mean() == pytest.approx(1.0, rel=1e-5)


def test_weights_grow_with_rare_counts():
    counts = np.array([2] * 40 + [3] * 30 + [15] * 2 + [25], np.float64)
    weights = count_weights(counts, np.arange(len(counts)), "sqrt-inverse")
    assert weights[0] < weights[40] < weights[70] < weights[72]


def test_weights_of_held_out_rows_use_training_counts():
    counts = np.array([2, 2, 2, 2, 30], np.float64)
    weights = count_weights(counts, np.arange(4), "sqrt-inverse")
    assert np.isfinite(weights[4])
    assert weights[4] > weights[0]


@pytest.mark.parametrize("weighting", ["inverse", "", "SQRT-INVERSE"])
def test_weights_unknown_mode_rejected(weighting):
    with pytest.raises(ValueError, match="--count-weighting must be one of none, sqrt-inverse"):
        count_weights(np.array([1.0]), np.array([0]), weighting)


def test_config_rejects_unknown_weighting(tmp_path):
    from edgecount.training.config import TrainConfig

    config = TrainConfig(data_dir=tmp_path, out_dir=tmp_path / "run", count_weighting="balanced")
    with pytest.raises(ValueError, match="--count-weighting must be one of .*got 'balanced'"):
        config.validate()


def test_old_settings_resume_unweighted(tmp_path):
    from edgecount.training.config import TrainConfig

    values = TrainConfig(data_dir=tmp_path, out_dir=tmp_path / "run").as_dict()
    del values["count_weighting"]
    assert TrainConfig.from_dict(values).count_weighting == "none"
    assert COUNT_WEIGHTINGS[0] == "none"


def test_epoch_datasets_carry_weights():
    from edgecount.training.features import create_epoch_datasets

    features = np.arange(12, dtype=np.float32).reshape(6, 2)
    targets = np.arange(6, dtype=np.float32)
    weights = np.array([0.5, 1.0, 1.5, 2.0, 2.5, 3.0], np.float32)
    epoch_data, validation = create_epoch_datasets(features, None, targets, np.arange(4), np.array([4, 5]), 0, 1, 3, weights)
    batches = list(epoch_data(0)["x"])
    assert all(len(batch) == 3 for batch in batches)
    rows = np.concatenate([y.numpy() for _, y, _ in batches]).astype(int)
    np.testing.assert_array_equal(np.concatenate([w.numpy() for _, _, w in batches]), weights[rows])
    assert all(len(batch) == 2 for batch in validation), "validation batches are unweighted"


def test_augmented_dataset_carries_weights():
    from edgecount.training.images import create_augmented_dataset

    images = np.full((4, 8, 8, 3), 100, np.uint8)

    def load(row):
        return images[row], None, row != 3

    weights = np.array([0.5, 2.0, 3.0, 4.0], np.float32)
    dataset = create_augmented_dataset(load, np.arange(4), np.array([1.0, 2.0, 3.0, 4.0]), 8, 4, [0, 2, 0], None, lambda image: image, weights=weights)
    _, counts, batch_weights = next(iter(dataset))
    expected = {1.0: 0.5, 2.0: 2.0, 3.0: 3.0, 4.0: 0.0}
    for count, weight in zip(counts.numpy(), batch_weights.numpy()):
        assert weight == pytest.approx(expected[float(count)]), "the row's weight, and 0 for an image that failed to decode"
