"""The plugin-manager factory: discovery, loading and validation of plugins.

A fresh manager is made for every run (and every CLI call) by `create_plugin_manager`; nothing is global.
Plugins come from three places, in this order:

1. the entry-point group ``backprop`` of installed distributions, sorted by entry-point name (the built-ins
   are registered there too, by backprop's own `pyproject.toml`);
2. plugins named by the experiment (`plugins = [...]`): module names, or `.py` files relative to the
   config file;
3. callback objects registered for one run by the trainer.

A plugin that fails to import is reported by name. Entry-point plugins that fail are skipped with a warning
unless `strict` is set; plugins the experiment names explicitly always fail the run.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from framework import hookspecs
from framework.errors import PluginError
from framework.markers import PROJECT

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = PROJECT


@dataclass
class PluginInfo:
    """Where a plugin comes from and whether it loaded."""

    name: str
    source: str
    version: str | None = None
    status: str = "active"
    error: str | None = None
    hooks: list[str] = field(default_factory=list)


@dataclass
class PluginHost:
    """A plugin manager with the record of what was loaded, and from where."""

    pm: pluggy.PluginManager
    infos: dict[str, PluginInfo] = field(default_factory=dict)

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


def _new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def _dist_version(ep: importlib.metadata.EntryPoint) -> tuple[str, str | None]:
    dist = ep.dist
    if dist is None:
        return "entry point", None
    return f"{dist.metadata['Name']} {dist.version}", dist.version


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


def _import_named(spec: str, base_dir: Path | None) -> tuple[str, object, PluginInfo]:
    """Import a plugin named by an experiment or `--plugin`: a module name or a `.py` path."""
    if spec.endswith(".py") or "/" in spec or "\\" in spec:
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
        return name, module, PluginInfo(name=name, source=str(path))
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
    return spec, module, PluginInfo(name=spec, source=f"module {spec}")


def create_plugin_manager(
    plugins: Sequence[str | object] = (),
    *,
    base_dir: Path | None = None,
    entry_points: bool = True,
    strict: bool = False,
) -> PluginHost:
    """Build a fresh plugin manager holding every plugin a run uses.

    Args:
        plugins: extra plugins: module names, `.py` paths (relative to `base_dir`), or plugin objects.
        base_dir: the directory of the config file, for relative `.py` paths.
        entry_points: load the plugins of the `backprop` entry-point group (built-ins included).
        strict: fail on an entry-point plugin that does not load, instead of skipping it with a warning.
    """
    host = PluginHost(_new_manager())
    if entry_points:
        for ep in _entry_points():
            source, version = _dist_version(ep)
            info = PluginInfo(name=ep.name, source=source, version=version)
            if host.pm.has_plugin(ep.name):
                continue  # the same distribution seen twice (editable installs, symlinked site dirs)
            try:
                plugin = ep.load()
                host.register(plugin, ep.name, info)
            except Exception as exc:
                message = f"plugin {ep.name!r} ({source}) failed to load: {type(exc).__name__}: {exc}"
                if strict:
                    raise PluginError(message) from exc
                log.warning("%s; skipped", message)
                info.status, info.error = "error", f"{type(exc).__name__}: {exc}"
                host.infos[ep.name] = info
    for spec in plugins:
        if isinstance(spec, str):
            name, plugin, info = _import_named(spec, base_dir)
        else:
            plugin = spec
            name = getattr(spec, "__name__", None) or type(spec).__name__
            info = PluginInfo(name=name, source="object")
        if host.pm.has_plugin(name):
            if host.pm.get_plugin(name) is plugin:
                continue
            raise PluginError(f"two plugins are named {name!r}; rename one of them")
        host.register(plugin, name, info)
    return host


def _entry_points() -> Iterable[importlib.metadata.EntryPoint]:
    """The `backprop` entry points, sorted by name so the load order never depends on the file system."""
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    unique: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in sorted(found, key=lambda e: (e.name, e.value)):
        unique.setdefault(ep.name, ep)
    return list(unique.values())


def describe(plugin: Any) -> str:
    """A short description of a plugin object, for messages."""
    return getattr(plugin, "__name__", None) or type(plugin).__name__
