"""The built-in initialisers: their distributions against the formulas, and how experiments choose them.

The statistics of a large draw are compared with the variance each rule states, written out here; the
tolerance is four standard errors of the sample statistic (a correct initialiser fails about once in 16,000
runs, and these use fixed seeds). The wiring through an experiment is checked against the draw that the run's
initialisation generator gives (`framework.build._prepare`: the third of four seeds spawned from the seed).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pytest

from framework.build import prepare_run
from framework.config import Experiment
from framework.errors import ConfigError
from framework.pluginmanager import create_plugin_manager
from framework.registry import Registry
from framework.testing import check_component, check_initializer
from plugins.initializers import Constant, HeNormal, Orthogonal, Uniform, Zeros
from tests.helpers import EXPERIMENTS

REGISTRY = Registry.from_host(create_plugin_manager(strict=True))
FAN_IN, FAN_OUT = 400, 300
SHAPE = (FAN_IN, FAN_OUT)
N = FAN_IN * FAN_OUT

# Kurtosis E[(w - μ)⁴] / σ⁴ of each distribution, for the standard error of the sample variance:
# SE(s²) = σ²·√((κ - 1) / n); normal κ = 3, uniform κ = 9/5.
NORMAL_KURTOSIS, UNIFORM_KURTOSIS = 3.0, 9.0 / 5.0

# name, params, distribution, mean, variance (from the rule, with fan_in = 400 and fan_out = 300).
DISTRIBUTIONS = [
    ("glorot_uniform", {}, "uniform", 0.0, 2 / (FAN_IN + FAN_OUT)),  # l = √(6/(in+out)), Var = l²/3
    ("glorot_normal", {}, "normal", 0.0, 2 / (FAN_IN + FAN_OUT)),
    ("he_uniform", {}, "uniform", 0.0, 2 / FAN_IN),  # l = √(6/in)
    ("he_normal", {}, "normal", 0.0, 2 / FAN_IN),
    ("lecun_uniform", {}, "uniform", 0.0, 1 / FAN_IN),  # l = √(3/in)
    ("lecun_normal", {}, "normal", 0.0, 1 / FAN_IN),
    ("normal", {}, "normal", 0.0, 0.01**2),  # N(0, 0.01²) by default
    ("normal", {"mean": 0.5, "stddev": 2.0}, "normal", 0.5, 4.0),
    ("uniform", {}, "uniform", 0.0, 0.1**2 / 12),  # U(-0.05, 0.05): Var = (b - a)²/12
    ("uniform", {"low": 1.0, "high": 3.0}, "uniform", 2.0, 2.0**2 / 12),
]


def run_for(layers: list[dict[str, Any]], seed: int = 3) -> Any:
    """A built run (nothing trained) of xor with these layers, in float64."""
    experiment = Experiment.from_dict(
        {
            "name": "init-test",
            "seed": seed,
            "dtype": "float64",
            "data": {"name": "xor", "validation_split": 0, "standardize": False},
            "model": {"layers": layers},
            "loss": {"name": "mse"},
            "optimizer": {"name": "sgd", "lr": 0.1},
            "training": {"epochs": 1, "batch_size": 4},
            "tracking": {"enabled": False},
        }
    )
    return prepare_run(experiment, track=False)


def init_generator(seed: int) -> np.random.Generator:
    """The generator a run draws its initial weights from (see framework.build._prepare)."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[2])


@pytest.mark.parametrize("name", REGISTRY.names("initializer"))
def test_every_initializer_passes_the_kit(name: str) -> None:
    check_component(REGISTRY.get("initializer", name))


@pytest.mark.parametrize(
    ("name", "params", "distribution", "mean", "variance"),
    DISTRIBUTIONS,
    ids=[f"{d[0]}-{'-'.join(f'{k}={v}' for k, v in d[1].items()) or 'default'}" for d in DISTRIBUTIONS],
)
def test_sample_mean_and_variance_follow_the_rule(
    name: str, params: dict[str, float], distribution: str, mean: float, variance: float
) -> None:
    init = REGISTRY.get("initializer", name)(**params)
    w = init(SHAPE, FAN_IN, FAN_OUT, np.random.default_rng(12345))
    assert w.shape == SHAPE and w.dtype == np.float64
    kurtosis = NORMAL_KURTOSIS if distribution == "normal" else UNIFORM_KURTOSIS
    se_mean = math.sqrt(variance / N)
    se_variance = variance * math.sqrt((kurtosis - 1) / N)
    assert abs(float(w.mean()) - mean) < 4 * se_mean
    assert abs(float(w.var()) - variance) < 4 * se_variance
    sigma = math.sqrt(variance)
    if distribution == "uniform":
        # Bounds: every draw in [μ - l, μ + l], l = √(3·Var); in 120,000 draws both ends come within 0.1 %.
        limit = math.sqrt(3 * variance)
        assert w.min() >= mean - limit and w.max() <= mean + limit
        assert w.min() < mean - 0.999 * limit and w.max() > mean + 0.999 * limit
    else:
        # Untruncated (as documented): P(|w - μ| > 2σ) = 1 - erf(√2) ≈ 4.55 %, where a truncated normal has 0.
        beyond = float(np.mean(np.abs(w - mean) > 2 * sigma))
        p = math.erfc(2 / math.sqrt(2))
        assert abs(beyond - p) < 4 * math.sqrt(p * (1 - p) / N)


