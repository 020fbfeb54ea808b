"""The plugin-manager factory: discovery, disabling, loading and validation of plugins.

A fresh manager is made for every run (and every CLI call) by `create_plugin_manager`; nothing is global.
Plugins come from three places, registered in this order (so the call order of a hook's implementations
never depends on the file system: pluggy calls them last registered first, `tryfirst`/`trylast` aside):

1. the entry-point group ``backprop`` of installed distributions, sorted by entry-point name (the built-ins
   are registered there too, by backprop's own `pyproject.toml`);
2. plugins named by the experiment (`plugins = [...]`) or by `--plugin`: module names, or `.py` files
   relative to the config file;
3. callback objects registered for one run by `framework.build`.

Disabled plugins are blocked before anything is imported, so a plugin whose import is slow or broken costs
nothing once disabled. A few essential built-ins cannot be disabled. A plugin that fails to import is
reported by name and source and skipped, unless `strict` is set; plugins named explicitly always fail.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import logging
import os
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from framework import hookspecs
from framework.errors import PluginError, did_you_mean
from framework.markers import PROJECT

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = PROJECT
DISABLE_ENV = "BACKPROP_DISABLE_PLUGINS"

ESSENTIAL_PLUGINS: dict[str, str] = {
    "layers": "it registers 'dense', the layer every model is built from",
    "activations": "it registers 'identity', the default activation of every dense layer",
    "initializers": "it registers 'zeros' and 'glorot_uniform', the default initialisers of every dense layer",
}
"""Built-ins that cannot be disabled, with the reason: the core's own config defaults refer to them."""


@dataclass
class PluginInfo:
    """Where a plugin comes from, whether it loaded, and what it implements."""

    name: str
    source: str
    version: str | None = None
    status: str = "active"
    """`active`, `disabled` or `error`."""
    error: str | None = None
    hooks: list[str] = field(default_factory=list)
    distribution: str | None = None
    origin: str = "entry point"
    """`entry point`, `module`, `file` (named by an experiment or `--plugin`), `object` or `callback`."""
    load_seconds: float | None = None

    @property
    def essential(self) -> bool:
        return self.name in ESSENTIAL_PLUGINS and self.distribution == PROJECT


@dataclass
class PluginHost:
    """A plugin manager with the record of what was loaded, from where, and what went wrong."""

    pm: pluggy.PluginManager
    infos: dict[str, PluginInfo] = field(default_factory=dict)
    strict: bool = False
    warnings: list[str] = field(default_factory=list)
    """Problems that did not stop loading (unmarked hook-like functions, unknown disabled names)."""

    def plugin_name(self, plugin: object) -> str:
        return self.pm.get_name(plugin) or repr(plugin)

    def register(self, plugin: object, name: str, info: PluginInfo) -> None:
        """Register `plugin` under `name`, turning pluggy's validation errors into messages naming it."""
        try:
            self.pm.register(plugin, name=name)
            # A hook implementation whose name matches no hook spec is an error, not a silent no-op.
            self.pm.check_pending()
        except (pluggy.PluginValidationError, ValueError) as exc:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            raise PluginError(f"plugin {name!r} ({info.source}) is invalid: {exc}") from exc
        info.hooks = sorted(hc.name for hc in self.pm.get_hookcallers(plugin) or [] if not hc.name.startswith("_"))
        self.infos[name] = info
        for where in unmarked_hooks(self.pm, plugin):
            self.warn(
                f"plugin {name!r} ({info.source}): {where} is named like a hook but not marked with @hookimpl, "
                "so it is never called; help: decorate it with @framework.hookimpl, or rename it"
            )

    def fail(self, info: PluginInfo, message: str, exc: BaseException) -> None:
        """A plugin that cannot be used: an error when strict, else reported and skipped."""
        if self.strict:
            raise PluginError(message) from exc
        log.warning("%s; skipped", message)
        info.status, info.error = "error", f"{type(exc).__name__}: {exc}"
        self.infos[info.name] = info
        if self.pm.has_plugin(info.name) and self.pm.get_plugin(info.name) is not None:
            self.pm.unregister(name=info.name)

    def warn(self, message: str) -> None:
        log.warning("%s", message)
        self.warnings.append(message)

    def call_order(self, hook: str) -> list[str]:
        """The plugins implementing `hook`, in the order pluggy calls them."""
        caller = getattr(self.pm.hook, hook)
        return [impl.plugin_name for impl in reversed(caller.get_hookimpls())]


