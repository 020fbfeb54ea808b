"""`backprop explain CONFIG`: one training step of the experiment, every array of it, named as in the lesson."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from framework.cli.common import user_errors
from framework.cli.plugin_options import AddPlugin, DisablePlugin, extra_plugins


class Format(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


def parse_rows(value: str | None, option: str = "--samples") -> list[int] | None:
    """`0,1,3` as [0, 1, 3]; anything else is a user error naming the option."""
    from framework.errors import UserError

    if value is None:
        return None
    try:
        rows = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"{option} {value!r}: give row numbers separated by commas, such as 0,1") from None
    if not rows:
        raise UserError(f"{option} {value!r}: give at least one row number, such as 0,1")
    return rows


def explain(
    config: Annotated[Path, typer.Argument(help="Experiment file (.toml, .yaml, .yml or .json).")],
    batch: Annotated[
        int,
        typer.Option(
            "--batch",
            help="Which batch of the training split, counting from 0: batch_size rows each, cut from the "
            "unshuffled split (the rows data.validation_split leaves, in the data's order), whatever "
            "training.shuffle and --step say.",
        ),
    ] = 0,
    samples: Annotated[
        str | None, typer.Option("--samples", help="Rows of that batch to use, counting from 0, e.g. 0,1.")
    ] = None,
    step: Annotated[int, typer.Option("--step", help="First train this many steps (as `backprop run` does).")] = 0,
    full: Annotated[bool, typer.Option("--full", help="Print large arrays in full, not summarised.")] = False,
    format_: Annotated[Format, typer.Option("--format", help="text, markdown (for notes) or json.")] = Format.text,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Override a config key, e.g. --set optimizer.lr=0.1 (repeatable)."),
    ] = None,
    disable_plugin: DisablePlugin = None,
    plugin: AddPlugin = None,
) -> None:
    """Take one training step of CONFIG and print it layer by layer: input, z and a of each layer, output,
    loss, dL/d(output), each layer's delta and gradients going back, the optimiser's update, the loss after."""
    with user_errors():
        import json

        from framework.build import prepare_run
        from framework.config import Experiment
        from framework.explain import explain as explain_step
        from framework.explain import to_json, to_text

        rows = parse_rows(samples)
        experiment = Experiment.from_file(config, set_ or [])
        run = prepare_run(experiment, track=False, plugins=extra_plugins(plugin), disabled_plugins=disable_plugin or [])
        result = explain_step(run.trainer, batch, rows, step)
        if format_ is Format.json:
            typer.echo(json.dumps(to_json(result, full), indent=1))
        else:
            typer.echo(to_text(result, full, markdown=format_ is Format.markdown), nl=False)
