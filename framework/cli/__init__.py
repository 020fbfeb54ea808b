"""The `backprop` command line (Typer). Each command lives in its own module.

Commands import the framework inside their bodies, so `backprop --help` stays fast and imports neither
mlflow nor any plugin.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from typing import Annotated

import typer

from framework.cli import (
    evaluate_cmd,
    explain_cmd,
    gradcheck_cmd,
    new_plugin_cmd,
    plugins_cmd,
    predict_cmd,
    run_cmd,
    runs_cmd,
    schema_cmd,
    summary_cmd,
    sweep_cmd,
    ui_cmd,
    validate_cmd,
)
from framework.cli.common import state
from framework.cli.plugin_commands import LazyPluginGroup

app = typer.Typer(
    name="backprop",
    help="Train neural networks from experiment files; every run is tracked in MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=LazyPluginGroup,  # a command name the core does not know loads the plugins' commands
    epilog="Commands added by plugins are listed by `backprop plugins list`.",
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
app.command("sweep")(sweep_cmd.sweep)
app.add_typer(plugins_cmd.plugins_app, name="plugins")
app.command("validate")(validate_cmd.validate)
app.command("schema")(schema_cmd.schema)
app.command("new-plugin")(new_plugin_cmd.new_plugin)
app.command("ui")(ui_cmd.ui)
app.add_typer(runs_cmd.runs_app, name="runs")
app.command("predict")(predict_cmd.predict)
app.command("summary")(summary_cmd.summary)
app.command("evaluate")(evaluate_cmd.evaluate)
app.command("explain")(explain_cmd.explain)
app.command("gradcheck")(gradcheck_cmd.gradcheck)


def main() -> None:
    """Console-script entry point: the command, then an exit without the interpreter's teardown.

    Tearing down the modules of numpy, pydantic and the plugins takes ~30 ms after every command, a tenth of
    `backprop run experiments/xor.toml --no-track` (issue 15). So once the command is done, the exit handlers
    run (`atexit`: logging's flush, and any a plugin registered), the standard streams are flushed, and the
    process ends with `os._exit`. When another non-daemon thread still runs, the exit is the normal one, which
    waits for it.
    """
    try:
        app()
    except SystemExit as stop:
        code = stop.code
    else:
        code = 0
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    if code is not None and not isinstance(code, int):  # as sys.exit: a message, then status 1
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code or 0)
