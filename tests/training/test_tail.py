"""Phase 2 on cached maps: where the tail starts, and that front plus tail computes what the model computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgecount.training.images import load_images

SIZE = 64


@pytest.fixture(scope="module")
def model(weights_035: Path):
    from edgecount.training.model import build_count_model

    return build_count_model(0.35, SIZE, weights_035, target="sqrt")


@pytest.mark.parametrize("layer_count, first_layer", [
    (1, "Conv_1"),
    (4, "Conv_1"),
    (5, "block_16_expand"),
    (12, "block_16_expand"),
    (13, "block_15_expand"),
    (39, "block_13_expand"),
    (146, "block_1_expand"),
])
def test_tail_starts_at_block_boundary(model, layer_count: int, first_layer: str):
    from edgecount.training.model import find_base
    from edgecount.training.tail import find_tail_start

    base = find_base(model)
    assert base.layers[find_tail_start(base, layer_count)].name == first_layer


def test_tail_limit_matches_keras_model(model):
    from edgecount.training.model import find_base
    from edgecount.training.tail import MAX_TAIL_LAYERS, find_tail_start, first_block_start

    base = find_base(model)
    assert len(base.layers) - first_block_start(base) == MAX_TAIL_LAYERS
    with pytest.raises(ValueError, match="--fine-tune-layers 147 reaches the first block"):
        find_tail_start(base, MAX_TAIL_LAYERS + 1)


def test_front_and_tail_equal_fit_model(model, real_photo_paths: list[Path]):
    from edgecount.training.model import create_fit_model, find_base
    from edgecount.training.tail import create_front_extractor, create_tail_fit_model, find_tail_start

    images, _ = load_images(real_photo_paths[:4], SIZE)
    pixels = images.astype(np.float32)
    start = find_tail_start(find_base(model), 39)
    maps = np.asarray(create_front_extractor(model, start)(pixels, training=False))
    assert maps.shape[1:] == (SIZE // 16, SIZE // 16, 32)
    through_tail = np.asarray(create_tail_fit_model(model, start)(maps, training=False))
    direct = np.asarray(create_fit_model(model)(pixels, training=False))
    np.testing.assert_allclose(through_tail, direct, rtol=1e-4, atol=1e-4)


def test_tail_fit_model_shares_weights(model):
    from edgecount.training.model import find_base
    from edgecount.training.tail import create_tail_fit_model, find_tail_start

    fit = create_tail_fit_model(model, find_tail_start(find_base(model), 12))
    model_weights = {id(weight) for weight in model.weights}
    assert fit.weights
    assert all(id(weight) in model_weights for weight in fit.weights)
    assert fit.output.shape[-1] == 1
    assert fit.layers[-1].name == "transformed_count", "the fit model stops before the inverse target layers"


def test_map_datasets_flip_from_seed():
    from edgecount.training.features import create_epoch_datasets

    maps = np.zeros((10, 2, 2, 1), np.float32)
    mirrored = np.ones_like(maps)
    targets = np.arange(10, dtype=np.float32)
    epoch_data, validation = create_epoch_datasets(maps, mirrored, targets, np.arange(8), np.array([8, 9]), seed=3, phase=2, batch_size=4)

    def epoch(number: int) -> tuple[np.ndarray, np.ndarray]:
        batches = list(epoch_data(number)["x"])
        return np.concatenate([x.numpy() for x, _ in batches]), np.concatenate([y.numpy() for _, y in batches])

    first_maps, first_targets = epoch(0)
    assert sorted(first_targets.tolist()) == list(range(8))
    np.testing.assert_array_equal(epoch(0)[0], first_maps)
    np.testing.assert_array_equal(epoch(0)[1], first_targets)
    assert set(np.unique(first_maps)) == {0.0, 1.0}, "some plain and some mirrored maps"
    assert [y.numpy().tolist() for _, y in validation] == [[8.0, 9.0]]
    validation_maps = np.concatenate([x.numpy() for x, _ in validation])
    assert validation_maps.max() == 0.0, "validation uses the plain maps"
