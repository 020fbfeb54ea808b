"""The dropout layer: inverted scaling, inference as identity, backward against finite differences, seeded."""

from __future__ import annotations

import numpy as np

from framework import Experiment, fit
from plugins.layers.dropout import Dropout
from tests.helpers import digits_config
from tests.plugins.test_gradients import numerical_gradient

F64 = np.dtype(np.float64)


def built(rate: float, width: int = 6, seed: int = 0) -> Dropout:
    layer = Dropout(rate=rate)
    assert layer.build(width, F64, np.random.default_rng(seed)) == width
    return layer


def test_inverted_dropout_zeroes_a_fraction_and_scales_the_rest() -> None:
    layer = built(0.25, width=400)
    x = np.ones((500, 400))
    y = layer.forward(x, True)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75)  # kept values scaled by 1/(1 - rate): the mean stays ~1
    assert abs(y.mean() - 1) < 0.01


def test_inference_is_the_identity() -> None:
    layer = built(0.5)
    x = np.random.default_rng(1).normal(size=(4, 6))
    np.testing.assert_array_equal(layer.forward(x, False), x)


def test_backward_matches_finite_differences_for_a_fixed_mask() -> None:
    layer = built(0.4)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 6))
    weights = rng.normal(size=(5, 6))  # L = sum(y * R): dL/dy = R
    layer.forward(x, True)
    mask = layer._mask
    assert mask is not None
    mask = mask.copy()
    numeric = numerical_gradient(lambda: float(np.sum(Dropout.apply(x, mask) * weights)), x)
    analytic = layer.backward(weights.copy())
    assert analytic is not None
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_the_masks_come_from_the_seed_and_the_state_round_trips() -> None:
    a, b = built(0.5, seed=7), built(0.5, seed=7)
    x = np.ones((3, 6))
    np.testing.assert_array_equal(a.forward(x, True), b.forward(x, True))
    state = a.state_dict()
    first = a.forward(x, True).copy()
    c = built(0.5, seed=99)
    c.load_state_dict(state)
    np.testing.assert_array_equal(c.forward(x, True), first)


def test_a_run_with_dropout_is_reproducible_and_keeps_other_layers_init() -> None:
    with_dropout = digits_config(
        model={"layers": [{"units": 32, "activation": "relu"}, {"type": "dropout", "rate": 0.3}, {"units": 10}]}
    )
    a = fit(Experiment.from_dict(with_dropout))
    b = fit(Experiment.from_dict(with_dropout))
    assert a.history.metrics == b.history.metrics
    # Generator.spawn draws nothing: the dense layers start from the same weights as without dropout.
    from framework.build import prepare_run

    plain = prepare_run(Experiment.from_dict(digits_config()), track=False).trainer.model.get_weights()
    dropped = prepare_run(Experiment.from_dict(with_dropout), track=False).trainer.model.get_weights()
    for w, v in zip(plain, dropped, strict=True):
        np.testing.assert_array_equal(w, v)
