"""int8 bias correction moves the count towards float32 and changes only bias values."""

from __future__ import annotations

import numpy as np
import pytest

from edgecount.converters import QuantMode, convert_keras_model, load_calibration_frames, representative_samples
from edgecount.converters.bias_correction import correct_int8_bias, spread_samples


@pytest.fixture(scope="module")
def tiny_models(tiny_run):
    """The tiny run's Keras model as float32 and uncorrected int8, with its calibration dataset."""
    from edgecount.runs import RunDir

    run = RunDir(tiny_run)
    model = run.load_keras_model()
    frames, _ = load_calibration_frames([sample.path for sample in run.samples("train")[:12]])
    dataset = representative_samples(frames, (run.image_size, run.image_size))
    float_model = convert_keras_model(model, QuantMode.FLOAT32)
    int8_model = convert_keras_model(model, QuantMode.INT8, dataset, bias_correction=False)
    return float_model, int8_model, dataset


def test_correct_int8_bias_closer_to_float(tiny_models) -> None:
    float_model, int8_model, dataset = tiny_models
    corrected, report = correct_int8_bias(int8_model, float_model, spread_samples(dataset, 8))

    assert report.layers > 30
    assert report.samples == 8
    assert report.error_after <= report.error_before
    assert report.applied
    assert corrected != int8_model


def test_correct_int8_bias_same_size_and_ops(tiny_models) -> None:
    from edgecount.converters.ops import float_ops

    float_model, int8_model, dataset = tiny_models
    corrected, _ = correct_int8_bias(int8_model, float_model, spread_samples(dataset, 4))

    assert abs(len(corrected) - len(int8_model)) < 64
    assert float_ops(corrected) == {}


def test_correct_int8_bias_no_samples(tiny_models) -> None:
    float_model, int8_model, _ = tiny_models
    with pytest.raises(ValueError, match="at least one calibration sample"):
        correct_int8_bias(int8_model, float_model, [])


def test_spread_samples_even_over_dataset() -> None:
    def dataset():
        for value in range(10):
            yield [np.full((1, 2, 2, 3), value, dtype=np.float32)]

    picked = [int(sample[0, 0, 0, 0]) for sample in spread_samples(dataset, 4)]
    assert picked == [0, 3, 6, 9]
    assert len(spread_samples(dataset, 20)) == 10
