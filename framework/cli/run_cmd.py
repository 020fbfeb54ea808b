"""`backprop run CONFIG`: train one experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from framework.cli.common import user_errors

SHOW_PREDICTIONS_UP_TO = 16  # tiny datasets (xor) get their predictions printed


def run(
    config: Annotated[Path, typer.Argument(help="Experiment file (.toml, .yaml, .yml or .json).")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Override a config key, e.g. --set optimizer.lr=0.1 (repeatable)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not log this run to MLflow.")] = False,
) -> None:
    """Train the experiment in CONFIG; print the final metrics and the MLflow run id."""
    with user_errors():
        import logging

        # MLflow announces its database migrations at INFO on stderr; only its warnings matter here.
        logging.getLogger("mlflow").setLevel(logging.WARNING)

        from framework.build import prepare_run
        from framework.config import Experiment

        experiment = Experiment.from_file(config, set_ or [])
        prepared = prepare_run(experiment, track=False if no_track else None, progress=not quiet)
        result = prepared.trainer.fit()
        _report(result, prepared.trainer)


def _report(result: Any, trainer: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"stopped: {result.stop_reason}")
    if result.restored_epoch is not None:
        console.print(f"restored the weights of epoch {result.restored_epoch + 1} (the best)")
    table = Table("metric", "final")
    for key, value in result.final_metrics.items():
        table.add_row(key, f"{value:.6g}")
    console.print(table)
    if len(trainer.train) <= SHOW_PREDICTIONS_UP_TO and trainer.val is None:
        bundle = trainer.dataset
        predictions = result.model.predict(bundle.X)
        rows = Table("input", "target", "prediction")
        for x, y, p in zip(bundle.X, bundle.y, predictions, strict=True):
            rows.add_row(" ".join(f"{v:g}" for v in x), f"{y}", " ".join(f"{v:.4f}" for v in p))
        console.print(rows)
    if result.run_id:
        console.print(f"run id: {result.run_id}")
    else:
        console.print("run id: (not tracked)")
