"""`backprop plugins`: the plugins that are installed and what each one provides."""

from __future__ import annotations

import typer

from framework.cli.common import user_errors

plugins_app = typer.Typer(help="List the installed plugins and what they provide.", no_args_is_help=False)


@plugins_app.callback(invoke_without_command=True)
def plugins(ctx: typer.Context) -> None:
    """List every plugin with where it comes from and the components it registers."""
    if ctx.invoked_subcommand is None:
        list_plugins()


@plugins_app.command("list")
def list_plugins() -> None:
    """List every plugin with where it comes from and the components it registers."""
    with user_errors():
        from rich.console import Console
        from rich.table import Table

        from framework.components import KINDS
        from framework.pluginmanager import create_plugin_manager
        from framework.registry import Registry

        host = create_plugin_manager()
        registry = Registry.from_host(host)
        provided: dict[str, dict[str, list[str]]] = {}
        for kind in KINDS:
            for name, entry in registry.entries(kind).items():
                provided.setdefault(entry.plugin, {}).setdefault(kind, []).append(name)
        table = Table("plugin", "source", "status", "components")
        for name, info in sorted(host.infos.items()):
            parts = [f"{kind}: {', '.join(names)}" for kind, names in provided.get(name, {}).items()]
            status = info.status if info.error is None else f"{info.status}: {info.error}"
            table.add_row(name, info.source, status, "\n".join(parts) or "-")
        Console().print(table)
