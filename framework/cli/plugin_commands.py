"""Sub-commands added by plugins, loaded only when the command line asks for one.

The root command is a `LazyPluginGroup`: it knows the core commands up front, and only when it is asked
for a name it does not know does it load the plugins and call their `register_commands(app)` hooks. So
`backprop --help` and every core command import no plugin (llm imports them all at start-up, and one heavy
plugin made `llm --help` take 10 s: research/pluggy.md §2). Plugin commands are listed by
`backprop plugins list`, not by `--help`.

Each plugin's hook gets a fresh `typer.Typer` of its own, so every command is known with the plugin that
added it; a name the core already has, or that two plugins add, is reported and skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import typer
import typer.main
from typer.core import TyperGroup

HOOK = "register_commands"


@dataclass
class PluginCommands:
    """The commands that plugins add, by name, with the plugin that added each one."""

    commands: dict[str, Any] = field(default_factory=dict)
    """Command name -> the (click) command object."""
    owners: dict[str, str] = field(default_factory=dict)
    """Command name -> plugin name."""
    problems: list[str] = field(default_factory=list)

    def by_plugin(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for name, plugin in sorted(self.owners.items()):
            found.setdefault(plugin, []).append(name)
        return found


def collect_commands(host: Any, core: Iterable[str]) -> PluginCommands:
    """Call every plugin's `register_commands` hook, each with its own Typer app, and gather the commands.

    Args:
        host: a `framework.pluginmanager.PluginHost`.
        core: the names of the core commands, which plugins cannot replace.
    """
    core = set(core)
    found = PluginCommands()
    for impl in reversed(getattr(host.pm.hook, HOOK).get_hookimpls()):
        plugin = impl.plugin_name
        app = typer.Typer()
        try:
            impl.function(**({"app": app} if "app" in impl.argnames else {}))
            group = typer.main.get_group(app)
        except Exception as exc:
            found.problems.append(f"plugin {plugin!r} failed in hook {HOOK}: {type(exc).__name__}: {exc}")
            continue
        for name, command in sorted(group.commands.items()):
            if name in core:
                found.problems.append(f"plugin {plugin!r} adds a command {name!r}, which is a core command; skipped")
            elif name in found.owners:
                found.problems.append(
                    f"plugins {found.owners[name]!r} and {plugin!r} both add a command {name!r}; "
                    f"the one of {found.owners[name]!r} is used. help: disable one with --disable-plugin"
                )
            else:
                found.commands[name], found.owners[name] = command, plugin
    return found


def load_plugin_commands(core: Iterable[str]) -> PluginCommands:
    """Load the plugins (honouring `BACKPROP_DISABLE_PLUGINS`) and collect the commands they add."""
    import logging

    from framework.pluginmanager import create_plugin_manager, disabled_from_env

    host = create_plugin_manager(disabled=disabled_from_env())
    found = collect_commands(host, core)
    for problem in found.problems:
        logging.getLogger(__name__).warning("%s", problem)
    return found


class LazyPluginGroup(TyperGroup):
    """The root command: core commands as usual; an unknown name loads the plugins to look for it."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        return load_plugin_commands(super().list_commands(ctx)).commands.get(cmd_name)
