"""The conformance kit: the checks a component must pass, for use in a plugin's own pytest suite.

One call checks a whole plugin, every component it registers::

    import my_plugin
    from framework.testing import check_plugin

    def test_my_plugin_conforms():
        check_plugin(my_plugin)

or one component at a time (`check_component(MyLoss)`, `check_optimizer(lambda: MyOptimizer(lr=0.1))`).
Every check raises an `AssertionError` naming the component and the rule it breaks, so it reads well in
pytest's output. What is checked, per kind:

- every kind: a valid `name`, a docstring, strict `Params` (unknown keys refused, every field described);
- activation, loss, layer: gradients against central finite differences in float64, float32 preserved,
  shapes, inputs left unchanged, determinism; an element-wise activation gives the same values for any
  layout of the batch, one with `elementwise = False` treats each row on its own; for a layer also that
  `bind` adopts the arrays it is given and that its buffers (running statistics) are stable, keep the dtype
  and act only through their values;
- optimizer: in-place updates that descend, determinism, float32 kept, exact resume through
  `state_dict()`/`load_state_dict()`, and the flat-array equivalence that `elementwise = True` promises;
- initializer: float64 finite arrays of the asked shape (kernels and biases), the same values for the same
  seed, other values for another seed (or, when it declares `deterministic = True`, no draw from `rng`);
- dataset: valid arrays (finite, shapes, labels), the same data for the same seed;
- metric: a declared direction, finite floats, perfect predictions scoring best;
- callback: valid hook methods, a short training run with it, and a state round trip.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from framework.components import (
    Activation,
    Callback,
    Component,
    Dataset,
    Initializer,
    Layer,
    Loss,
    Metric,
    Optimizer,
)
from framework.testing.activation_check import check_activation
from framework.testing.initializer_check import check_initializer
from framework.testing.layer_check import check_layer
from framework.testing.loss_check import check_loss
from framework.testing.numeric import away_from_zero, numerical_gradient
from framework.testing.params import check_params, instantiate
from framework.testing.stateful import (
    SMALL_EXPERIMENT,
    check_callback,
    check_dataset,
    check_metric,
    check_optimizer,
)

__all__ = [
    "SMALL_EXPERIMENT",
    "away_from_zero",
    "check_activation",
    "check_callback",
    "check_component",
    "check_dataset",
    "check_initializer",
    "check_layer",
    "check_loss",
    "check_metric",
    "check_optimizer",
    "check_params",
    "check_plugin",
    "components_of",
    "numerical_gradient",
]


def check_component(cls: type[Component], **params: Any) -> None:
    """Run every check for `cls`'s kind on instances built with `params` (the defaults when empty)."""
    check_params(cls)
    if issubclass(cls, Activation):
        check_activation(instantiate(cls, params))
    elif issubclass(cls, Loss):
        check_loss(instantiate(cls, params))
    elif issubclass(cls, Layer):
        check_layer(instantiate(cls, params))
    elif issubclass(cls, Optimizer):
        check_optimizer(lambda: instantiate(cls, params))
    elif issubclass(cls, Initializer):
        check_initializer(instantiate(cls, params))
    elif issubclass(cls, Dataset):
        check_dataset(instantiate(cls, params))
    elif issubclass(cls, Metric):
        check_metric(instantiate(cls, params))
    elif issubclass(cls, Callback):
        check_callback(lambda: instantiate(cls, params))
    else:
        raise AssertionError(f"{cls!r}: not a known kind of component")


def components_of(plugin: object) -> dict[str, list[type[Component]]]:
    """The component classes a plugin (module or object) registers, by kind, loaded as a run loads it.

    The plugin is registered strictly on a fresh manager: a misspelt hook, an unknown hook argument, a
    function named like a hook but not marked, or a registration hook that fails is an AssertionError.
    """
    from framework.errors import UserError
    from framework.pluginmanager import create_plugin_manager
    from framework.registry import Registry

    try:
        host = create_plugin_manager([plugin], entry_points=False, strict=True)
        registry = Registry.from_host(host)
    except UserError as exc:
        raise AssertionError(str(exc)) from None
    if host.warnings:
        raise AssertionError(host.warnings[0])
    found: dict[str, list[type[Component]]] = {}
    for kind, names in registry.by_plugin().get(next(iter(host.infos)), {}).items():
        found[kind] = [registry.get(kind, name) for name in names]
    return found


def check_plugin(plugin: object, params: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Check a whole plugin: it loads cleanly, its names clash with no installed plugin, and every component
    it registers passes the checks of its kind.

    Args:
        plugin: the plugin module (or object) as it is given to backprop.
        params: params to build a component with, by component name (for components without defaults,
            such as a layer's required `units`): ``{"my_layer": {"units": 3}}``.
    """
    from framework.pluginmanager import create_plugin_manager
    from framework.registry import Registry

    components = components_of(plugin)
    if not components:
        raise AssertionError(f"plugin {plugin!r} registers no component")
    installed = Registry.from_host(create_plugin_manager(strict=False))
    for kind, classes in components.items():
        for cls in classes:
            existing = installed.entries(kind).get(cls.name)
            if existing is not None and existing.cls is not cls:
                raise AssertionError(
                    f"{kind} {cls.name!r} is already registered by plugin {existing.plugin!r}; choose another name"
                )
            check_component(cls, **dict((params or {}).get(cls.name, {})))
