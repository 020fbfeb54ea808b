"""Every registered activation and loss, and the Dense layer, against central finite differences in float64.

The contract tests are parametrised over the live registry, so a component that a plugin adds later is
checked by the same tests. The built-ins are also checked against independent formulas and hand-computed
values, for dtype preservation, and at their numerically awkward points.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from framework.components import Activation, Array, Loss, Task
from framework.model import Dense
from framework.pluginmanager import create_plugin_manager
from framework.registry import Registry
from framework.testing.loss_check import loss_problems
from framework.testing.numeric import away_from_zero, numerical_gradient

# Every plugin of the `backprop` entry-point group, built-ins included, exactly as a run loads them.
REGISTRY = Registry.from_host(create_plugin_manager(strict=True))

ACTIVATIONS = REGISTRY.names("activation")
LOSSES = REGISTRY.names("loss")
F64 = np.dtype(np.float64)
F32 = np.dtype(np.float32)


def activation(name: str, **params: Any) -> Activation:
    instance = REGISTRY.get("activation", name)(**params)
    assert isinstance(instance, Activation)
    return instance


def loss_instance(name: str) -> Loss:
    instance = REGISTRY.get("loss", name)()
    assert isinstance(instance, Loss)
    return instance


def test_the_builtins_are_registered() -> None:
    # Guards the parametrised tests below against silently running over an empty or partial registry.
    assert {"identity", "sigmoid", "tanh", "relu", "leaky_relu"} <= set(ACTIVATIONS)
    assert {"mse", "binary_cross_entropy", "cross_entropy"} <= set(LOSSES)
    assert "dense" in REGISTRY.names("layer")


# ---------------------------------------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------------------------------------


def check_activation_gradient(act: Activation, rng: np.random.Generator) -> None:
    z = away_from_zero(rng, (5, 4))
    weights = rng.normal(size=z.shape)  # L = sum(f(z) * R): dL/da = R

    def loss() -> float:
        return float(np.sum(act.forward(z) * weights))

    a = act.forward(z)
    z_before, a_before = z.copy(), a.copy()
    analytic = act.backward(z, a, weights.copy())
    np.testing.assert_array_equal(z, z_before, err_msg="backward must not change z")
    np.testing.assert_array_equal(a, a_before, err_msg="backward must not change a")
    np.testing.assert_allclose(analytic, numerical_gradient(loss, z), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_backward_matches_finite_differences(name: str) -> None:
    check_activation_gradient(activation(name), np.random.default_rng(0))


@pytest.mark.parametrize("slope", [0.0, 0.2, 1.5])
def test_leaky_relu_backward_for_other_slopes(slope: float) -> None:
    check_activation_gradient(activation("leaky_relu", negative_slope=slope), np.random.default_rng(1))


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_forward_writes_into_out(name: str) -> None:
    act = activation(name)
    z = np.random.default_rng(2).normal(size=(3, 4))
    out = np.full_like(z, np.nan)
    result = act.forward(z, out=out)
    assert result is out
    np.testing.assert_array_equal(out, act.forward(z))


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_preserves_float32(name: str) -> None:
    act = activation(name)
    z = np.random.default_rng(3).normal(size=(3, 4)).astype(np.float32)
    a = act.forward(z)
    assert a.dtype == F32
    assert act.forward(z, out=np.empty_like(z)).dtype == F32
    assert act.backward(z, a, np.ones_like(z)).dtype == F32


ORACLES: dict[str, Callable[[float], float]] = {
    "identity": lambda z: z,
    "sigmoid": lambda z: 1.0 / (1.0 + math.exp(-z)),
    "tanh": math.tanh,
    "relu": lambda z: max(z, 0.0),
    "leaky_relu": lambda z: z if z > 0 else 0.01 * z,
}


@pytest.mark.parametrize("name", sorted(ORACLES))
def test_builtin_activation_forward_matches_the_formula(name: str) -> None:
    z = np.concatenate([np.linspace(-30, 30, 61), [-1e-3, 0.0, 1e-3]])
    expected = np.array([ORACLES[name](float(v)) for v in z])
    np.testing.assert_allclose(activation(name).forward(z), expected, rtol=1e-13, atol=0)


def test_relu_and_leaky_relu_take_the_left_derivative_at_zero() -> None:
    # The documented convention: relu'(0) = 0, leaky_relu'(0) = negative_slope (as PyTorch and TensorFlow).
    z = np.zeros(3)
    relu, leaky = activation("relu"), activation("leaky_relu", negative_slope=0.25)
    np.testing.assert_array_equal(relu.forward(z), 0.0)
    np.testing.assert_array_equal(relu.backward(z, relu.forward(z), np.full(3, 2.0)), 0.0)
    np.testing.assert_array_equal(leaky.forward(z), 0.0)
    np.testing.assert_array_equal(leaky.backward(z, leaky.forward(z), np.full(3, 2.0)), 0.5)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_sigmoid_is_stable_for_huge_inputs(dtype: np.dtype[Any]) -> None:
    sig = activation("sigmoid")
    z = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0], dtype=dtype)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        a = sig.forward(z)
        grad = sig.backward(z, a, np.ones_like(z))
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(grad))
    assert a[0] == 0.0 and a[2] == 0.5 and a[-1] == 1.0
    # The lower tail keeps its relative accuracy (1 - σ(50) would round to 0 there).
    if dtype == F64:
        assert a[1] == pytest.approx(math.exp(-50) / (1 + math.exp(-50)), rel=1e-14)


# ---------------------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------------------

# (task, n_outputs, n_classes): the problems a loss may be trained on; each loss is checked on every one it
# accepts (its `tasks` and its `check_outputs`).
PROBLEMS: list[tuple[Task, int, int | None]] = [("regression", 3, None), ("binary", 1, 2), ("binary", 2, 2)]
PROBLEMS.append(("multiclass", 4, 4))


def accepted(name: str, task: Task, n_outputs: int, n_classes: int | None) -> bool:
    loss = loss_instance(name)
    return task in loss.tasks and loss.check_outputs(n_outputs, task, n_classes) is None


LOSS_CASES = [
    pytest.param(name, task, n_out, n_cls, id=f"{name}-{task}-{n_out}")
    for name in LOSSES
    for task, n_out, n_cls in PROBLEMS
    if accepted(name, task, n_out, n_cls)
]


def make_problem(
    loss: Loss, task: Task, n_outputs: int, n_classes: int | None, dtype: np.dtype[Any], seed: int = 0
) -> tuple[Array, Array]:
    """Random outputs (logits) and the prepared targets of a batch of 6 samples: the first kind of regression
    target the loss accepts (normal values, non-negative counts, distributions), or class labels."""
    problem = loss_problems(loss, task, n_outputs, n_classes, dtype, seed)[0]
    return problem.outputs, problem.targets


def test_every_loss_has_a_test_case() -> None:
    assert {case.values[0] for case in LOSS_CASES} == set(LOSSES)


@pytest.mark.parametrize(("name", "task", "n_outputs", "n_classes"), LOSS_CASES)
def test_loss_gradient_matches_finite_differences(name: str, task: Task, n_outputs: int, n_classes: int | None) -> None:
    loss = loss_instance(name)
    outputs, targets = make_problem(loss, task, n_outputs, n_classes, F64)
    analytic = loss.gradient(outputs, targets).copy()

    def value() -> float:
        return loss.value(outputs, targets)

    np.testing.assert_allclose(analytic, numerical_gradient(value, outputs), rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize(("name", "task", "n_outputs", "n_classes"), LOSS_CASES)
def test_loss_preserves_float32_and_returns_python_floats(
    name: str, task: Task, n_outputs: int, n_classes: int | None
) -> None:
    loss = loss_instance(name)
    outputs, targets = make_problem(loss, task, n_outputs, n_classes, F32)
    assert targets.dtype == F32
    assert type(loss.value(outputs, targets)) is float
    assert loss.gradient(outputs, targets).dtype == F32
    assert np.asarray(loss.link(outputs)).dtype == F32


@pytest.mark.parametrize(("name", "task", "n_outputs", "n_classes"), LOSS_CASES)
def test_loss_gradient_does_not_depend_on_an_earlier_value_call(
    name: str, task: Task, n_outputs: int, n_classes: int | None
) -> None:
    # The gradient buffer is reused across batches; value() must not write into it.
    loss = loss_instance(name)
    outputs, targets = make_problem(loss, task, n_outputs, n_classes, F64)
    grad = loss.gradient(outputs, targets)
    expected = grad.copy()
    loss.value(outputs, targets)
    np.testing.assert_array_equal(grad, expected)


def test_mse_value_and_gradient_by_hand() -> None:
    # Differences 1, 0, 2, 3: the mean of the squares over all four elements is (1 + 0 + 4 + 9) / 4.
    outputs = np.array([[1.0, 2.0], [3.0, 4.0]])
    targets = np.array([[0.0, 2.0], [1.0, 1.0]])
    mse = loss_instance("mse")
    assert mse.value(outputs, targets) == pytest.approx(3.5, rel=1e-15)
    np.testing.assert_allclose(mse.gradient(outputs, targets), [[0.5, 0.0], [1.0, 1.5]], rtol=1e-15)


def test_binary_cross_entropy_value_by_hand() -> None:
    # Logit 0 with label 1: -log σ(0) = log 2. Logit 2 with label 0: -log(1 - σ(2)) = log(1 + e²).
    bce = loss_instance("binary_cross_entropy")
    outputs, targets = np.array([[0.0], [2.0]]), bce.prepare_targets(np.array([1, 0]), 1, F64)
    expected = (math.log(2) + math.log(1 + math.exp(2))) / 2  # = 1.4100375958...
    assert bce.value(outputs, targets) == pytest.approx(expected, rel=1e-14)
    assert expected == pytest.approx(1.410037596, rel=1e-9)


def test_cross_entropy_value_by_hand() -> None:
    # Row 1, label 2: -log(e³ / (e¹ + e² + e³)) = log(1 + e⁻¹ + e⁻²). Row 2, label 0: -log(1/3) = log 3.
    ce = loss_instance("cross_entropy")
    outputs = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    targets = ce.prepare_targets(np.array([2, 0]), 3, F64)
    np.testing.assert_array_equal(targets, [[0, 0, 1], [1, 0, 0]])
    expected = (math.log(1 + math.exp(-1) + math.exp(-2)) + math.log(3)) / 2
    assert expected == pytest.approx(0.7531091266, rel=1e-9)
    assert ce.value(outputs, targets) == pytest.approx(expected, rel=1e-14)


def test_classification_losses_are_finite_for_huge_logits() -> None:
    ce, bce = loss_instance("cross_entropy"), loss_instance("binary_cross_entropy")
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 1000.0]])
    ce_targets = ce.prepare_targets(np.array([1, 1]), 3, F64)
    bce_logits = np.array([[1000.0], [-1000.0]])
    bce_targets = bce.prepare_targets(np.array([0, 0]), 1, F64)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        # Sample 1 puts all its mass on the wrong class, by a logit gap of 2000; sample 2 is half right.
        assert ce.value(logits, ce_targets) == pytest.approx((2000 + math.log(2)) / 2)
        assert bce.value(bce_logits, bce_targets) == pytest.approx(500.0)
        assert np.all(np.isfinite(ce.gradient(logits, ce_targets)))
        assert np.all(np.isfinite(bce.gradient(bce_logits, bce_targets)))


def test_links_give_probabilities() -> None:
    logits = np.random.default_rng(4).normal(scale=5, size=(7, 4))
    probs = loss_instance("cross_entropy").link(logits)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-14)
    assert np.all(probs > 0)
    np.testing.assert_array_equal(probs.argmax(axis=1), logits.argmax(axis=1))
    sig = loss_instance("binary_cross_entropy").link(logits[:, :1])
    np.testing.assert_allclose(sig[:, 0], [1 / (1 + math.exp(-v)) for v in logits[:, 0]], rtol=1e-14)
    np.testing.assert_array_equal(loss_instance("mse").link(logits), logits)


def test_losses_refuse_mismatched_shapes_and_outputs() -> None:
    ce, bce, mse = loss_instance("cross_entropy"), loss_instance("binary_cross_entropy"), loss_instance("mse")
    assert bce.check_outputs(2, "binary", 2) is not None
    assert ce.check_outputs(2, "multiclass", 3) is not None
    assert ce.check_outputs(3, "multiclass", 3) is None
    with pytest.raises(ValueError, match=r"0\.\.2"):
        ce.prepare_targets(np.array([0, 3]), 3, F64)
    with pytest.raises(ValueError, match="column"):
        mse.prepare_targets(np.array([0.5, 1.5]), 3, F64)
    with pytest.raises(ValueError, match="shape"):
        mse.value(np.zeros((4, 3)), np.zeros((4, 1)))


# ---------------------------------------------------------------------------------------------------------
# The Dense layer
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_dense_backward_matches_finite_differences(name: str, use_bias: bool) -> None:
    rng = np.random.default_rng(5)
    layer = Dense(units=3, activation=name, use_bias=use_bias)
    REGISTRY.attach_components(layer, where="dense")
    layer.build(4, F64, rng)
    if use_bias:
        layer.b[...] = rng.normal(size=3)  # biases start at zero; make them matter
    x = rng.normal(size=(5, 4))
    weights = rng.normal(size=(5, 3))  # L = sum(a * R): dL/da = R

    def loss() -> float:
        return float(np.sum(layer.forward(x, training=False) * weights))

    # The analytic gradients first: an evaluation forward of the same batch size reuses the layer's buffers.
    layer.forward(x, training=True)
    dx = layer.backward(weights.copy())
    assert dx is not None
    dx, dW, db = dx.copy(), layer.dW.copy(), layer.db.copy()

    np.testing.assert_allclose(dW, numerical_gradient(loss, layer.W), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-9)
    if use_bias:
        np.testing.assert_allclose(db, numerical_gradient(loss, layer.b), rtol=1e-6, atol=1e-9)
        assert len(layer.parameters()) == len(layer.gradients()) == 2
    else:
        assert len(layer.parameters()) == len(layer.gradients()) == 1
