"""`backprop run CONFIG`: train one experiment; `backprop run --resume CHECKPOINT_OR_RUN_ID`: continue one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from framework.cli.common import user_errors
from framework.cli.plugin_options import AddPlugin, DisablePlugin, StrictPlugins, extra_plugins

SHOW_PREDICTIONS_UP_TO = 16  # tiny datasets (xor) get their predictions printed


def run(
    config: Annotated[
        Path | None,
        typer.Argument(help="Experiment file (.toml, .yaml, .yml or .json); optional with --resume."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Override a config key, e.g. --set optimizer.lr=0.1 (repeatable)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not log this run to MLflow.")] = False,
    disable_plugin: DisablePlugin = None,
    plugin: AddPlugin = None,
    strict_plugins: StrictPlugins = False,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            help="Continue from a checkpoint directory, a run's checkpoint directory, or a run id (its latest "
            "checkpoint under training.checkpoint_dir). The config comes from the checkpoint unless CONFIG is given.",
        ),
    ] = None,
) -> None:
    """Train the experiment in CONFIG; print the final metrics and the MLflow run id."""
    with user_errors():
        import os

        # MLflow announces its database migrations at INFO on stderr; only its warnings matter here
        # (read when mlflow is imported; a user's own MLFLOW_LOGGING_LEVEL wins).
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        if not no_track:  # before the config is even read: a run of a second has no time to spare
            from framework import warmup

            warmup.start(disable_plugin or [])

        from framework.build import prepare_run
        from framework.config import Experiment

        checkpoint = None
        if resume is not None:
            from framework.checkpoint import experiment_of, find_checkpoint

            root = Experiment.from_file(config, set_ or []).training.checkpoint_dir if config else "checkpoints"
            checkpoint = find_checkpoint(resume, root)
            experiment = Experiment.from_file(config, set_ or []) if config else experiment_of(checkpoint, set_)
            typer.echo(f"resuming from {checkpoint}", err=True)
        elif config is None:
            from framework.errors import UserError

            raise UserError("missing CONFIG: give an experiment file, or --resume CHECKPOINT_OR_RUN_ID")
        else:
            experiment = Experiment.from_file(config, set_ or [])
        prepared = prepare_run(
            experiment,
            track=False if no_track else None,
            progress=not quiet,
            plugins=extra_plugins(plugin),
            strict_plugins=strict_plugins,
            disabled_plugins=disable_plugin or [],
            resume=checkpoint,
        )
        try:
            result = prepared.trainer.fit()
        except KeyboardInterrupt:
            written = prepared.trainer.last_checkpoint
            if written is not None and checkpoint != written:
                typer.echo(f"checkpoint: {written}  (continue with: backprop run --resume {written})", err=True)
            raise
        _report(result, prepared.trainer)


def _report(result: Any, trainer: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"stopped: {result.stop_reason}")
    if result.restored_epoch is not None:
        console.print(f"restored the weights of epoch {result.restored_epoch + 1}")
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
        link = getattr(trainer, "run_link", None)
        if link:
            from framework.cli import store

            # A local store's link is where `backprop ui` serves it; a tracking server's (on this machine too) is
            # the server's own UI.
            where = "" if store.is_http(store.tracking_uri()) else " (with `backprop ui`)"
            console.print(f"view it: {link}{where}", soft_wrap=True, highlight=False)
    else:
        console.print("run id: (not tracked)")
