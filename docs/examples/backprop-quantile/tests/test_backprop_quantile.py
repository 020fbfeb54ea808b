"""backprop-quantile: the conformance kit, the formula by hand, and a trained model that bounds the targets."""

from __future__ import annotations

from pathlib import Path

import backprop_quantile
import numpy as np
import pytest

from framework import Experiment, fit
from framework.testing import check_plugin
from plugins.datasets import HousePrices

EXPERIMENT = Path(__file__).parents[1] / "quantile.toml"


def test_the_plugin_passes_the_conformance_kit() -> None:
    check_plugin(backprop_quantile)


def test_the_loss_weighs_low_predictions_by_tau_and_high_ones_by_one_minus_tau() -> None:
    loss = backprop_quantile.Quantile(quantile=0.9)
    outputs = np.array([[0.0], [0.0], [3.0]])
    targets = np.array([[2.0], [-1.0], [3.0]])  # r = t - o = 2 (too low), -1 (too high), 0
    assert loss.value(outputs, targets) == pytest.approx((0.9 * 2 + 0.1 * 1 + 0) / 3, rel=1e-12)
    # dL/do = (1[o > t] - τ) / N with N = 3; at r = 0 the documented subgradient -τ.
    np.testing.assert_allclose(loss.gradient(outputs, targets), [[-0.9 / 3], [0.1 / 3], [-0.9 / 3]], rtol=1e-12)


def test_about_ninety_percent_of_new_targets_fall_below_the_predictions() -> None:
    experiment = Experiment.from_file(EXPERIMENT)
    result = fit(experiment, track=False)
    assert experiment.loss.name == "quantile"
    # Houses the model never saw, drawn as the training ones: their 0.9-quantile lies above 90 % of them.
    houses = HousePrices(**{**experiment.data.component_params(), "n_samples": 2000})
    new = houses.load(np.random.default_rng(1))
    below = np.mean(new.y <= result.model.predict(new.X)[:, 0])
    assert 0.85 <= below <= 0.95, below
