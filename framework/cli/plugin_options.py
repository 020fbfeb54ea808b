"""The plugin options that `run`, `validate`, `schema` and `plugins` share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DisablePlugin = Annotated[
    list[str] | None,
    typer.Option(
        "--disable-plugin",
        metavar="NAME",
        help="Leave out the plugin NAME; it is not even imported (repeatable). Also: BACKPROP_DISABLE_PLUGINS=a,b.",
    ),
]
AddPlugin = Annotated[
    list[str] | None,
    typer.Option(
        "--plugin",
        metavar="MODULE_OR_PATH",
        help="Load one more plugin for this command: a module name or a .py file (repeatable).",
    ),
]
StrictPlugins = Annotated[
    bool,
    typer.Option("--strict-plugins", help="Fail when a plugin does not load, instead of skipping it."),
]


def extra_plugins(specs: list[str] | None) -> list[str]:
    """`--plugin` values, with relative `.py` paths made absolute (they are relative to where you are)."""
    resolved = []
    for spec in specs or []:
        looks_like_path = spec.endswith(".py") or "/" in spec or "\\" in spec
        resolved.append(str(Path(spec).resolve()) if looks_like_path else spec)
    return resolved
