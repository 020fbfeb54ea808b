"""Registries: every component class that the loaded plugins provide, indexed by kind and name.

Built once per plugin manager by calling each plugin's registration hooks one at a time, so every
component is known with the plugin that provides it. A name registered twice for one kind is an error
naming both plugins; an unknown name is an error listing the available ones, with a did-you-mean.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from framework.components import KINDS, Component, ComponentSpec, component_fields, spec_name, spec_params
from framework.errors import ComponentClashError, ConfigError, PluginError, UnknownComponentError
from framework.hookspecs import REGISTRATION_HOOKS
from framework.pluginmanager import PluginHost
from framework.validation import format_validation_error

C = TypeVar("C", bound=Component)

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_\-]*$")
AUTO = "auto"
"""An initializer field's value that lets the layer's activation choose (its `default_init`)."""
DEFAULT_INIT = "glorot_uniform"


@dataclass(frozen=True)
class Entry:
    """One registered component: its class and the plugin that provides it."""

    cls: type[Component]
    plugin: str


def _call_registration(impl: Any, plugin: str, hook_name: str) -> object:
    try:
        return impl.function()
    except Exception as exc:
        raise PluginError(f"plugin {plugin!r} failed in hook {hook_name}: {type(exc).__name__}: {exc}") from exc


class Registry:
    """Component classes by kind (`"optimizer"`, `"loss"`, ...) and name."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}

    @classmethod
    def from_host(cls, host: PluginHost, strict: bool | None = None) -> Registry:
        """Call every registration hook of every plugin once and index what they return.

        Plugins are asked in the order they were registered, one whole plugin at a time: a plugin whose
        registration hook raises or returns something that is not a component is skipped as a whole (its
        components and its hooks), unless `strict` (by default, the host's) makes that an error. Two plugins
        registering the same name is always an error, naming both.
        """
        strict = host.strict if strict is None else strict
        registry = cls()
        for name, plugin in host.pm.list_name_plugin():
            if plugin is None:
                continue  # blocked: never imported
            staged = cls()
            try:
                for kind, hook_name in REGISTRATION_HOOKS.items():
                    for impl in getattr(host.pm.hook, hook_name).get_hookimpls():
                        if impl.plugin is plugin:
                            staged._add_all(kind, hook_name, name, _call_registration(impl, name, hook_name))
            except ComponentClashError:
                raise
            except PluginError as exc:
                info = host.infos.get(name)
                if strict or info is None or info.origin != "entry point":
                    raise  # plugins named explicitly (and callbacks) must work
                host.fail(info, str(exc), exc.__cause__ or exc)
                continue
            for kind in KINDS:
                for entry in staged._entries[kind].values():
                    registry.add(kind, entry.cls, plugin=entry.plugin)
        return registry

    def _add_all(self, kind: str, hook_name: str, plugin: str, returned: object) -> None:
        if returned is None:
            return
        if not isinstance(returned, list | tuple):
            raise PluginError(
                f"plugin {plugin!r}: hook {hook_name} must return a list of classes, got {type(returned).__name__}"
            )
        for item in returned:
            self.add(kind, item, plugin=plugin)

    def add(self, kind: str, component: object, plugin: str = "<direct>") -> None:
        """Register `component` (a class) under its `name`; a clash names both plugins."""
        base = KINDS[kind]
        if not (isinstance(component, type) and issubclass(component, base)):
            raise PluginError(
                f"plugin {plugin!r} registered {component!r} as a {kind}, "
                f"but it is not a subclass of framework.{base.__name__}"
            )
        name = component.name
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise PluginError(
                f"plugin {plugin!r}: {kind} class {component.__qualname__} has name {name!r}; "
                "a name is lower case letters, digits, '_' and '-', starting with a letter"
            )
        existing = self._entries[kind].get(name)
        if existing is not None and existing.cls is not component:
            raise ComponentClashError(
                f"{kind} {name!r} is registered twice: by plugin {existing.plugin!r} "
                f"({existing.cls.__module__}.{existing.cls.__qualname__}) and by plugin {plugin!r} "
                f"({component.__module__}.{component.__qualname__}). "
                "help: disable or uninstall one of the two plugins"
            )
        self._entries[kind][name] = Entry(component, plugin)

    def by_plugin(self) -> dict[str, dict[str, list[str]]]:
        """Component names per plugin and kind: ``{"optimizers": {"optimizer": ["momentum", "sgd"]}}``."""
        provided: dict[str, dict[str, list[str]]] = {}
        for kind in KINDS:
            for name, entry in self.entries(kind).items():
                provided.setdefault(entry.plugin, {}).setdefault(kind, []).append(name)
        return provided

    def names(self, kind: str) -> list[str]:
        return sorted(self._entries[kind])

    def entries(self, kind: str) -> Mapping[str, Entry]:
        return dict(sorted(self._entries[kind].items()))

    def get(self, kind: str, name: str, where: str | None = None) -> type[Component]:
        """The class registered as `name`, or an error listing what is available."""
        entry = self._entries[kind].get(name)
        if entry is None:
            raise UnknownComponentError(kind, name, self._entries[kind], where=where)
        return entry.cls

    def params(
        self,
        kind: str,
        name: str,
        values: Mapping[str, Any],
        where: str,
        *,
        name_at: str | None = None,
        also: Sequence[str] = (),
    ) -> Any:
        """Validate `values` with the component's `Params`; errors name the config section.

        `name_at`: the key that holds the name, for an unknown name (default `<where>.name`); `also`: the
        section's other keys, listed beside the params as allowed when a key is unknown.
        """
        cls = self.get(kind, name, where=name_at or (f"{where}.name" if where else None))
        try:
            return cls.Params(**values)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, prefix=where, model=cls.Params, also=also)) from None

    def resolve_spec(self, kind: str, spec: object, where: str) -> ComponentSpec:
        """A component spec (a name, or a table of name and params) checked, with its defaults written out.

        The result is the bare name for a component without params, else a table with every param; errors
        name the key path (`model.layers.0.activation.negative_slope`). For an initializer, "auto" stays as
        it is (the layer's activation decides when the model is built).
        """
        if isinstance(spec, str):
            name, values = spec, {}
        elif isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
            name, values = str(spec["name"]), {k: v for k, v in spec.items() if k != "name"}
        else:
            raise ConfigError(
                f"{where}: expected a {kind} name or a table with its name and params "
                f'(for example {{name = "..."}}), got {spec!r}'
            )
        if kind == "initializer" and name == AUTO:
            if values:
                raise ConfigError(f"{where}: 'auto' takes no params; name an initializer to give params")
            return AUTO
        validated = self.params(kind, name, values, where, name_at=where if isinstance(spec, str) else None)
        dumped = validated.model_dump(mode="json")
        return {"name": name, **dumped} if dumped else name

    def attach_components(self, layer: Any, where: str) -> None:
        """Build the components that `layer`'s params name and hand them to `layer.attach`, before `build`.

        An initializer field set to "auto" gets the attached activation's `default_init` (glorot_uniform
        when the layer has no activation).
        """
        fields = component_fields(type(layer.params))
        for field in sorted(fields, key=lambda f: fields[f] == "initializer"):  # the activation first
            kind, spec = fields[field], getattr(layer.params, field)
            if kind == "initializer" and spec == AUTO:
                activation = layer.components.get("activation")
                spec = getattr(activation, "default_init", DEFAULT_INIT)
            component = self.create(
                kind, spec_name(spec), spec_params(spec), where=f"{where}.{field}", expect=KINDS[kind]
            )
            layer.attach(field, component)

    def create(self, kind: str, name: str, values: Mapping[str, Any], where: str, expect: type[C]) -> C:
        """Build a component from a config section, with its params validated."""
        params = self.params(kind, name, values, where)
        cls = self.get(kind, name)
        instance = cls(params)
        if not isinstance(instance, expect):
            raise PluginError(f"{kind} {name!r} does not build a {expect.__name__}")
        return instance
