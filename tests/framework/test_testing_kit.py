"""The conformance kit over every registered component, and proof that each of its checks can fail.

Parametrised over the live registry (every plugin of the `backprop` entry-point group, exactly as a run
loads them), so a component that a plugin adds later is checked by the same contract.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from framework import Activation, Callback, Loss, Metric, Optimizer, OptimizerParams, Params, hookimpl
from framework.components import Array, Task
from framework.pluginmanager import create_plugin_manager
from framework.registry import Registry
from framework.testing import (
    check_activation,
    check_callback,
    check_component,
    check_loss,
    check_metric,
    check_optimizer,
    check_params,
    check_plugin,
)

REGISTRY = Registry.from_host(create_plugin_manager(strict=True))
# Components whose params have no defaults: the values the contract builds them with.
PARAMS: dict[tuple[str, str], dict[str, Any]] = {
    ("layer", "dense"): {"units": 3},
    ("dataset", "arrays"): {"x": [[0, 1, 0], [1, 0, 1], [1, 1, 0]], "y": [1, 0, 1]},
}
CASES = [
    pytest.param(kind, name, id=f"{kind}-{name}")
    for kind in ("activation", "loss", "layer", "initializer", "optimizer", "dataset", "metric", "callback")
    for name in REGISTRY.names(kind)
]


def test_the_contract_covers_every_kind() -> None:
    assert {case.values[0] for case in CASES} == {
        "activation",
        "loss",
        "layer",
        "initializer",
        "optimizer",
        "dataset",
        "metric",
        "callback",
    }


def params_for(kind: str, name: str, folder: Path) -> dict[str, Any]:
    """Params for components without defaults; file datasets get a small file of their format."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), np.arange(20) % 2
    if (kind, name) == ("dataset", "csv"):
        rows = ["a,b,c,label"] + [f"{r[0]},{r[1]},{r[2]},{'yes' if t else 'no'}" for r, t in zip(X, y, strict=True)]
        (folder / "data.csv").write_text("\n".join(rows) + "\n")
        return {"path": str(folder / "data.csv")}
    if (kind, name) == ("dataset", "npz"):
        np.savez(folder / "data.npz", X=X, y=y)
        return {"path": str(folder / "data.npz")}
    if (kind, name) in {("dataset", "parquet"), ("dataset", "feather")}:
        import pyarrow as pa

        table = pa.table({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "label": ["yes" if t else "no" for t in y]})
        path = folder / f"data.{name}"
        if name == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, path)
        else:
            import pyarrow.feather as feather

            feather.write_feather(table, path)
        return {"path": str(path)}
    return PARAMS.get((kind, name), {})


@pytest.mark.parametrize(("kind", "name"), CASES)
def test_every_registered_component_passes_the_kit(kind: str, name: str, store: str, tmp_path: Path) -> None:
    # `store`: the mlflow callback's short run is tracked into a temporary store.
    check_component(REGISTRY.get(kind, name), **params_for(kind, name, tmp_path))


@pytest.mark.parametrize("activation", REGISTRY.names("activation"))
def test_dense_passes_the_kit_with_every_activation(activation: str) -> None:
    from framework.testing import check_layer

    layer = REGISTRY.get("layer", "dense")(units=3, activation=activation)
    layer.set_activation(REGISTRY.get("activation", activation)())  # type: ignore[attr-defined]
    check_layer(layer)  # type: ignore[arg-type]


def test_a_builtin_plugin_module_passes_check_plugin() -> None:
    import plugins.losses

    check_plugin(plugins.losses)


# ---------------------------------------------------------------------------------------------------------
# Each check fails on a component that breaks its rule.
# ---------------------------------------------------------------------------------------------------------


class WrongSlope(Activation):
    """f(z) = z^2, with a wrong derivative."""

    name: ClassVar[str] = "wrong_slope"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return np.multiply(z, z, out=out)

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        grad *= z  # should be 2 z
        return grad


