"""`backprop evaluate CHECKPOINT_OR_RUN_ID [--data ...]`: the metrics of a trained model on data."""

from __future__ import annotations

from typing import Annotated

import typer

from framework.cli.common import user_errors


def evaluate(
    spec: Annotated[
        str,
        typer.Argument(
            metavar="CHECKPOINT_OR_RUN_ID",
            help="A checkpoint directory, a run's checkpoint directory, a saved model, or a run id.",
        ),
    ],
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            "-d",
            help="A .csv, .npz or .npy file, or a registered dataset name (default: the run's own training "
            "and validation splits).",
        ),
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="The target column of a .csv file (default: as in training).")
    ] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            "-m",
            help="A metric to report, by name or as a TOML table with params "
            "('{name = \"top_k_accuracy\", k = 3}'); repeatable; default: all that fit the task.",
        ),
    ] = None,
    checkpoint_dir: Annotated[
        str, typer.Option("--checkpoint-dir", help="Where run ids are looked up.")
    ] = "checkpoints",
) -> None:
    """Print the loss and metrics of a trained model on data."""
    with user_errors():
        from rich.console import Console
        from rich.table import Table

        from framework.build import prepare_run
        from framework.errors import UserError
        from framework.evaluation import bundle_from, evaluate_arrays, evaluate_bundle, locate
        from framework.pluginmanager import create_plugin_manager
        from framework.registry import Registry

        registry = Registry.from_host(create_plugin_manager())
        trained = locate(spec, registry, checkpoint_dir)
        results: dict[str, dict[str, float]] = {}
        if data is None:
            if trained.experiment is None:
                raise UserError(f"{spec}: the run's config is unknown; name the data with --data")
            run = prepare_run(trained.experiment, track=False)
            splits = {"train": run.trainer.train, "validation": run.trainer.val}
            for name, split in splits.items():
                if split is not None:
                    results[name] = evaluate_arrays(trained.model, split.X, split.y, run.registry, metric)
        else:
            bundle = bundle_from(data, trained, registry, target)
            results[data] = evaluate_bundle(trained, bundle, registry, metric)
        console = Console()
        console.print(f"model: {trained.where}")
        table = Table("metric", *results)
        for key in next(iter(results.values())):
            table.add_row(key, *(f"{values[key]:.6g}" for values in results.values()))
        console.print(table)