@pytest.mark.parametrize("gain", [1.0, 2.0])
@pytest.mark.parametrize("shape", [(40, 30), (30, 40), (25, 25)], ids=["tall", "wide", "square"])
def test_orthogonal_gives_orthonormal_columns_or_rows(shape: tuple[int, int], gain: float) -> None:
    w = Orthogonal(gain=gain)(shape, shape[0], shape[1], np.random.default_rng(0))
    assert w.shape == shape
    rows, columns = shape
    gram = w.T @ w if rows >= columns else w @ w.T  # QᵀQ for a tall W, QQᵀ for a wide one
    np.testing.assert_allclose(gram, gain**2 * np.eye(min(shape)), atol=1e-12)


def test_orthogonal_of_a_bias_is_a_vector_of_norm_gain() -> None:
    b = Orthogonal(gain=3.0)((7,), 4, 7, np.random.default_rng(1))
    assert b.shape == (7,) and math.isclose(float(np.linalg.norm(b)), 3.0, rel_tol=1e-12)


def test_orthogonal_draws_differ_in_direction() -> None:
    # The sign fix must not make Q deterministic: two seeds give two different orthogonal matrices.
    first = Orthogonal()((6, 4), 6, 4, np.random.default_rng(0))
    second = Orthogonal()((6, 4), 6, 4, np.random.default_rng(1))
    assert not np.allclose(first, second)


def test_zeros_and_constant_are_exact_and_draw_nothing() -> None:
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    np.testing.assert_array_equal(Zeros()((3, 2), 3, 2, rng), [[0.0, 0.0]] * 3)
    c = Constant(value=-0.25)((4,), 3, 4, rng)
    assert c.dtype == np.float64 and c.tolist() == [-0.25] * 4
    assert rng.bit_generator.state == state  # so a later layer's draws do not shift


