"""backprop-huber: the conformance kit, the formula, and a short training run."""

from __future__ import annotations

from pathlib import Path

import backprop_huber
import numpy as np

from framework import Experiment, fit
from framework.testing import check_plugin

EXPERIMENT = Path(__file__).parents[1] / "huber.toml"


def test_the_plugin_passes_the_conformance_kit() -> None:
    check_plugin(backprop_huber)


def test_huber_is_quadratic_inside_delta_and_linear_outside() -> None:
    loss = backprop_huber.Huber(delta=1.0)
    targets = np.zeros((2, 1))
    assert loss.value(np.array([[0.5], [-0.5]]), targets) == 0.125  # r^2 / 2
    assert loss.value(np.array([[3.0], [-3.0]]), targets) == 2.5  # delta (|r| - delta / 2)


def test_an_experiment_trains_with_it() -> None:
    experiment = Experiment.from_file(EXPERIMENT, ["training.epochs=3"])
    result = fit(experiment, track=False)
    assert experiment.loss.name == "huber"
    assert len(result.history) == 3
