"""`backprop summary CONFIG`: the model an experiment builds: layers, output shapes, parameter counts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from framework.cli.common import user_errors


def summary(
    config: Annotated[Path, typer.Argument(help="Experiment file (.toml, .yaml, .yml or .json).")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Override a config key, e.g. --set model.layers.0.units=128 (repeatable)."),
    ] = None,
) -> None:
    """Build the experiment (data, model, loss, optimiser; no training) and print its layers."""
    with user_errors():
        from rich.console import Console
        from rich.table import Table

        from framework.build import prepare_run
        from framework.config import Experiment

        experiment = Experiment.from_file(config, set_ or [])
        run = prepare_run(experiment, track=False)
        trainer = run.trainer
        rows = layer_rows(trainer.model)
        console = Console()
        bundle: Any = getattr(trainer, "dataset", None)
        classes = f", {bundle.n_classes} classes" if bundle is not None and bundle.n_classes else ""
        n_val = len(trainer.val) if trainer.val is not None else 0
        console.print(
            f"{run.experiment.name}: dataset {run.experiment.data.name!r} ({trainer.task}{classes}), "
            f"{len(trainer.train)} training and {n_val} validation samples, {trainer.model.input_dim} features, "
            f"{run.experiment.dtype}"
        )
        table = Table("#", "layer", "activation", "output shape", "parameters")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        console.print(f"total parameters: {trainer.model.n_parameters():,}")
        optimizer = run.experiment.optimizer.model_dump(exclude_none=True)
        console.print(
            f"loss: {run.experiment.loss.name}; optimizer: "
            + ", ".join(f"{k}={v}" for k, v in optimizer.items() if k != "name")
            + f" ({optimizer['name']})"
        )


def layer_rows(model: Any) -> list[tuple[str, str, str, str, str]]:
    """One row per layer: index, type, activation, output shape and parameter count."""
    import numpy as np

    from framework.components import spec_text

    rows = []
    x = np.zeros((1, model.input_dim), dtype=model.dtype)
    for i, layer in enumerate(model.layers):
        x = layer.forward(x, False)
        spec = getattr(layer.params, "activation", None)
        activation = spec_text(spec) if spec else "-"
        count = sum(int(p.size) for p in layer.parameters())
        rows.append((str(i), layer.name, activation, f"(batch, {x.shape[1]})", f"{count:,}"))
    return rows
