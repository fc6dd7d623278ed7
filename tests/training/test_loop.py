"""The per-epoch fit calls of a phase print the epoch within the phase, not Keras' own count."""

from __future__ import annotations

import numpy as np


def test_phase_progbar_counts_within_phase(capsys):
    import keras

    from edgecount.training.loop import create_phase_progbar

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    features, targets = np.zeros((8, 2), np.float32), np.zeros(8, np.float32)
    for epoch in range(3):
        model.fit(features, targets, initial_epoch=epoch, epochs=epoch + 1, verbose=2, callbacks=[create_phase_progbar(2, 15)])
    output = capsys.readouterr().out
    assert [line for line in output.splitlines() if line.startswith("Phase")] == [f"Phase 2 epoch {epoch}/15" for epoch in (1, 2, 3)]
    assert "Epoch " not in output, "Keras prints no header of its own"
    assert output.count("loss:") == 3, "the per-epoch metrics line stays"


def test_phase_progbar_silent_when_quiet(capsys):
    import keras

    from edgecount.training.loop import create_phase_progbar

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    model.fit(np.zeros((4, 2)), np.zeros(4), epochs=1, verbose=0, callbacks=[create_phase_progbar(1, 5)])
    assert capsys.readouterr().out == ""
