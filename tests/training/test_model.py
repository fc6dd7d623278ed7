"""The counting model's training targets: the inverse transform inside the model and its int8 conversion."""

from __future__ import annotations

import numpy as np
import pytest

SIZE = 32


@pytest.fixture(scope="module")
def calibration(real_photo_paths):
    from edgecount.converters import load_calibration_frames, representative_samples

    frames, _ = load_calibration_frames(real_photo_paths[:8])
    return representative_samples(frames, (SIZE, SIZE))


@pytest.mark.parametrize("target", ["count", "sqrt", "log"])
def test_transform_counts_round_trip(target: str):
    from edgecount.training.model import inverse_target, transform_counts

    counts = np.array([0.0, 1.0, 4.0, 17.0, 100.0], np.float32)
    assert np.allclose(inverse_target(transform_counts(counts, target), target), counts, rtol=1e-5)


def test_transform_counts_values():
    from edgecount.training.model import transform_counts

    assert transform_counts(np.array([9.0]), "sqrt").tolist() == [3.0]
    assert transform_counts(np.array([np.e - 1]), "log")[0] == pytest.approx(1.0)
    assert transform_counts(np.array([5.0]), "count").tolist() == [5.0]


@pytest.mark.parametrize("target", ["sqrt", "log"])
def test_build_count_model_ends_in_inverse(target: str):
    from edgecount.training.features import create_head_model
    from edgecount.training.model import build_count_model, create_fit_model, inverse_target, model_target

    model = build_count_model(0.35, SIZE, "none", dropout=0.0, head_units=8, target=target)
    assert model_target(model) == target
    assert model.layers[-1].name == "count"
    pixels = np.random.default_rng(0).uniform(0, 255, (4, SIZE, SIZE, 3)).astype(np.float32)
    transformed = np.asarray(create_fit_model(model)(pixels)).reshape(-1)
    counts = np.asarray(model(pixels)).reshape(-1)
    assert np.allclose(counts, inverse_target(transformed, target), rtol=1e-5, atol=1e-6)
    assert create_head_model(model).layers[-1].name == "transformed_count"


def test_build_count_model_count_target_unchanged():
    from edgecount.training.model import build_count_model, create_fit_model, model_target

    model = build_count_model(0.35, SIZE, "none")
    assert model_target(model) == "count"
    assert create_fit_model(model) is model
    assert model.layers[-1].name == "count"


def test_build_count_model_bad_target():
    from edgecount.training.model import build_count_model

    with pytest.raises(ValueError, match="target must be one of count, sqrt, log, got 'cube'"):
        build_count_model(0.35, SIZE, "none", target="cube")


# The sqrt target's int8 conversion runs in tests/training/test_crossval.py, where convert_keras_model
# raises ConversionError if any op is left in float. EXP is the less common int8 kernel, so log runs here.
def test_log_target_model_converts_to_full_int8(calibration, tmp_path):
    import keras

    from edgecount.converters import QuantMode, convert_keras_model
    from edgecount.converters.ops import float_ops
    from edgecount.runtime import CountModel
    from edgecount.training.model import build_count_model

    model = build_count_model(0.35, SIZE, "none", dropout=0.0, target="log")
    saved = tmp_path / "model.keras"
    model.save(saved)
    reloaded = keras.models.load_model(saved)
    data = convert_keras_model(reloaded, QuantMode.INT8, calibration)
    assert not float_ops(data)
    path = tmp_path / "model_int8.tflite"
    path.write_bytes(data)
    counted = CountModel(path)
    assert counted.output.dtype == np.float32
    assert counted.predict(np.full((48, 48, 3), 128, np.uint8)) >= 0.0
