"""The numpy floor's gradients against central finite differences in float64."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

from floor import FloorMLP
from floor_norm import FloorNormMLP

from framework import DataBundle, Dataset, Experiment, fit, hookimpl


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


def test_the_batch_norm_floor_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(0)
    net = FloorNormMLP([3, 5, 4, 2], lr=0.0, momentum=0.0, dtype=np.float64, rng=rng)
    net.flat_p += rng.normal(0, 0.3, size=net.flat_p.shape)  # γ away from 1, β and biases away from 0
    X = rng.normal(size=(7, 3))
    T = np.eye(2)[rng.integers(0, 2, 7)]
    net.step(X, T)  # lr 0: the gradient into flat_g, parameters unchanged (running statistics move: unused here)
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


def test_the_batch_norm_floor_computes_what_backprop_computes() -> None:
    """Same initial weights, same data order: after an epoch the floor's weights equal backprop's (float64)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 6))
    y = rng.integers(0, 3, 40)
    config = {
        "name": "floor-bn",
        "dtype": "float64",
        "data": {"name": "arrays-for-test", "validation_split": 0.0, "standardize": False},
        "model": {"layers": [{"units": 5, "activation": "gelu"}, {"type": "batch_norm"}, {"units": 3}]},
        "loss": {"name": "cross_entropy"},
        "optimizer": {"name": "momentum", "lr": 0.1, "momentum": 0.9},
        "training": {"epochs": 1, "batch_size": 8, "shuffle": False},
        "tracking": {"enabled": False},
    }

    class Arrays(Dataset):
        """The test's arrays."""

        name = "arrays-for-test"

        def load(self, rng: np.random.Generator) -> DataBundle:
            return DataBundle(X, y, "multiclass", target_names=["a", "b", "c"])

    class Plugin:
        @hookimpl
        def register_datasets(self) -> list[type[Dataset]]:
            return [Arrays]

    initial: list[np.ndarray] = []

    class Initial:
        @hookimpl
        def before_fit(self, trainer: object) -> None:
            initial.extend(p.copy() for p in trainer.model.parameters())  # type: ignore[attr-defined]

    result = fit(Experiment.from_dict(config), plugins=[Plugin()], callbacks=[Initial()], track=False)
    net = FloorNormMLP([6, 5, 3], lr=0.1, momentum=0.9, dtype=np.float64, rng=rng, weights=initial)
    T = np.eye(3)[y]
    for s in range(0, 40, 8):
        net.step(X[s : s + 8], T[s : s + 8])
    for mine, theirs in zip(net.params, result.model.parameters(), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(net.running[0], np.stack(result.model.buffers()), rtol=1e-12, atol=1e-14)
