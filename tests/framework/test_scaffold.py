"""`backprop new-plugin`: the package of every kind installs with `pip install -e` and passes its own tests.

The worked examples are rules that no built-in provides (tanhshrink, the Cauchy loss, a truncated normal, ...),
so that a new plugin never starts as a copy of a built-in; their numbers are checked here against the formulas
written out with `math`, beside the conformance kit that every kind passes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from framework.pluginmanager import create_plugin_manager
from framework.registry import Registry
from framework.scaffold import KINDS, names_for, write_plugin
from framework.scaffold.examples import SUMMARIES
from framework.testing import check_plugin
from tests.plugin_env import make_venv, pip_install_editable, run_in

REGISTRY = Registry.from_host(create_plugin_manager(strict=True))
# The rule of each kind's example, as a built-in would be named.
EXAMPLE_RULES = {
    "activation": ["tanhshrink"],
    "loss": ["cauchy", "lorentzian"],
    "initializer": ["truncated_normal"],
    "dataset": ["spirals"],
}


@contextlib.contextmanager
def loaded_example(folder: Path, kind: str) -> Iterator[ModuleType]:
    """Write the example package of `kind` into `folder` and import its module (removed afterwards)."""
    target = write_plugin(folder, f"backprop-sample-{kind}", kind)
    module_name = f"backprop_sample_{kind}"
    spec = importlib.util.spec_from_file_location(module_name, target / f"{module_name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[module_name]


@contextlib.contextmanager
def example_class(folder: Path, kind: str) -> Iterator[type]:
    """The component class of the example of `kind`, imported from a freshly written package."""
    with loaded_example(folder, kind) as module:
        yield getattr(module, names_for(f"backprop-sample-{kind}")[3])


def test_names_are_derived_from_the_distribution_name() -> None:
    assert names_for("backprop-huber") == ("backprop-huber", "backprop_huber", "huber", "Huber")
    assert names_for("My.Plugin-x") == ("My.Plugin-x", "my_plugin_x", "my_plugin_x", "MyPluginX")


def test_every_component_kind_but_layers_has_an_example() -> None:
    assert set(KINDS) == {"optimizer", "activation", "loss", "callback", "dataset", "initializer"}
    assert set(SUMMARIES) == set(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_the_worked_example_passes_the_kit(kind: str, tmp_path: Path) -> None:
    with loaded_example(tmp_path, kind) as module:
        check_plugin(module)


@pytest.mark.parametrize("kind", sorted(EXAMPLE_RULES))
def test_the_worked_example_is_not_a_builtin(kind: str) -> None:
    registered = REGISTRY.names(kind)
    assert not [rule for rule in EXAMPLE_RULES[kind] if rule in registered]


def test_the_tanhshrink_example_follows_its_formula(tmp_path: Path) -> None:
    with example_class(tmp_path, "activation") as cls:
        act = cls()
        points = [-1e4, -3.0, -0.5, 0.0, 0.25, 2.0, 1e4]
        z = np.array(points)
        np.testing.assert_allclose(act.forward(z), [p - math.tanh(p) for p in points], rtol=1e-15, atol=1e-300)
        grad = act.backward(z, act.forward(z), np.ones_like(z))
        np.testing.assert_allclose(grad, [math.tanh(p) ** 2 for p in points], rtol=1e-15)
        z32 = z.astype(np.float32)
        a32 = act.forward(z32)
        assert a32.dtype == np.float32 and np.all(np.isfinite(a32))


def test_the_cauchy_example_follows_its_formula(tmp_path: Path) -> None:
    with example_class(tmp_path, "loss") as cls:
        c = 2.0
        loss = cls(scale=c)
        outputs = np.array([[0.5], [3.0], [-1.0], [1e4]])
        targets = np.array([[0.0], [1.0], [1.0], [0.0]])
        residuals = [0.5, 2.0, -2.0, 1e4]
        expected = math.fsum(c * c / 2 * math.log(1 + (r / c) ** 2) for r in residuals) / 4
        assert loss.value(outputs, targets) == pytest.approx(expected, rel=1e-14)
        gradient = [r / (1 + (r / c) ** 2) / 4 for r in residuals]
        np.testing.assert_allclose(loss.gradient(outputs, targets)[:, 0], gradient, rtol=1e-14)
        # Small residuals: (c²/2)·log(1 + (r/c)²) ≈ r²/2, the mse's half.
        tiny = np.array([[1e-9]])
        assert loss.value(tiny, np.zeros((1, 1))) == pytest.approx(0.5e-18, rel=1e-9)


def test_the_truncated_normal_example_stays_within_two_standard_deviations(tmp_path: Path) -> None:
    with example_class(tmp_path, "initializer") as cls:
        mean, stddev = 0.3, 0.5
        w = cls(mean=mean, stddev=stddev)((400, 300), 400, 300, np.random.default_rng(0))
        assert w.shape == (400, 300) and w.dtype == np.float64
        assert np.all(np.abs(w - mean) <= 2 * stddev)
        # A normal truncated to ±a·σ (a = 2) has variance σ²·(1 - 2a·φ(a) / (2Φ(a) - 1)), φ the standard
        # normal density, 2Φ(a) - 1 = erf(a/√2): σ·0.8796 here, as Keras's 0.87962566103423978 says.
        a = 2.0
        phi = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
        variance = stddev**2 * (1 - 2 * a * phi / math.erf(a / math.sqrt(2)))
        n = w.size
        assert abs(float(w.mean()) - mean) < 4 * math.sqrt(variance / n)
        assert abs(float(w.var()) - variance) < 4 * variance * math.sqrt(2 / n)  # the normal's SE: larger


@pytest.mark.slow
def test_every_kind_installs_and_passes_its_own_tests(tmp_path: Path) -> None:
    packages = [write_plugin(tmp_path, f"backprop-new-{kind}", kind) for kind in KINDS]
    python = make_venv(tmp_path / "venv")
    pip_install_editable(python, *packages)
    for package in packages:
        done = run_in(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=package)
        assert done.returncode == 0, f"{package.name}:\n{done.stdout}\n{done.stderr}"
        assert "3 passed" in done.stdout, done.stdout
