"""Registries: built from plugins' registration hooks, with clashes and unknown names reported."""

from __future__ import annotations

from typing import ClassVar

import pytest

from framework import Activation, Optimizer, hookimpl
from framework.errors import ComponentClashError, PluginError, UnknownComponentError
from framework.pluginmanager import create_plugin_manager
from framework.registry import Registry


class Relu2(Activation):
    """A second activation that wrongly takes the built-in name."""

    name: ClassVar[str] = "relu"


class ClashingPlugin:
    @hookimpl
    def register_activations(self) -> list[type[Activation]]:
        return [Relu2]


def test_builtins_are_registered_through_entry_points() -> None:
    host = create_plugin_manager(strict=True)
    registry = Registry.from_host(host)
    assert {"sgd", "momentum"} <= set(registry.names("optimizer"))
    assert {"identity", "sigmoid", "tanh", "relu", "leaky_relu"} <= set(registry.names("activation"))
    assert {"mse", "binary_cross_entropy", "cross_entropy"} <= set(registry.names("loss"))
    assert {"xor", "house_prices", "digits", "iris", "wine", "breast_cancer", "diabetes"} <= set(
        registry.names("dataset")
    )
    assert registry.entries("optimizer")["sgd"].plugin == "optimizers"
    assert host.infos["optimizers"].source.startswith("backprop ")


def test_a_name_registered_twice_names_both_plugins() -> None:
    host = create_plugin_manager([ClashingPlugin()], strict=True)
    with pytest.raises(ComponentClashError) as info:
        Registry.from_host(host)
    message = str(info.value)
    assert "activation 'relu' is registered twice" in message
    assert "'activations'" in message and "'ClashingPlugin'" in message


def test_unknown_name_lists_the_available_ones_with_a_suggestion() -> None:
    registry = Registry.from_host(create_plugin_manager(strict=True))
    with pytest.raises(UnknownComponentError) as info:
        registry.get("optimizer", "momentun", where="optimizer.name")
    message = str(info.value)
    assert message.startswith("optimizer.name: unknown optimizer 'momentun'. Available: ")
    assert "momentum, " in message and "sgd" in message
    assert message.endswith("Did you mean 'momentum'?")


def test_registering_something_that_is_not_a_component_is_an_error() -> None:
    registry = Registry()
    with pytest.raises(PluginError, match=r"not a subclass of framework\.Optimizer"):
        registry.add("optimizer", Relu2, plugin="oops")
    with pytest.raises(PluginError, match="must return a list"):
        registry._add_all("optimizer", "register_optimizers", "oops", Optimizer)