def test_the_kit_refuses_a_deterministic_initializer_that_draws() -> None:
    class Drawing(Zeros):
        """Declares deterministic but draws (wrongly)."""

        name = "drawing"

        def __call__(self, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> Any:
            rng.random()
            return np.zeros(shape)

    with pytest.raises(AssertionError, match="declares deterministic = True but drew from rng"):
        check_initializer(Drawing())


def test_the_kit_refuses_a_random_initializer_that_ignores_the_seed() -> None:
    class Seedless(HeNormal):
        """Draws from its own generator instead of the run's (wrongly)."""

        name = "seedless"

        def __call__(self, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> Any:
            return np.random.default_rng(7).normal(size=shape)

    with pytest.raises(AssertionError, match="another seed gave the same values"):
        check_initializer(Seedless())


def test_the_kit_refuses_a_wrong_shape_or_dtype() -> None:
    class Flat(HeNormal):
        """Returns a flat float32 array (wrongly)."""

        name = "flat"

        def __call__(self, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> Any:
            return rng.normal(size=math.prod(shape)).astype(np.float32)

    with pytest.raises(AssertionError, match="returned shape"):
        check_initializer(Flat())


# ---------------------------------------------------------------------------------------------------------
# Params checked when the experiment is validated
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high", "problem"),
    [
        (0.1, 0.1, "must be above low (0.1)"),
        (0.5, -0.5, "must be above low (0.5)"),
        (-1e308, 1e308, "is too far from low (-1e+308)"),  # high - low overflows: numpy would raise at build
    ],
)
def test_uniform_refuses_bounds_it_cannot_draw_from(low: float, high: float, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        Uniform(low=low, high=high)
    layer = {"units": 4, "init": {"name": "uniform", "low": low, "high": high}}
    with pytest.raises(ConfigError) as caught:
        run_for([layer, {"units": 1}])
    assert str(caught.value).startswith(f"model.layers.0.init.high: {problem}")


def test_an_initializer_param_out_of_bounds_names_its_key() -> None:
    with pytest.raises(ConfigError, match=r"^model\.layers\.1\.bias_init\.stddev: "):
        run_for([{"units": 4}, {"units": 1, "bias_init": {"name": "normal", "stddev": 0}}])


# ---------------------------------------------------------------------------------------------------------
# From an experiment to the layer's weights
# ---------------------------------------------------------------------------------------------------------


def test_initializers_named_in_the_experiment_give_the_layer_their_draws() -> None:
    run = run_for(
        [
            {"units": 4, "activation": "tanh", "init": "he_normal", "bias_init": {"name": "constant", "value": 0.1}},
            {"units": 3, "activation": "tanh", "init": {"name": "orthogonal", "gain": 2}},
            {"units": 1},
        ]
    )
    first, second, _ = run.trainer.model.layers
    rng = init_generator(3)
    # Layer 0: he_normal, N(0, 2/fan_in) with 3 inputs, then a constant bias that draws nothing.
    np.testing.assert_array_equal(first.W, rng.normal(0.0, math.sqrt(2.0 / 3), size=(3, 4)))
    np.testing.assert_array_equal(first.b, np.full(4, 0.1))
    # Layer 1: orthogonal with gain 2 from where the generator now is; a tall 4 x 3 W has WᵀW = 4·I.
    np.testing.assert_array_equal(second.W, Orthogonal(gain=2.0)((4, 3), 4, 3, rng))
    np.testing.assert_allclose(second.W.T @ second.W, 4 * np.eye(3), atol=1e-12)
    np.testing.assert_array_equal(second.b, np.zeros(3))
    resolved = run.experiment.model.layers
    assert resolved[0].component_params()["init"] == "he_normal"
    assert resolved[1].component_params()["init"] == {"name": "orthogonal", "gain": 2.0}
    assert resolved[0].component_params()["bias_init"] == {"name": "constant", "value": 0.1}


@pytest.mark.parametrize("activation", REGISTRY.names("activation"))
def test_auto_takes_the_activations_declared_default(activation: str) -> None:
    declared = REGISTRY.get("activation", activation).default_init
    assert declared in REGISTRY.names("initializer")
    run = run_for([{"units": 5, "activation": activation}, {"units": 1}])
    layer = run.trainer.model.layers[0]
    assert layer.components["init"].name == declared
    expected = REGISTRY.get("initializer", declared)()((3, 5), 3, 5, init_generator(3))
    np.testing.assert_array_equal(layer.W, expected)


# The defaults the rule of `init = "auto"` promises (components.Activation.default_init), for those registered.
PROMISED_DEFAULTS = {
    "relu": "he_normal",
    "leaky_relu": "he_normal",
    "selu": "lecun_normal",
    "tanh": "glorot_uniform",
    "sigmoid": "glorot_uniform",
    "identity": "glorot_uniform",
}


@pytest.mark.parametrize("activation", [name for name in PROMISED_DEFAULTS if name in REGISTRY.names("activation")])
def test_auto_picks_the_promised_family_default(activation: str) -> None:
    assert REGISTRY.get("activation", activation).default_init == PROMISED_DEFAULTS[activation]


def test_a_layer_without_activation_gets_glorot_uniform() -> None:
    run = run_for([{"units": 2}, {"units": 1}])
    limit = math.sqrt(6.0 / (3 + 2))
    np.testing.assert_array_equal(run.trainer.model.layers[0].W, init_generator(3).uniform(-limit, limit, (3, 2)))


@pytest.mark.parametrize(("legacy", "current"), [("glorot", "glorot_uniform"), ("he", "he_normal")])
def test_the_first_releases_init_names_still_work(legacy: str, current: str) -> None:
    run = run_for([{"units": 4, "activation": "tanh", "init": legacy}, {"units": 1}])
    assert run.experiment.model.layers[0].component_params()["init"] == current
    expected = REGISTRY.get("initializer", current)()((3, 4), 3, 4, init_generator(3))
    np.testing.assert_array_equal(run.trainer.model.layers[0].W, expected)


def test_digits_default_weights_are_the_first_releases() -> None:
    # The first release drew, for relu, W ~ rng.normal(0, √(2/fan_in)) and otherwise W ~ U(-l, l) with
    # l = √(6/(fan_in + fan_out)), layer by layer from the init generator, biases zeros without a draw.
    experiment = Experiment.from_file(EXPERIMENTS / "digits.toml")
    model = prepare_run(experiment, track=False).trainer.model
    rng = init_generator(experiment.seed)
    hidden = rng.normal(0.0, math.sqrt(2.0 / 64), size=(64, 64)).astype(np.float32)
    limit = math.sqrt(6.0 / (64 + 10))
    output = rng.uniform(-limit, limit, size=(64, 10)).astype(np.float32)
    np.testing.assert_array_equal(model.layers[0].W, hidden)
    np.testing.assert_array_equal(model.layers[1].W, output)
    for layer in model.layers:
        assert layer.b.dtype == np.float32 and not layer.b.any()
