"""batch_norm and layer_norm: formulas written out by hand, finite differences in both modes, the kit, speed rules."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import framework
from framework import Experiment
from framework.build import prepare_run
from framework.errors import ConfigError
from framework.functional import normalization
from framework.pluginmanager import create_plugin_manager
from framework.registry import Registry
from framework.testing import check_component, check_layer
from framework.testing.layer_check import attach_installed_components
from framework.testing.numeric import assert_gradient, numerical_gradient
from plugins.layers.activation import ActivationLayer
from plugins.layers.normalization import BatchNorm, LayerNorm
from plugins.tracking import backprop_pyfunc
from tests.helpers import digits_config

F64 = np.dtype(np.float64)
F32 = np.dtype(np.float32)

# Hand-picked: 3 samples (rows) by 2 features, nothing symmetric.
X = [[1.0, -2.0], [3.0, 0.5], [-0.5, 4.0]]
GAMMA, BETA = [1.5, -0.5], [0.25, 2.0]


def built(layer: Any, width: int = 2, dtype: np.dtype[Any] = F64) -> Any:
    assert layer.build(width, dtype, np.random.default_rng(0)) == width
    return layer


def with_affine(layer: Any) -> Any:
    layer.gamma[...] = GAMMA
    layer.beta[...] = BETA
    return layer


def column(rows: list[list[float]], j: int) -> list[float]:
    return [row[j] for row in rows]


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def biased_var(values: list[float]) -> float:
    mu = mean(values)
    return sum((v - mu) ** 2 for v in values) / len(values)


def test_the_layers_are_registered_and_pass_the_kit_with_their_defaults() -> None:
    registry = Registry.from_host(create_plugin_manager(strict=True))
    assert registry.get("layer", "batch_norm") is BatchNorm
    assert registry.get("layer", "layer_norm") is LayerNorm
    for cls in (BatchNorm, LayerNorm):
        check_component(cls)


# ---------------------------------------------------------------------------------------------------------
# batch_norm: values against the formulas
# ---------------------------------------------------------------------------------------------------------


def test_batch_norm_training_normalises_with_the_batch_statistics() -> None:
    layer = with_affine(built(BatchNorm()))
    y = layer.forward(np.array(X), True)
    eps = 1e-3
    for j in range(2):
        values = column(X, j)
        mu, var = mean(values), biased_var(values)
        expected = [GAMMA[j] * (v - mu) / math.sqrt(var + eps) + BETA[j] for v in values]
        np.testing.assert_allclose(y[:, j], expected, rtol=1e-13)


def test_batch_norm_without_affine_outputs_the_normalised_input_and_has_no_parameters() -> None:
    layer = built(BatchNorm(affine=False, epsilon=0.5))
    assert layer.parameters() == [] and layer.gradients() == []
    y = layer.forward(np.array(X), True)
    for j in range(2):
        values = column(X, j)
        mu, var = mean(values), biased_var(values)
        np.testing.assert_allclose(y[:, j], [(v - mu) / math.sqrt(var + 0.5) for v in values], rtol=1e-13)


def test_running_statistics_after_k_batches_and_evaluation_with_them() -> None:
    momentum = 0.9
    layer = with_affine(built(BatchNorm(momentum=momentum)))
    batches = [X, [[0.5, 1.0], [2.0, -1.0]], [[-3.0, 2.5], [1.0, 1.0], [0.0, -4.0], [2.0, 0.25]]]
    running_mean, running_var = [0.0, 0.0], [1.0, 1.0]  # where they start
    for batch in batches:
        layer.forward(np.array(batch), True)
        for j in range(2):
            values = column(batch, j)
            running_mean[j] = momentum * running_mean[j] + (1 - momentum) * mean(values)
            running_var[j] = momentum * running_var[j] + (1 - momentum) * biased_var(values)  # biased, as Keras
    np.testing.assert_allclose(layer.running_mean, running_mean, rtol=1e-13)
    np.testing.assert_allclose(layer.running_var, running_var, rtol=1e-13)

    new = [[0.3, -0.7], [10.0, 2.0]]
    y = layer.forward(np.array(new), False)
    for i, row in enumerate(new):
        for j, v in enumerate(row):
            expected = GAMMA[j] * (v - running_mean[j]) / math.sqrt(running_var[j] + 1e-3) + BETA[j]
            assert y[i, j] == pytest.approx(expected, rel=1e-13)
    np.testing.assert_allclose(layer.running_mean, running_mean, rtol=1e-13)  # evaluation updates nothing


def set_running(layer: BatchNorm, mean: list[float], var: list[float]) -> None:
    layer.running_mean[...] = mean
    layer.running_var[...] = var


@pytest.mark.parametrize("n", [1, 3])
def test_running_mode_and_a_one_sample_batch_normalise_with_the_running_statistics(n: int) -> None:
    # statistics = "running" at any batch size; and a batch of one sample in "batch" mode (its variance is 0).
    layer = with_affine(built(BatchNorm(statistics="running" if n > 1 else "batch")))
    set_running(layer, [0.5, -1.0], [2.0, 0.25])
    rows = X[:n]
    y = layer.forward(np.array(rows), True)
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            running_mean, running_var = [0.5, -1.0][j], [2.0, 0.25][j]
            expected = GAMMA[j] * (v - running_mean) / math.sqrt(running_var + 1e-3) + BETA[j]
            assert y[i, j] == pytest.approx(expected, rel=1e-13)
    np.testing.assert_array_equal(layer.running_mean, [0.5, -1.0])  # left unchanged
    np.testing.assert_array_equal(layer.running_var, [2.0, 0.25])
    g = np.array([[0.5, -2.0], [1.0, 3.0], [-1.5, 0.5]][:n])
    dx = layer.backward(g.copy())
    for i in range(n):  # the affine map's derivative: γ·g/√(σ² + ε)
        for j in range(2):
            assert dx[i, j] == pytest.approx(GAMMA[j] * g[i, j] / math.sqrt([2.0, 0.25][j] + 1e-3), rel=1e-13)


def test_batch_norm_is_stable_for_large_inputs_in_float32() -> None:
    # Values near 1e4 that differ by 1: E[x²] − E[x]² would lose the variance entirely in float32 (x² ~ 1e8 is
    # kept to ±4), the two-pass variance does not; float32 holds 1e4 to ±0.0005, hence the tolerance. And
    # |x| = 1e4 itself neither overflows nor gives NaN.
    rows = [[1e4, -1e4], [1e4 + 1.0, 1e4], [1e4 + 2.0, 0.0]]
    layer = built(BatchNorm(), dtype=F32)
    y = layer.forward(np.array(rows, dtype=np.float32), True)
    assert y.dtype == F32 and np.isfinite(y).all()
    for j in range(2):
        values = column(rows, j)
        mu, var = mean(values), biased_var(values)
        np.testing.assert_allclose(y[:, j], [(v - mu) / math.sqrt(var + 1e-3) for v in values], atol=1e-2)
    ev = layer.forward(np.array(rows, dtype=np.float32), False)
    assert ev.dtype == F32 and np.isfinite(ev).all()


# ---------------------------------------------------------------------------------------------------------
# Finite differences (float64), in both modes, at several batch sizes
# ---------------------------------------------------------------------------------------------------------


def assert_gradients_match_finite_differences(layer: Any, x: np.ndarray, seed: int) -> None:
    """Input and parameter gradients against central differences of L = Σ y·R, buffers restored each time."""
    R = np.random.default_rng(seed).normal(size=x.shape)
    kept = [b.copy() for b in layer.buffers().values()]

    def forward() -> np.ndarray:
        for live, saved in zip(layer.buffers().values(), kept, strict=True):
            live[...] = saved  # a training forward in "batch" mode updates the running statistics
        return np.asarray(layer.forward(x, True))

    def loss() -> float:
        return float(np.sum(forward() * R))

    forward()
    dx = np.array(layer.backward(R.copy()), copy=True)
    analytic = [g.copy() for g in layer.gradients()]
    assert_gradient("dL/dx", dx, numerical_gradient(loss, x))
    for i, (p, g) in enumerate(zip(layer.parameters(), analytic, strict=True)):
        assert_gradient(f"parameter {i}", g, numerical_gradient(loss, p))


@pytest.mark.parametrize("n", [2, 5, 32])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no-affine"])
@pytest.mark.parametrize("statistics", ["batch", "running"])
def test_batch_norm_gradients_match_finite_differences(statistics: str, affine: bool, n: int) -> None:
    rng = np.random.default_rng(n)
    layer = built(BatchNorm(statistics=statistics, affine=affine, epsilon=0.01), width=4)
    for p in layer.parameters():
        p[...] = rng.normal(size=p.shape)
    set_running(layer, list(rng.normal(size=4)), list(rng.uniform(0.5, 2.0, size=4)))
    x = 3.0 + 2.0 * rng.normal(size=(n, 4))  # off-centre and wider than N(0, 1): the statistics matter
    assert_gradients_match_finite_differences(layer, x, seed=n)
    check_layer(BatchNorm(statistics=statistics, affine=affine), batch=n)  # and the conformance kit


def test_batch_norm_on_batch_statistics_ignores_a_common_shift_so_its_input_gradient_sums_to_zero() -> None:
    # y(x + c) = y(x) for a shift c of every sample: the derivative along it, Σ_i dL/dx_i, is 0 per feature.
    rng = np.random.default_rng(3)
    layer = built(BatchNorm(), width=3)
    x, g = rng.normal(size=(6, 3)) * 4 + 1, rng.normal(size=(6, 3))
    y = layer.forward(x, True).copy()
    np.testing.assert_allclose(layer.forward(x + 100.0, True), y, atol=1e-12)
    np.testing.assert_allclose(layer.backward(g).sum(axis=0), 0, atol=1e-12)


def test_evaluating_between_forward_and_backward_leaves_the_gradients_right() -> None:
    rng = np.random.default_rng(4)
    x, other, g = rng.normal(size=(5, 3)), rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    results = []
    for evaluate in (False, True):
        layer = built(BatchNorm(), width=3)
        layer.forward(x, True)
        if evaluate:
            layer.forward(other, False)  # the same batch size, inference mode (a hook could do it)
        results.append([np.array(layer.backward(g.copy())), *(a.copy() for a in layer.gradients())])
    for clean, disturbed in zip(*results, strict=True):
        np.testing.assert_array_equal(clean, disturbed)


# ---------------------------------------------------------------------------------------------------------
# layer_norm
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("training", [True, False], ids=["training", "evaluation"])
def test_layer_norm_normalises_each_sample_over_its_features(training: bool) -> None:
    rows = [[1.0, -2.0, 0.5], [3.0, 3.5, -1.0]]
    gamma, beta = [1.5, -0.5, 2.0], [0.25, 2.0, -1.0]
    layer = built(LayerNorm(epsilon=0.01), width=3)
    layer.gamma[...], layer.beta[...] = gamma, beta
    y = layer.forward(np.array(rows), training)
    for i, row in enumerate(rows):
        mu, var = mean(row), biased_var(row)
        expected = [gamma[j] * (v - mu) / math.sqrt(var + 0.01) + beta[j] for j, v in enumerate(row)]
        np.testing.assert_allclose(y[i], expected, rtol=1e-13)


def test_layer_norm_does_not_depend_on_the_other_samples_and_is_stable_in_float32() -> None:
    layer = built(LayerNorm(affine=False), width=3, dtype=F32)
    row = [1e4, 1e4 + 1.0, 1e4 + 2.0]  # E[x²] − E[x]² would cancel in float32
    alone = layer.forward(np.array([row], dtype=np.float32), True).copy()
    together = layer.forward(np.array([row, [-1e4, 5.0, 3.0]], dtype=np.float32), True)
    np.testing.assert_array_equal(alone[0], together[0])
    mu, var = mean(row), biased_var(row)
    np.testing.assert_allclose(alone[0], [(v - mu) / math.sqrt(var + 1e-5) for v in row], rtol=1e-3)
    assert alone.dtype == F32 and np.isfinite(together).all()


@pytest.mark.parametrize("n", [1, 2, 5, 32])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no-affine"])
def test_layer_norm_gradients_match_finite_differences(affine: bool, n: int) -> None:
    rng = np.random.default_rng(n)
    layer = built(LayerNorm(affine=affine, epsilon=0.01), width=4)
    for p in layer.parameters():
        p[...] = rng.normal(size=p.shape)
    assert_gradients_match_finite_differences(layer, 3.0 + 2.0 * rng.normal(size=(n, 4)), seed=n)
    check_layer(LayerNorm(affine=affine), batch=n)


def test_the_evaluation_forward_is_the_functional_formula_bit_for_bit() -> None:
    # What the numpy-only pyfunc loader calls for a saved model.
    rng = np.random.default_rng(5)
    x = rng.normal(size=(7, 4)).astype(np.float32)
    bn = built(BatchNorm(), width=4, dtype=F32)
    for _ in range(3):
        bn.forward(rng.normal(size=(7, 4)).astype(np.float32) * 2 + 1, True)
    expected = normalization.batch_norm(x, bn.running_mean.copy(), bn.running_var.copy(), bn.gamma, bn.beta, 1e-3)
    np.testing.assert_array_equal(bn.forward(x, False), expected)
    ln = built(LayerNorm(), width=4, dtype=F32)
    np.testing.assert_array_equal(ln.forward(x, False), normalization.layer_norm(x, ln.gamma, ln.beta, 1e-5))


# ---------------------------------------------------------------------------------------------------------
# In a model: config errors, the flat parameter buffer, no allocation per batch
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ({"type": "batch_norm", "momentum": 1.0}, "model.layers.1.momentum: Input should be less than 1"),
        ({"type": "batch_norm", "epsilon": 0}, "model.layers.1.epsilon: Input should be greater than 0"),
        ({"type": "batch_norm", "statistics": "moving"}, "model.layers.1.statistics: Input should be 'batch' or"),
        ({"type": "layer_norm", "epsilon": -1}, "model.layers.1.epsilon: Input should be greater than 0"),
    ],
)
def test_bad_params_name_the_key(layer: dict[str, Any], message: str) -> None:
    config = digits_config(model={"layers": [{"units": 8}, layer, {"units": 10}]})
    with pytest.raises(ConfigError, match=message):
        prepare_run(Experiment.from_dict(config), track=False)


def test_gamma_and_beta_live_in_the_models_flat_buffer() -> None:
    config = digits_config(
        model={"layers": [{"units": 8}, {"type": "batch_norm"}, {"type": "layer_norm"}, {"units": 10}]}
    )
    model = prepare_run(Experiment.from_dict(config), track=False).trainer.model
    assert model.flat_parameters is not None and model.flat_gradients is not None  # every layer bound
    for layer in model.layers[1:3]:
        assert isinstance(layer, BatchNorm | LayerNorm)
        assert np.shares_memory(layer.gamma, model.flat_parameters)
        assert np.shares_memory(layer.dbeta, model.flat_gradients)
    running = list(model.layers[1].buffers().values())  # layer_norm has none
    assert len(model.buffers()) == 2 and all(a is b for a, b in zip(model.buffers(), running, strict=True))


@pytest.mark.parametrize(
    "layer", [BatchNorm(), BatchNorm(statistics="running"), BatchNorm(affine=False), LayerNorm()], ids=repr
)
def test_a_training_step_allocates_no_array(layer: Any) -> None:
    # numpy's broadcasting ufuncs allocate an iteration buffer of their own, of at most 8192 elements: at
    # 256 x 64 any (n, d) temporary is twice as large, so the peak shows it.
    n, d = 256, 64
    built(layer, width=d, dtype=F32)
    rng = np.random.default_rng(6)
    x, g = rng.normal(size=(n, d)).astype(np.float32), rng.normal(size=(n, d)).astype(np.float32)
    grad = np.empty_like(g)

    def step() -> None:
        layer.forward(x, True)
        np.copyto(grad, g)
        layer.backward(grad)

    step()  # the first call of a batch size allocates its arrays
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for _ in range(5):
            step()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak - start < x.nbytes  # an (n, d) temporary is x.nbytes; numpy's buffer 33 KB, views a few hundred


# ---------------------------------------------------------------------------------------------------------
# The kit catches a normalisation layer that breaks the rules
# ---------------------------------------------------------------------------------------------------------


class ReplacesItsStatistics(BatchNorm):
    """batch_norm that assigns new running arrays instead of updating them in place."""

    def _update_running(self) -> None:
        self.running_mean = self._keep * self.running_mean + self._take * self._stats[0]
        self.running_var = self._keep * self.running_var + self._take * self._stats[1]


class CachesItsScale(BatchNorm):
    """batch_norm that computes 1/√(σ² + ε) for inference once and keeps it."""

    cached: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if training:
            return super().forward(x, training)
        if self.cached is None:
            self.cached = 1 / np.sqrt(self.running_var + self.params.epsilon)
        y: np.ndarray = ((x - self.running_mean) * self.cached * self.gamma + self.beta).astype(x.dtype)
        return y


class WideStatistics(BatchNorm):
    """batch_norm whose running statistics are float64 whatever the layer's dtype."""

    def build(self, input_dim: int, dtype: np.dtype[Any], rng: np.random.Generator) -> int:
        super().build(input_dim, dtype, rng)
        self._running = self._running.astype(np.float64)
        self.running_mean, self.running_var = self._running
        return input_dim


