"""The seeded, count-stratified train/validation split."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from edgecount.datasets import load_dataset, split_samples
from edgecount.runs import RunDir, Sample, write_json_atomically, write_split


def _samples(counts: list[int]) -> list[Sample]:
    return [Sample(Path(f"/data/img{index:04d}.jpg"), float(count)) for index, count in enumerate(counts)]


def test_split_samples_sizes_and_order():
    samples = _samples([1, 2, 3, 4, 5] * 20)
    train, validation = split_samples(samples, 0.2, seed=0)
    assert len(validation) == 20
    assert len(train) == 80
    assert set(train).isdisjoint(validation)
    assert set(train) | set(validation) == set(samples)
    assert train == sorted(train, key=lambda sample: str(sample.path))
    assert validation == sorted(validation, key=lambda sample: str(sample.path))


def test_split_samples_same_seed_same_split():
    samples = _samples([1, 2, 2, 3, 3, 3, 4, 5, 8, 13] * 10)
    assert split_samples(samples, 0.25, seed=7) == split_samples(samples, 0.25, seed=7)


def test_split_samples_other_seed_other_split():
    samples = _samples([1, 2, 2, 3, 3, 3, 4, 5, 8, 13] * 10)
    assert split_samples(samples, 0.25, seed=1)[1] != split_samples(samples, 0.25, seed=2)[1]


def test_split_samples_stratified_on_real_counts(av_faces_dir: Path):
    dataset = load_dataset(av_faces_dir)
    train, validation = split_samples(dataset.samples, 0.2, seed=0)
    crowded = sorted(dataset.samples, key=lambda sample: sample.count)[-25:]
    crowded_in_validation = sum(1 for sample in crowded if sample in set(validation))
    # One pick per stratum of 5 sorted samples: the 25 most crowded images give exactly 5 to validation.
    assert crowded_in_validation == 5
    overall, held_out = Counter(s.count for s in dataset.samples), Counter(s.count for s in validation)
    for count in (2.0, 3.0, 4.0, 5.0, 6.0):
        assert abs(held_out[count] / overall[count] - 0.2) < 0.02
    assert max(s.count for s in validation) >= 18
    assert max(s.count for s in train) >= 18


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_samples_rejects_fraction(fraction: float):
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_samples(_samples([1, 2, 3, 4]), fraction)


def test_split_samples_rejects_empty_side():
    with pytest.raises(ValueError, match="both need at least one image"):
        split_samples(_samples([1, 2, 3]), 0.1)


def test_split_saved_and_read_back(tmp_path: Path):
    samples = _samples([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    train, validation = split_samples(samples, 0.3, seed=3)
    write_split(tmp_path / "split.csv", train, validation)
    write_json_atomically(tmp_path / "run.json", {"model": {"alpha": 0.35, "image_size": 96}})
    run = RunDir(tmp_path)
    assert run.samples("train") == train
    assert run.samples("validation") == validation
