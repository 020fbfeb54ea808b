"""The `backprop` command line (Typer). Each command lives in its own module.

Commands import the framework inside their bodies, so `backprop --help` stays fast and imports neither
mlflow nor any plugin.
"""

from __future__ import annotations

from typing import Annotated

import typer

from framework.cli import plugins_cmd, run_cmd
from framework.cli.common import state

app = typer.Typer(
    name="backprop",
    help="Train neural networks from experiment files; every run is tracked in MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"backprop {version('backprop')}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of errors.")] = False,
) -> None:
    """Train neural networks from experiment files; every run is tracked in MLflow."""
    state.debug = debug


app.command("run")(run_cmd.run)
app.add_typer(plugins_cmd.plugins_app, name="plugins")


def main() -> None:
    """Console-script entry point."""
    app()
