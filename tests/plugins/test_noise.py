"""gaussian_noise: y = x + σ·ε in training from its own seeded generator, the identity at inference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from framework import Experiment
from framework.build import prepare_run
from framework.pluginmanager import create_plugin_manager
from framework.registry import Registry
from framework.testing import check_component, check_layer
from framework.testing.numeric import assert_gradient, numerical_gradient
from plugins.layers.noise import GaussianNoise
from tests.helpers import digits_config

F64 = np.dtype(np.float64)
F32 = np.dtype(np.float32)


def built(stddev: float = 0.1, width: int = 6, seed: int = 0, dtype: np.dtype[Any] = F64) -> GaussianNoise:
    layer = GaussianNoise(stddev=stddev)
    assert layer.build(width, dtype, np.random.default_rng(seed)) == width
    return layer


def test_registered_and_passes_the_kit() -> None:
    registry = Registry.from_host(create_plugin_manager(strict=True))
    assert registry.get("layer", "gaussian_noise") is GaussianNoise
    check_component(GaussianNoise)
    check_layer(GaussianNoise(stddev=2.0), batch=7)


@pytest.mark.parametrize("dtype", [F64, F32], ids=str)
def test_training_adds_sigma_times_standard_normal_draws_of_a_generator_spawned_from_the_seed(
    dtype: np.dtype[Any],
) -> None:
    layer = built(stddev=0.5, seed=3, dtype=dtype)
    x = np.arange(24, dtype=dtype).reshape(4, 6)
    # The same draws, made independently: the first child spawned from the model's generator.
    epsilon = np.random.default_rng(3).spawn(1)[0].standard_normal((4, 6), dtype=dtype)
    y = layer.forward(x, True).copy()  # the output buffer is reused by the next batch
    assert y.dtype == dtype
    np.testing.assert_allclose(y, x + 0.5 * epsilon.astype(np.float64), rtol=1e-6)
    assert not np.array_equal(layer.forward(x, True), y)  # new noise every batch


def test_the_noise_has_mean_zero_and_standard_deviation_sigma() -> None:
    layer = built(stddev=0.3, width=100)
    noise = layer.forward(np.zeros((2000, 100)), True)
    assert abs(noise.mean()) < 0.3 * 5 / np.sqrt(noise.size)  # five standard errors
    assert noise.std() == pytest.approx(0.3, rel=0.01)


def test_inference_and_zero_stddev_are_the_identity() -> None:
    x = np.random.default_rng(1).normal(size=(4, 6))
    np.testing.assert_array_equal(built().forward(x, False), x)
    np.testing.assert_array_equal(built(stddev=0.0).forward(x, True), x)


def test_backward_matches_finite_differences_with_the_generator_restored() -> None:
    layer = built(stddev=0.7)
    rng = np.random.default_rng(2)
    x, weights = rng.normal(size=(5, 6)), rng.normal(size=(5, 6))  # L = sum(y * R): dL/dy = R
    state = layer.state_dict()

    def loss() -> float:
        layer.load_state_dict(state)  # the same noise for every evaluation
        return float(np.sum(layer.forward(x, True) * weights))

    loss()
    analytic = layer.backward(weights.copy())
    assert_gradient("dL/dx", analytic, numerical_gradient(loss, x))
    layer.needs_input_grad = False
    assert layer.backward(weights.copy()) is None


def test_the_state_round_trips_so_a_resumed_run_draws_the_same_noise() -> None:
    a = built(seed=7)
    x = np.ones((3, 6))
    a.forward(x, True)
    state = a.state_dict()
    expected = a.forward(x, True).copy()
    b = built(seed=99)
    b.load_state_dict(state)
    np.testing.assert_array_equal(b.forward(x, True), expected)


def test_adding_the_layer_keeps_the_other_layers_initial_weights() -> None:
    # Generator.spawn draws nothing from the model's generator.
    noisy = digits_config(
        model={"layers": [{"units": 32, "activation": "relu"}, {"type": "gaussian_noise"}, {"units": 10}]}
    )
    plain = prepare_run(Experiment.from_dict(digits_config()), track=False).trainer.model.get_weights()
    with_noise = prepare_run(Experiment.from_dict(noisy), track=False).trainer.model.get_weights()
    for w, v in zip(plain, with_noise, strict=True):
        np.testing.assert_array_equal(w, v)
