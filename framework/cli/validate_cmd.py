"""`backprop validate CONFIG`: check an experiment, its components and their params, without training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from framework.cli.common import user_errors
from framework.cli.plugin_options import AddPlugin, DisablePlugin, StrictPlugins, extra_plugins


def validate(
    config: Annotated[Path, typer.Argument(help="Experiment file (.toml, .yaml, .yml or .json).")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Override a config key, e.g. --set optimizer.lr=0.1 (repeatable)."),
    ] = None,
    no_data: Annotated[
        bool, typer.Option("--no-data", help="Check the config against the plugins only; do not load the data.")
    ] = False,
    disable_plugin: DisablePlugin = None,
    plugin: AddPlugin = None,
    strict_plugins: StrictPlugins = False,
) -> None:
    """Check CONFIG without training: its keys, every component and its params, and (unless --no-data)
    that data, model, loss and callbacks fit together. Exit 2 with one line per problem."""
    with user_errors():
        from framework.build import load_plugins, prepare_run, resolve
        from framework.config import Experiment

        experiment = Experiment.from_file(config, set_ or [])
        plugins, disabled = extra_plugins(plugin), disable_plugin or []
        if no_data:
            _, registry = load_plugins(experiment, plugins, strict=strict_plugins, disabled=disabled)
            resolved = resolve(experiment, registry)
            typer.echo(f"ok: {config}: experiment {resolved.name!r} (config and components; data not loaded)")
            return
        run = prepare_run(
            experiment, track=False, plugins=plugins, strict_plugins=strict_plugins, disabled_plugins=disabled
        )
        trainer = run.trainer
        widths = "-".join(str(w) for w in [trainer.model.input_dim, *(_widths(trainer.model))])
        val = f", {len(trainer.val)} validation" if trainer.val is not None else ""
        typer.echo(
            f"ok: {config}: experiment {run.experiment.name!r}: dataset {run.experiment.data.name!r} "
            f"({len(trainer.train)} training{val} samples, {trainer.task}), model {widths} "
            f"({trainer.model.n_parameters()} parameters), loss {trainer.loss.name!r}, "
            f"optimizer {trainer.optimizer.name!r}"
        )


def _widths(model: object) -> list[int]:
    import numpy as np

    widths = []
    x = np.zeros((1, model.input_dim), dtype=model.dtype)  # type: ignore[attr-defined]
    for layer in model.layers:  # type: ignore[attr-defined]
        x = layer.forward(x, False)
        widths.append(int(x.shape[1]))
    return widths
