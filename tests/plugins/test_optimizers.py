"""The built-in optimisers against update steps computed by hand, and their state and in-place contracts.

The problem: two parameters, p = [1, -2] and q = [[3]], lr = 0.1, μ = 0.9, and three steps with gradients
g_p = [1, 2], [0.5, -1], [-2, 4] and g_q = [[1]] each time. The expected values below were worked out by
hand from the update rules (and re-checked with plain Python floats), never with the code under test.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pydantic
import pytest

from framework.components import Array, Optimizer
from plugins.adaptive_optimizers import Adagrad, Adam, AdamW, RMSprop
from plugins.optimizers import SGD, Momentum

GRADS_P = [[1.0, 2.0], [0.5, -1.0], [-2.0, 4.0]]

# sgd: p ← p - lr·g.
#   p: [1, -2] → [0.9, -2.2] → [0.85, -2.1] → [1.05, -2.5];  q: 3 → 2.9 → 2.8 → 2.7
SGD_STEPS = [([0.9, -2.2], 2.9), ([0.85, -2.1], 2.8), ([1.05, -2.5], 2.7)]

# classic momentum: v ← μ·v - lr·g; p ← p + v.
#   v_p: [-0.1, -0.2] → [-0.09 - 0.05, -0.18 + 0.1] = [-0.14, -0.08] → [-0.126 + 0.2, -0.072 - 0.4] = [0.074, -0.472]
#   v_q: -0.1 → -0.19 → -0.271
MOMENTUM_STEPS = [([0.9, -2.2], 2.9), ([0.76, -2.28], 2.71), ([0.834, -2.752], 2.439)]

# Nesterov momentum (Keras form): v ← μ·v - lr·g (the same velocities as above); p ← p + μ·v - lr·g.
#   p: [1 - 0.09 - 0.1, -2 - 0.18 - 0.2] = [0.81, -2.38]
#      → [0.81 - 0.126 - 0.05, -2.38 - 0.072 + 0.1] = [0.634, -2.352]
#      → [0.634 + 0.0666 + 0.2, -2.352 - 0.4248 - 0.4] = [0.9006, -3.1768]
#   q: 3 - 0.09 - 0.1 = 2.81 → 2.81 - 0.171 - 0.1 = 2.539 → 2.539 - 0.2439 - 0.1 = 2.1951
NESTEROV_STEPS = [([0.81, -2.38], 2.81), ([0.634, -2.352], 2.539), ([0.9006, -3.1768], 2.1951)]

# The adaptive optimisers use ε = 1 (and simple β, ρ) so that ε's place in the rule shows in the numbers.
#
# adam, lr = 0.1, β₁ = β₂ = 0.5, ε = 1: m ← β₁·m + (1-β₁)·g; v ← β₂·v + (1-β₂)·g²; p ← p - lr·m̂/(√v̂ + ε).
#   t=1, g_p = [1, 2]:    m = [0.5, 1], v = [0.5, 2]; m̂ = m/0.5 = [1, 2], v̂ = v/0.5 = [1, 4], √v̂ = [1, 2]
#                         step = 0.1·[1/2, 2/3] = [0.05, 0.2/3]           p = [0.95, -2 - 0.2/3]
#   t=2, g_p = [0.5, -1]: m = [0.5, 0], v = [0.375, 1.5]; m̂ = m/0.75 = [2/3, 0], v̂ = v/0.75 = [0.5, 2]
#                         step = [0.1·(2/3)/(1 + √0.5), 0]
#   t=3, g_p = [-2, 4]:   m = [-0.75, 2], v = [2.1875, 8.75]; m̂ = m/0.875 = [-6/7, 16/7], v̂ = [2.5, 10]
#                         step = [-0.1·(6/7)/(1 + √2.5), 0.1·(16/7)/(1 + √10)]
#   q: a constant gradient 1 has m̂ = 1 and v̂ = 1 at every t: step = 0.1·1/(1 + 1) = 0.05 each time.
ADAM_P1 = [0.95, -2 - 0.2 / 3]
ADAM_P2 = [0.95 - (0.2 / 3) / (1 + 0.5**0.5), -2 - 0.2 / 3]
ADAM_P3 = [ADAM_P2[0] + 0.1 * (6 / 7) / (1 + 2.5**0.5), ADAM_P2[1] - 0.1 * (16 / 7) / (1 + 10**0.5)]
ADAM_STEPS = [(ADAM_P1, 2.95), (ADAM_P2, 2.9), (ADAM_P3, 2.85)]

# rmsprop, lr = 0.1, ρ = 0.75, ε = 1: v ← ρ·v + (1-ρ)·g²; p ← p - lr·g/(√v + ε).
#   t=1, g_p = [1, 2]:    v = [0.25, 1], √v = [0.5, 1]; step = 0.1·[1/1.5, 2/2] = [1/15, 0.1]
#   t=2, g_p = [0.5, -1]: v = [0.1875 + 0.0625, 0.75 + 0.25] = [0.25, 1]; step = 0.1·[0.5/1.5, -1/2] = [1/30, -0.05]
#                         p = [1 - 1/15 - 1/30, -2 - 0.1 + 0.05] = [0.9, -2.05]
#   t=3, g_p = [-2, 4]:   v = [0.1875 + 1, 0.75 + 4] = [1.1875, 4.75]; step = 0.1·[-2/(1 + √1.1875), 4/(1 + √4.75)]
#   q (g = 1):            v = 0.25, 0.4375, 0.578125; steps 0.1/1.5, 0.1/(1 + √0.4375), 0.1/(1 + √0.578125)
RMS_Q1 = 3 - 1 / 15
RMS_Q2 = RMS_Q1 - 0.1 / (1 + 0.4375**0.5)
RMS_Q3 = RMS_Q2 - 0.1 / (1 + 0.578125**0.5)
RMSPROP_STEPS = [
    ([1 - 1 / 15, -2.1], RMS_Q1),
    ([0.9, -2.05], RMS_Q2),
    ([0.9 + 0.2 / (1 + 1.1875**0.5), -2.05 - 0.4 / (1 + 4.75**0.5)], RMS_Q3),
]

# adagrad, lr = 0.1, ε = 1, G₀ = 0: G ← G + g²; p ← p - lr·g/(√G + ε).
#   t=1, g_p = [1, 2]:    G = [1, 4]; step = 0.1·[1/2, 2/3]                        p = [0.95, -2 - 0.2/3]
#   t=2, g_p = [0.5, -1]: G = [1.25, 5]; step = 0.1·[0.5/(1 + √1.25), -1/(1 + √5)]
#   t=3, g_p = [-2, 4]:   G = [5.25, 21]; step = 0.1·[-2/(1 + √5.25), 4/(1 + √21)]
#   q (g = 1):            G = 1, 2, 3; steps 0.1/2, 0.1/(1 + √2), 0.1/(1 + √3)
ADA_P2 = [0.95 - 0.05 / (1 + 1.25**0.5), -2 - 0.2 / 3 + 0.1 / (1 + 5**0.5)]
ADAGRAD_STEPS = [
    ([0.95, -2 - 0.2 / 3], 2.95),
    (ADA_P2, 2.95 - 0.1 / (1 + 2**0.5)),
    (
        [ADA_P2[0] + 0.2 / (1 + 5.25**0.5), ADA_P2[1] - 0.4 / (1 + 21**0.5)],
        2.95 - 0.1 / (1 + 2**0.5) - 0.1 / (1 + 3**0.5),
    ),
]

CASES = [
    pytest.param(lambda: SGD(lr=0.1), SGD_STEPS, id="sgd"),
    pytest.param(lambda: Momentum(lr=0.1, momentum=0.9), MOMENTUM_STEPS, id="momentum"),
    pytest.param(lambda: Momentum(lr=0.1, momentum=0.9, nesterov=True), NESTEROV_STEPS, id="nesterov"),
    pytest.param(lambda: Adam(lr=0.1, beta_1=0.5, beta_2=0.5, epsilon=1.0), ADAM_STEPS, id="adam"),
    # adamw's own step is adam's; its weight decay is the core's (tests/framework/test_optimization.py).
    pytest.param(lambda: AdamW(lr=0.1, beta_1=0.5, beta_2=0.5, epsilon=1.0), ADAM_STEPS, id="adamw"),
    pytest.param(lambda: RMSprop(lr=0.1, rho=0.75, epsilon=1.0), RMSPROP_STEPS, id="rmsprop"),
    pytest.param(lambda: Adagrad(lr=0.1, epsilon=1.0), ADAGRAD_STEPS, id="adagrad"),
]
STATEFUL = [case for case in CASES if case.id not in {"sgd"}]


def start(dtype: Any = np.float64) -> list[Array]:
    return [np.array([1.0, -2.0], dtype=dtype), np.array([[3.0]], dtype=dtype)]


def grads_at(step: int, dtype: Any = np.float64) -> list[Array]:
    return [np.array(GRADS_P[step], dtype=dtype), np.array([[1.0]], dtype=dtype)]


@pytest.mark.parametrize(("make", "expected"), CASES)
def test_steps_match_the_hand_computed_values(make: Any, expected: list[tuple[list[float], float]]) -> None:
    optimizer = make()
    params = start()
    for step, (p, q) in enumerate(expected):
        optimizer.step(params, grads_at(step))
        np.testing.assert_allclose(params[0], p, rtol=1e-12, err_msg=f"p after step {step + 1}")
        np.testing.assert_allclose(params[1], [[q]], rtol=1e-12, err_msg=f"q after step {step + 1}")


@pytest.mark.parametrize(("make", "expected"), CASES)
def test_float32_stays_float32(make: Any, expected: list[tuple[list[float], float]]) -> None:
    optimizer = make()
    params = start(np.float32)
    for step, (p, q) in enumerate(expected):
        optimizer.step(params, grads_at(step, np.float32))
        assert all(x.dtype == np.float32 for x in params)
        np.testing.assert_allclose(params[0], p, rtol=1e-6)
        np.testing.assert_allclose(params[1], [[q]], rtol=1e-6)
    assert all(v.dtype == np.float32 for v in optimizer.state_dict().get("velocities", []))


@pytest.mark.parametrize(("make", "expected"), CASES)
def test_step_updates_the_arrays_in_place_and_leaves_gradients_alone(
    make: Any, expected: list[tuple[list[float], float]]
) -> None:
    optimizer: Optimizer = make()
    backing = np.array([1.0, -2.0, 3.0])
    params = [backing[:2], backing[2:].reshape(1, 1)]  # views: only in-place updates reach `backing`
    before = list(params)
    grads = grads_at(0)
    grads_before = [g.copy() for g in grads]
    optimizer.step(params, grads)
    assert all(p is b for p, b in zip(params, before, strict=True))
    np.testing.assert_allclose(backing, [*expected[0][0], expected[0][1]], rtol=1e-12)
    for g, g0 in zip(grads, grads_before, strict=True):
        np.testing.assert_array_equal(g, g0)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_state_dict_round_trip_gives_identical_steps(nesterov: bool) -> None:
    original = Momentum(lr=0.1, momentum=0.9, nesterov=nesterov)
    params = start()
    original.step(params, grads_at(0))
    original.step(params, grads_at(1))

    state = original.state_dict()
    assert set(state) == {"velocities"}
    assert all(type(v) is np.ndarray for v in state["velocities"])
    np.testing.assert_allclose(state["velocities"][0], [-0.14, -0.08], rtol=1e-12)  # v_p after two steps

    resumed = Momentum(lr=0.1, momentum=0.9, nesterov=nesterov)
    resumed.load_state_dict(state)
    state["velocities"][0][...] = 99.0  # the loaded state is a copy, not a view of the dict
    resumed_params = [p.copy() for p in params]

    original.step(params, grads_at(2))
    resumed.step(resumed_params, grads_at(2))
    for p, r in zip(params, resumed_params, strict=True):
        np.testing.assert_array_equal(p, r)
    expected = NESTEROV_STEPS if nesterov else MOMENTUM_STEPS
    np.testing.assert_allclose(resumed_params[0], expected[2][0], rtol=1e-12)


def test_state_dict_is_a_snapshot() -> None:
    optimizer = Momentum(lr=0.1)
    params = start()
    optimizer.step(params, grads_at(0))
    state = optimizer.state_dict()
    optimizer.step(params, grads_at(1))
    np.testing.assert_allclose(state["velocities"][0], [-0.1, -0.2], rtol=1e-12)


def test_sgd_has_no_state() -> None:
    sgd = SGD(lr=0.1)
    sgd.step(start(), grads_at(0))
    assert sgd.state_dict() == {}
    sgd.load_state_dict({})
    with pytest.raises(ValueError, match="no state"):
        sgd.load_state_dict({"velocities": []})


def test_momentum_refuses_a_different_model() -> None:
    optimizer = Momentum(lr=0.1)
    optimizer.step(start(), grads_at(0))
    with pytest.raises(ValueError, match="parameter shapes"):
        optimizer.step([np.zeros(3)], [np.zeros(3)])


def test_params_are_validated() -> None:
    with pytest.raises(pydantic.ValidationError):
        Momentum(momentum=1.0)  # μ < 1, or the velocity never decays
    with pytest.raises(pydantic.ValidationError):
        SGD(lr=0.0)
    with pytest.raises(pydantic.ValidationError):
        Momentum(lr=0.1, mu=0.9)  # unknown keys are errors


@pytest.mark.parametrize("cls", [SGD, Momentum, Adam, AdamW, RMSprop, Adagrad])
def test_docstring_states_the_update_rule(cls: type[Optimizer]) -> None:
    assert "←" in cls.summary()


@pytest.mark.parametrize(("make", "expected"), STATEFUL)
def test_state_dict_round_trip_gives_identical_steps(make: Any, expected: list[tuple[list[float], float]]) -> None:
    original = make()
    params = start()
    original.step(params, grads_at(0))
    original.step(params, grads_at(1))
    state = original.state_dict()
    resumed = make()
    resumed.load_state_dict(state)
    for value in state.values():  # the loaded state is a copy, not a view of the dict
        if isinstance(value, list):
            for array in value:
                array[...] = 99.0
    resumed_params = [p.copy() for p in params]
    original.step(params, grads_at(2))
    resumed.step(resumed_params, grads_at(2))
    for p, r in zip(params, resumed_params, strict=True):
        np.testing.assert_array_equal(p, r)
    np.testing.assert_allclose(resumed_params[0], expected[2][0], rtol=1e-12)


def test_adam_first_step_moves_every_element_by_about_lr() -> None:
    # With the default ε, m̂/√v̂ = g/|g| on the first step: each element moves by lr against its gradient's sign.
    params = [np.array([1.0, -2.0, 3.0])]
    Adam(lr=0.01).step(params, [np.array([10.0, -0.001, 2.0])])
    np.testing.assert_allclose(params[0], [0.99, -1.99, 2.99], rtol=1e-6)


def test_adamw_asks_the_core_for_decoupled_weight_decay() -> None:
    assert AdamW.decoupled_weight_decay and AdamW.default_weight_decay == 0.01
    assert not any(cls.decoupled_weight_decay for cls in (SGD, Momentum, Adam, RMSprop, Adagrad))