class Widening(Activation):
    """f(z) = z, returned in float64 whatever comes in."""

    name: ClassVar[str] = "widening"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        if out is not None:
            np.copyto(out, z)
            return out
        return z.astype(np.float64)

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        return grad.astype(np.float64)


class HalfGradient(Loss):
    """mse whose gradient forgets the factor 2."""

    name: ClassVar[str] = "half_gradient"
    tasks: ClassVar[tuple[Task, ...]] = ("regression",)

    def value(self, outputs: Array, targets: Array) -> float:
        return float(np.mean((outputs - targets) ** 2))

    def gradient(self, outputs: Array, targets: Array) -> Array:
        return (outputs - targets) / outputs.size


class Forgetful(Optimizer):
    """Momentum whose load_state_dict forgets the velocities."""

    name: ClassVar[str] = "forgetful"

    def __init__(self, params: OptimizerParams | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.v: list[Array] = []

    def step(self, params: list[Array], grads: list[Array]) -> None:
        if not self.v:
            self.v = [np.zeros_like(p) for p in params]
        for p, g, v in zip(params, grads, self.v, strict=True):
            v *= 0.9
            v -= self.lr * g
            p += v

    def state_dict(self) -> dict[str, Any]:
        return {"v": [v.copy() for v in self.v]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.v = []


class Backwards(Metric):
    """Accuracy that declares the wrong direction."""

    name: ClassVar[str] = "backwards"
    direction: ClassVar[Any] = "min"
    tasks: ClassVar[tuple[Task, ...]] = ("multiclass",)

    def __call__(self, y_true: Array, y_pred: Array) -> float:
        return float(np.mean(np.argmax(y_pred, axis=1) == y_true))


class UndescribedParams(Params):
    factor: float = 2.0


class Undescribed(Callback):
    """A callback whose param has no description."""

    name: ClassVar[str] = "undescribed"
    Params: ClassVar[type[Params]] = UndescribedParams


class Counter(Callback):
    """Counts epochs, but cannot load its count back."""

    name: ClassVar[str] = "counter"

    def __init__(self, params: Params | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.count = 0

    @hookimpl
    def after_epoch(self) -> None:
        self.count += 1

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count}


def test_a_wrong_derivative_fails() -> None:
    with pytest.raises(AssertionError, match="activation 'wrong_slope': backward does not match"):
        check_activation(WrongSlope())


def test_a_changed_dtype_fails() -> None:
    with pytest.raises(AssertionError, match="activation 'widening': forward: expected dtype float32"):
        check_activation(Widening())


def test_a_wrong_loss_gradient_fails() -> None:
    with pytest.raises(AssertionError, match=r"loss 'half_gradient' on a regression problem .*gradient does not"):
        check_loss(HalfGradient())


def test_an_optimizer_that_cannot_resume_fails() -> None:
    with pytest.raises(AssertionError, match=r"optimizer 'forgetful': after load_state_dict\(state_dict\(\)\)"):
        check_optimizer(Forgetful)


def test_a_metric_with_the_wrong_direction_fails() -> None:
    with pytest.raises(AssertionError, match="metric 'backwards' on multiclass: perfect predictions score"):
        check_metric(Backwards())


def test_a_param_without_description_fails() -> None:
    with pytest.raises(AssertionError, match="param 'factor' has no description"):
        check_params(Undescribed)


def test_a_callback_whose_state_does_not_round_trip_fails() -> None:
    with pytest.raises(AssertionError, match=r"callback 'counter': state_dict\(\) after load_state_dict"):
        check_callback(Counter)


def test_a_plugin_with_an_unmarked_hook_fails_check_plugin() -> None:
    class Plugin:
        @hookimpl
        def register_losses(self) -> list[type[Loss]]:
            return [HalfGradient]

        def register_metrics(self) -> list[type[Metric]]:
            return [Backwards]

    with pytest.raises(AssertionError, match=r"method Plugin\.register_metrics is named like a hook"):
        check_plugin(Plugin())