def unmarked_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """Functions or methods of `plugin` named like a hook but without the `@hookimpl` mark."""
    hook_names = {name for name in dir(pm.hook) if not name.startswith("_")}
    found = []
    for attr in sorted(hook_names & set(dir(plugin))):
        value = inspect.getattr_static(plugin, attr, None)
        function = value.__func__ if isinstance(value, staticmethod | classmethod) else value
        if callable(function) and not hasattr(function, f"{PROJECT}_impl"):
            kind = "function" if isinstance(plugin, ModuleType) else f"method {type(plugin).__name__}."
            found.append(f"{kind} {attr!r}" if kind == "function" else f"{kind}{attr}")
    return found


def disabled_from_env(environ: Mapping[str, str] | None = None) -> list[str]:
    """The plugin names in `BACKPROP_DISABLE_PLUGINS` (comma-separated)."""
    value = (os.environ if environ is None else environ).get(DISABLE_ENV, "")
    return [name.strip() for name in value.split(",") if name.strip()]


def check_disabled(names: Iterable[str]) -> list[str]:
    """The names to disable, or an error if one of them is an essential built-in."""
    names = list(dict.fromkeys(names))
    for name in names:
        if name in ESSENTIAL_PLUGINS:
            raise PluginError(f"plugin {name!r} is essential and cannot be disabled: {ESSENTIAL_PLUGINS[name]}")
    return names


def _new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def _entry_point_info(ep: importlib.metadata.EntryPoint) -> PluginInfo:
    dist = ep.dist
    if dist is None:
        return PluginInfo(name=ep.name, source=f"entry point {ep.value}")
    name = dist.metadata["Name"]
    return PluginInfo(name=ep.name, source=f"{name} {dist.version}", version=dist.version, distribution=name)


def _module_name_for_file(path: Path) -> str:
    stem = re.sub(r"\W", "_", path.stem)
    return f"backprop_local_plugins.{stem}"


