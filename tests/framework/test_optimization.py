"""The options the core applies for every optimiser (weight decay, clipping), against hand-computed steps.

Parameters p = [1, -2] and q = [[3]], gradients g_p = [1, 2] and g_q = [[1]] unless said otherwise; sgd with
lr = 0.1 so that every step is p - 0.1·g' and the numbers show what the core did to the gradient g'.
"""

from __future__ import annotations

import numpy as np
import pytest

from framework import Experiment, fit
from framework.build import load_plugins, resolve
from framework.errors import ConfigError
from framework.optimization import make_step
from plugins.adaptive_optimizers import AdamW
from plugins.optimizers import SGD
from tests.helpers import xor_config


def start() -> list[np.ndarray]:
    return [np.array([1.0, -2.0]), np.array([[3.0]])]


def grads(p: list[float] | None = None, q: float = 1.0) -> list[np.ndarray]:
    return [np.array(p or [1.0, 2.0]), np.array([[q]])]


def check(params: list[np.ndarray], p: list[float], q: float) -> None:
    np.testing.assert_allclose(params[0], p, rtol=1e-12)
    np.testing.assert_allclose(params[1], [[q]], rtol=1e-12)


def test_with_nothing_set_the_step_is_the_optimizers_own() -> None:
    sgd = SGD(lr=0.1)
    assert make_step(sgd, start()) == sgd.step  # no wrapper: nothing added per batch


def test_l2_weight_decay_adds_lambda_p_to_the_gradient() -> None:
    # g' = g + 0.1·p = [1 + 0.1, 2 - 0.2] = [1.1, 1.8], q: 1 + 0.3 = 1.3
    # p = [1 - 0.11, -2 - 0.18] = [0.89, -2.18], q = 3 - 0.13 = 2.87
    params = start()
    make_step(SGD(lr=0.1), params, weight_decay=0.1)(params, grads())
    check(params, [0.89, -2.18], 2.87)


def test_decoupled_weight_decay_shrinks_the_parameters_with_the_current_lr() -> None:
    # adamw (β₁ = β₂ = 0.5, ε = 1), lr = 0.1, λ = 0.1: first p ← p·(1 - 0.1·0.1) = 0.99·p = [0.99, -1.98], q = 2.97;
    # then adam's first step, lr·m̂/(√v̂ + ε) = 0.1·g/(|g| + 1) = [0.05, 0.2/3], q: 0.05.
    params = start()
    optimizer = AdamW(lr=0.1, beta_1=0.5, beta_2=0.5, epsilon=1.0)
    step = make_step(optimizer, params, weight_decay=0.1)
    g = grads()
    step(params, g)
    check(params, [0.94, -1.98 - 0.2 / 3], 2.92)
    np.testing.assert_array_equal(g[0], [1.0, 2.0])  # decoupled: the gradient is not touched
    # A schedule changes the rate: the next shrink uses it. lr = 0.05: factor 1 - 0.005 = 0.995;
    # adam's second step with the same gradient: m̂ = g, v̂ = g², so 0.05·g/(|g| + 1) = [0.025, 0.1/3].
    optimizer.lr = 0.05
    step(params, grads())
    check(params, [0.94 * 0.995 - 0.025, (-1.98 - 0.2 / 3) * 0.995 - 0.1 / 3], 2.92 * 0.995 - 0.025)


def test_clip_value_clips_every_element() -> None:
    # c = 0.5: g_p = [1, 2] -> [0.5, 0.5], g_q = 1 -> 0.5; p = [0.95, -2.05], q = 2.95
    params = start()
    make_step(SGD(lr=0.1), params, clip_value=0.5)(params, grads())
    check(params, [0.95, -2.05], 2.95)


def test_clip_norm_scales_by_the_global_norm_of_all_parameters() -> None:
    # g_p = [3, 0], g_q = 4: ‖g‖ = √(9 + 16) = 5 over both arrays; c = 1 scales by 1/5: [0.6, 0], 0.8
    # p = [1 - 0.06, -2] = [0.94, -2], q = 3 - 0.08 = 2.92
    params = start()
    make_step(SGD(lr=0.1), params, clip_norm=1.0)(params, grads([3.0, 0.0], 4.0))
    check(params, [0.94, -2.0], 2.92)
    # Below the threshold nothing changes: ‖g‖ = 5 <= 10: p = [1 - 0.3, -2], q = 3 - 0.4
    params = start()
    make_step(SGD(lr=0.1), params, clip_norm=10.0)(params, grads([3.0, 0.0], 4.0))
    check(params, [0.7, -2.0], 2.6)


def test_clipping_comes_before_weight_decay() -> None:
    # clip_value 0.5: g = [0.5, 0.5], 0.5; + 0.1·p = [0.6, 0.3], 0.8 -> p = [0.94, -2.03], q = 2.92
    params = start()
    make_step(SGD(lr=0.1), params, clip_value=0.5, weight_decay=0.1)(params, grads())
    check(params, [0.94, -2.03], 2.92)


def test_the_options_are_core_keys_of_the_optimizer_section() -> None:
    _, registry = load_plugins(Experiment.from_dict(xor_config()))
    config = xor_config(optimizer={"name": "adamw", "lr": 0.01})
    resolved = resolve(Experiment.from_dict(config), registry)
    assert resolved.optimizer.weight_decay == 0.01  # adamw's own default, written out
    assert resolved.optimizer.component_params() == {"lr": 0.01, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8}
    resolved = resolve(Experiment.from_dict(xor_config()), registry)
    assert resolved.optimizer.weight_decay == 0.0
    with pytest.raises(ConfigError, match="clip_norm"):
        Experiment.from_dict(xor_config(optimizer={"name": "sgd", "lr": 0.1, "clip_norm": 0}))


def test_the_trainer_applies_them() -> None:
    # A huge weight decay on xor pulls the weights towards zero: much smaller than without it.
    plain = fit(Experiment.from_dict(xor_config(training={"epochs": 20, "batch_size": 4, "shuffle": False})))
    decayed = fit(
        Experiment.from_dict(
            xor_config(
                optimizer={"name": "sgd", "lr": 1.0, "weight_decay": 0.5},
                training={"epochs": 20, "batch_size": 4, "shuffle": False},
            )
        )
    )
    norm = lambda weights: sum(float(np.sum(w**2)) for w in weights)  # noqa: E731
    assert norm(decayed.model.get_weights()) < 0.5 * norm(plain.model.get_weights())