class IgnoresBind(BatchNorm):
    """batch_norm that says it adopted the arrays it was given, and keeps its own."""

    def bind(self, params: list[np.ndarray], grads: list[np.ndarray]) -> bool:
        return True


class WritesIntoItsInput(BatchNorm):
    """batch_norm that centres its input in place, destroying what the layer below keeps for its backward."""

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        y = super().forward(x, training)
        x -= x.mean(axis=0)
        return y


class ForgetsTheVarianceTerm(BatchNorm):
    """batch_norm whose backward drops x̂·mean(g·x̂), as if σ_B did not depend on x."""

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        arrays = self._train
        assert arrays is not None
        self._affine_gradients(grad, arrays)
        grad -= arrays.means @ grad
        grad *= self.gamma * self._inv_std
        return grad


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (ReplacesItsStatistics, "buffers\\(\\) must give the same arrays"),
        (CachesItsScale, "cache nothing derived from them"),
        (WideStatistics, "buffer 'running_mean': expected dtype float32"),
        (WritesIntoItsInput, "forward must leave its input x unchanged"),
        (IgnoresBind, "after bind\\(\\), parameters\\(\\) and gradients\\(\\) must be the arrays bound"),
        (ForgetsTheVarianceTerm, "dL/d\\(input\\) does not match central finite differences"),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else "",
)
def test_the_kit_catches_a_broken_batch_norm(cls: type[BatchNorm], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_layer(cls())


# -- the activation layer: dense -> batch_norm -> activation ------------------------------------------------


def test_the_activation_layer_applies_its_activation_with_params() -> None:
    for spec in ("gelu", {"name": "leaky_relu", "negative_slope": 0.2}, "softmax"):
        check_layer(ActivationLayer(activation=spec))
    layer = ActivationLayer(activation={"name": "leaky_relu", "negative_slope": 0.2})
    attach_installed_components(layer)
    layer.build(3, np.dtype(np.float64), np.random.default_rng(0))
    x = np.array([[-2.0, 0.5, 3.0]])
    np.testing.assert_array_equal(layer.forward(x, False), [[-0.4, 0.5, 3.0]])  # 0.2 * -2 = -0.4 exactly


def test_dense_batch_norm_activation_trains_and_predicts_the_same_through_the_numpy_loader(tmp_path: Path) -> None:
    config = digits_config(training={"epochs": 3, "batch_size": 32})
    config["model"]["layers"] = [
        {"units": 32},
        {"type": "batch_norm"},
        {"type": "activation", "activation": {"name": "elu", "alpha": 0.5}},
        {"units": 10},
    ]
    result = framework.fit(Experiment.from_dict(config), track=False)
    assert result.final_metrics["val_accuracy"] > 0.8
    result.model.save(tmp_path / "model")
    X = np.random.default_rng(1).normal(8, 4, size=(20, 64))
    numpy_only = backprop_pyfunc.load(tmp_path / "model", use_backprop=False)
    np.testing.assert_array_equal(numpy_only.predict(X), result.model.predict(X))
