"""`backprop schema`: the JSON Schema of experiment files, for editors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from framework.cli.common import user_errors
from framework.cli.plugin_options import AddPlugin, DisablePlugin, extra_plugins


def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the schema to this file instead of printing it.")
    ] = None,
    disable_plugin: DisablePlugin = None,
    plugin: AddPlugin = None,
) -> None:
    """Print the JSON Schema of experiment files, with every registered component's params."""
    with user_errors():
        import json

        from framework.pluginmanager import create_plugin_manager, disabled_from_env
        from framework.registry import Registry
        from framework.schema import experiment_schema

        host = create_plugin_manager(extra_plugins(plugin), disabled=[*disabled_from_env(), *(disable_plugin or [])])
        text = json.dumps(experiment_schema(Registry.from_host(host)), indent=2) + "\n"
        if output is None:
            typer.echo(text, nl=False)
        else:
            output.write_text(text, encoding="utf-8")
            typer.echo(f"wrote {output}", err=True)
