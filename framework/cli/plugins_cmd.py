"""`backprop plugins list|check`: the installed plugins, what each provides, and whether they all work."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from framework.cli.common import fail, user_errors
from framework.cli.plugin_options import AddPlugin, DisablePlugin, StrictPlugins, extra_plugins

plugins_app = typer.Typer(help="List the installed plugins and what they provide; check them.", no_args_is_help=False)


@dataclass
class Inventory:
    """Every plugin with its status, hooks, components and commands, and every problem found."""

    host: Any
    registry: Any
    commands: Any
    problems: list[str] = field(default_factory=list)

    def hook_order(self) -> dict[str, list[str]]:
        """For every hook that some plugin implements, the plugins in the order they are called."""
        from framework.hookspecs import EVENT_HOOKS, REGISTRATION_HOOKS

        hooks = [*REGISTRATION_HOOKS.values(), "register_commands", *EVENT_HOOKS]
        order = {hook: self._marked(hook) for hook in hooks}
        return {hook: names for hook, names in order.items() if names}

    def _marked(self, hook: str) -> list[str]:
        from framework.hookspecs import REGISTRATION_HOOKS

        if hook in REGISTRATION_HOOKS.values():  # the registry asks plugins in registration order
            implementing = {impl.plugin_name for impl in getattr(self.host.pm.hook, hook).get_hookimpls()}
            return [name for name, plugin in self.host.pm.list_name_plugin() if name in implementing and plugin]
        names = []
        for impl in reversed(getattr(self.host.pm.hook, hook).get_hookimpls()):
            marks = [m for m in ("tryfirst", "trylast", "wrapper") if getattr(impl, m, False)]
            names.append(impl.plugin_name + (f" ({', '.join(marks)})" if marks else ""))
        return names

    def to_dict(self) -> dict[str, Any]:
        provided = self.registry.by_plugin() if self.registry is not None else {}
        commands = self.commands.by_plugin()
        plugins = []
        for name, info in sorted(self.host.infos.items()):
            plugins.append(
                {
                    "name": name,
                    "source": info.source,
                    "origin": info.origin,
                    "distribution": info.distribution,
                    "version": info.version,
                    "status": info.status,
                    "error": info.error,
                    "essential": info.essential,
                    "hooks": info.hooks,
                    "components": provided.get(name, {}),
                    "commands": commands.get(name, []),
                    "load_seconds": None if info.load_seconds is None else round(info.load_seconds, 6),
                }
            )
        return {"plugins": plugins, "hook_order": self.hook_order(), "problems": self.problems}


def take_inventory(disabled: list[str] | None, extra: list[str] | None, strict: bool = False) -> Inventory:
    """Load every plugin (problems collected, not raised unless `strict`) and build the registries."""
    import typer.main

    from framework.cli import app
    from framework.cli.plugin_commands import collect_commands
    from framework.errors import UserError
    from framework.pluginmanager import create_plugin_manager, disabled_from_env
    from framework.registry import Registry

    host = create_plugin_manager(
        extra_plugins(extra), strict=strict, disabled=[*disabled_from_env(), *(disabled or [])]
    )
    registry = None
    problems: list[str] = []
    try:
        registry = Registry.from_host(host)
    except UserError as exc:
        if strict:
            raise
        problems.append(str(exc))
    commands = collect_commands(host, typer.main.get_group(app).commands)
    failed = [f"plugin {n!r} ({i.source}): {i.error}" for n, i in sorted(host.infos.items()) if i.status == "error"]
    return Inventory(host, registry, commands, [*failed, *host.warnings, *problems, *commands.problems])


@plugins_app.callback(invoke_without_command=True)
def plugins(ctx: typer.Context) -> None:
    """List every plugin with where it comes from and the components it registers."""
    if ctx.invoked_subcommand is None:
        list_plugins()


@plugins_app.command("list")
def list_plugins(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    hooks: Annotated[
        bool, typer.Option("--hooks", help="Also show every hook's implementations in call order.")
    ] = False,
    disable_plugin: DisablePlugin = None,
    plugin: AddPlugin = None,
    strict_plugins: StrictPlugins = False,
) -> None:
    """List every plugin: source, status, hooks, components and commands (and problems, if any)."""
    with user_errors():
        inventory = take_inventory(disable_plugin, plugin, strict=strict_plugins)
        if as_json:
            typer.echo(json.dumps(inventory.to_dict(), indent=2))
        else:
            _print_table(inventory, hooks)
        if strict_plugins and inventory.problems:
            fail(inventory.problems[0])


def _print_table(inventory: Inventory, hooks: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    data = inventory.to_dict()
    console = Console()
    if not console.is_terminal:  # piped or captured: rich would assume 80 columns and wrap every row
        console = Console(width=120)
    table = Table()
    table.add_column("plugin", no_wrap=True)  # names and sources are never cut, even on a narrow terminal
    table.add_column("source", no_wrap=True)
    table.add_column("status")
    table.add_column("provides", overflow="fold")
    for entry in data["plugins"]:
        parts = [f"{kind}: {', '.join(names)}" for kind, names in entry["components"].items()]
        if entry["commands"]:
            parts.append(f"command: {', '.join(entry['commands'])}")
        if entry["hooks"]:
            parts.append(f"hooks: {', '.join(entry['hooks'])}")
        status = entry["status"] + (f": {entry['error']}" if entry["error"] else "")
        if entry["essential"]:
            status += " (essential)"
        table.add_row(entry["name"], entry["source"], status, "\n".join(parts) or "-")
    console.print(table)
    if hooks:
        order = Table("hook", "implementations, in call order")
        for hook, names in data["hook_order"].items():
            order.add_row(hook, ", ".join(names))
        console.print(order)
    for problem in data["problems"]:
        console.print(f"problem: {problem}", markup=False, highlight=False)


@plugins_app.command("check")
def check(
    disable_plugin: DisablePlugin = None,
    plugin: AddPlugin = None,
) -> None:
    """Load every plugin, check its hooks, build every registry; exit 2 on any problem (for a plugin's CI)."""
    with user_errors():
        from framework.testing import check_params

        inventory = take_inventory(disable_plugin, plugin)
        problems = list(inventory.problems)
        registry = inventory.registry
        count = 0
        if registry is not None:
            from framework.components import KINDS

            for kind in KINDS:
                for name, entry in registry.entries(kind).items():
                    count += 1
                    try:
                        check_params(entry.cls)
                    except AssertionError as exc:
                        problems.append(f"plugin {entry.plugin!r}: {kind} {name!r}: {exc}")
        for problem in problems:
            typer.echo(f"error: {problem}", err=True)
        if problems:
            raise typer.Exit(2)
        active = sum(1 for info in inventory.host.infos.values() if info.status == "active")
        typer.echo(f"ok: {active} plugins, {count} components, {len(inventory.hook_order())} hooks implemented")


@plugins_app.command("reference")
def reference(
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Only the components of this plugin (repeatable; default: every plugin)."),
    ] = None,
    builtin: Annotated[bool, typer.Option("--builtin", help="Only backprop's own plugins (docs/components/).")] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write one page per kind and an index into this folder (default: print)."),
    ] = None,
    disable_plugin: DisablePlugin = None,
    plugin: AddPlugin = None,
) -> None:
    """The reference of the components, in Markdown: each one's rule (its docstring) and its params."""
    with user_errors():
        from importlib.metadata import distribution

        from framework.errors import UserError
        from framework.reference import reference_pages

        inventory = take_inventory(disable_plugin, plugin, strict=True)
        plugins = list(only or [])
        if builtin:
            plugins += [ep.name for ep in distribution("backprop").entry_points if ep.group == "backprop"]
        unknown = sorted(set(plugins) - set(inventory.host.infos))
        if unknown:
            loaded = ", ".join(sorted(inventory.host.infos))
            raise UserError(f"--only: no plugin named {', '.join(map(repr, unknown))}; loaded: {loaded}")
        title = "Built-in components" if builtin and not only else "Components"
        pages = reference_pages(inventory.registry, plugins or None, title=title)
        if output is None:
            typer.echo("\n".join(pages.values()), nl=False)
            return
        if output.exists() and not output.is_dir():
            raise UserError(f"--output: {str(output)!r} is a file; give a folder")
        output.mkdir(parents=True, exist_ok=True)
        for name, text in pages.items():
            (output / name).write_text(text, encoding="utf-8")
        typer.echo(f"wrote {len(pages)} pages to {output}")
