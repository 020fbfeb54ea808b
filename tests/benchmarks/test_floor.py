"""The numpy floor's gradients against central finite differences in float64."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

from floor import FloorMLP


@pytest.mark.parametrize(
    ("activations", "loss"),
    [
        (["tanh", "sigmoid"], "mse"),
        (["relu", "identity"], "cross_entropy"),
        (["tanh", "identity"], "mse"),
        (["relu", "tanh", "identity"], "cross_entropy"),
    ],
)
def test_floor_gradient_matches_finite_differences(activations: list[str], loss: str) -> None:
    rng = np.random.default_rng(0)
    sizes = [3, *([5] * (len(activations) - 1)), 2]
    net = FloorMLP(sizes, activations, lr=0.0, momentum=0.0, dtype=np.float64, rng=rng, loss=loss)
    net.flat_p += rng.normal(0, 0.1, size=net.flat_p.shape)  # non-zero biases too
    X = rng.normal(size=(7, 3))
    T = np.eye(2)[rng.integers(0, 2, 7)] if loss == "cross_entropy" else rng.uniform(size=(7, 2))
    net.step(X, T)  # lr 0: computes the gradient into flat_g, leaves the parameters alone
    numeric = np.empty_like(net.flat_p)
    for i in range(net.flat_p.size):
        keep = net.flat_p[i]
        net.flat_p[i] = keep + 1e-6
        up = net.loss(X, T)
        net.flat_p[i] = keep - 1e-6
        down = net.loss(X, T)
        net.flat_p[i] = keep
        numeric[i] = (up - down) / 2e-6
    np.testing.assert_allclose(net.flat_g, numeric, rtol=1e-5, atol=1e-8)
