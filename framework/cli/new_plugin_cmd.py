"""`backprop new-plugin NAME --kind KIND`: start a plugin package from a worked example."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from framework.cli.common import user_errors


class Kind(StrEnum):
    optimizer = "optimizer"
    activation = "activation"
    loss = "loss"
    callback = "callback"
    dataset = "dataset"
    initializer = "initializer"


def new_plugin(
    name: Annotated[str, typer.Argument(help="Distribution name of the package, e.g. backprop-huber.")],
    kind: Annotated[Kind, typer.Option("--kind", "-k", help="What the plugin provides.")],
    directory: Annotated[Path, typer.Option("--directory", "-d", help="Where to create the package folder.")] = Path(
        "."
    ),
) -> None:
    """Write a plugin package NAME with a worked example of KIND, a test using the conformance kit, a README."""
    with user_errors():
        from framework.scaffold import names_for, write_plugin

        target = write_plugin(directory, name, kind.value)
        _, module, component, _ = names_for(name)
        typer.echo(f"created {target} (the {kind.value} {component!r} in {module}.py)")
        typer.echo("next:")
        typer.echo(f"  cd {target}")
        typer.echo("  pip install -e .")
        typer.echo("  pytest")