def load_plugin_file(path: Path) -> ModuleType:
    """Import a plugin from a `.py` file (a config's `plugins = ["my_plugin.py"]`)."""
    name = _module_name_for_file(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin file {str(path)!r} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _is_path(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def named_plugin_name(spec: str) -> str:
    """The plugin name of a module name or `.py` path (the file's stem), known before importing it."""
    return Path(spec).stem if _is_path(spec) else spec


def _import_named(spec: str, base_dir: Path | None) -> tuple[str, object, PluginInfo]:
    """Import a plugin named by an experiment or `--plugin`: a module name or a `.py` path."""
    if _is_path(spec):
        path = Path(spec)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise PluginError(f"plugin file {spec!r} not found (looked for {str(path)!r})")
        name = path.stem
        try:
            module: object = load_plugin_file(path.resolve())
        except Exception as exc:
            raise PluginError(f"plugin {name!r} ({path}) failed to import: {type(exc).__name__}: {exc}") from exc
        return name, module, PluginInfo(name=name, source=str(path), origin="file")
    try:
        module = importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name is not None and spec.startswith(exc.name):
            raise PluginError(
                f"plugin module {spec!r} not found; is it installed? "
                "(a file next to the config is written with its .py suffix)"
            ) from exc
        raise PluginError(f"plugin {spec!r} failed to import: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise PluginError(f"plugin {spec!r} failed to import: {type(exc).__name__}: {exc}") from exc
    return spec, module, PluginInfo(name=spec, source=f"module {spec}", origin="module")


def create_plugin_manager(
    plugins: Sequence[str | object] = (),
    *,
    base_dir: Path | None = None,
    entry_points: bool = True,
    strict: bool = False,
    disabled: Iterable[str] = (),
) -> PluginHost:
    """Build a fresh plugin manager holding every plugin a run uses.

    Args:
        plugins: extra plugins: module names, `.py` paths (relative to `base_dir`), or plugin objects.
        base_dir: the directory of the config file, for relative `.py` paths.
        entry_points: load the plugins of the `backprop` entry-point group (built-ins included).
        strict: fail on a plugin that does not load or register, instead of skipping it with a warning.
        disabled: plugin names to leave out; they are never imported. Essential built-ins refuse.
    """
    host = PluginHost(_new_manager(), strict=strict)
    blocked = check_disabled(disabled)
    for name in blocked:
        host.pm.set_blocked(name)
    if entry_points:
        for ep in _entry_points(host):
            _load_entry_point(host, ep)
    for spec in plugins:
        _load_named(host, spec, base_dir)
    for name in blocked:
        if name not in host.infos:
            hint = did_you_mean(name, host.infos)
            help_ = f"did you mean {hint!r}?" if hint else "see `backprop plugins list`"
            host.warn(f"no plugin named {name!r} to disable; {help_}")
    return host


def _load_entry_point(host: PluginHost, ep: importlib.metadata.EntryPoint) -> None:
    info = _entry_point_info(ep)
    if host.pm.is_blocked(ep.name):
        info.status = "disabled"
        host.infos[ep.name] = info
        return
    started = time.perf_counter()
    try:
        plugin = ep.load()
    except Exception as exc:
        host.fail(info, f"plugin {ep.name!r} ({info.source}) failed to load: {type(exc).__name__}: {exc}", exc)
        return
    info.load_seconds = time.perf_counter() - started
    try:
        host.register(plugin, ep.name, info)
    except PluginError as exc:
        host.fail(info, str(exc), exc)


def _load_named(host: PluginHost, spec: str | object, base_dir: Path | None) -> None:
    if isinstance(spec, str):
        name = named_plugin_name(spec)
        if host.pm.is_blocked(name):
            source, origin = (spec, "file") if _is_path(spec) else (f"module {spec}", "module")
            host.infos[name] = PluginInfo(name=name, source=source, status="disabled", origin=origin)
            return
        started = time.perf_counter()
        name, plugin, info = _import_named(spec, base_dir)
        info.load_seconds = time.perf_counter() - started
    else:
        plugin = spec
        name = describe(spec)
        info = PluginInfo(name=name, source="object", origin="object")
        if host.pm.is_blocked(name):
            info.status = "disabled"
            host.infos[name] = info
            return
    if host.pm.has_plugin(name):
        if host.pm.get_plugin(name) is plugin:
            return
        raise PluginError(f"two plugins are named {name!r}; rename one of them")
    host.register(plugin, name, info)


def _entry_points(host: PluginHost) -> list[importlib.metadata.EntryPoint]:
    """The `backprop` entry points, sorted by name so the load order never depends on the file system.

    The same entry point seen twice (editable installs, symlinked site directories) counts once; two
    different plugins under one name keep the first (by distribution name) and say so.
    """
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    unique: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in sorted(found, key=lambda e: (e.name, _dist_name(e), e.value)):
        first = unique.setdefault(ep.name, ep)
        if first is not ep and (first.value, _dist_name(first)) != (ep.value, _dist_name(ep)):
            host.warn(
                f"two installed plugins are named {ep.name!r}: {first.value} ({_dist_name(first)}) and "
                f"{ep.value} ({_dist_name(ep)}); using the first. help: uninstall one of them"
            )
    return list(unique.values())


def _dist_name(ep: importlib.metadata.EntryPoint) -> str:
    return str(ep.dist.metadata["Name"]) if ep.dist is not None else ""


def describe(plugin: Any) -> str:
    """A short description of a plugin object, for messages."""
    return getattr(plugin, "__name__", None) or type(plugin).__name__
