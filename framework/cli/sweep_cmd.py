"""`backprop sweep CONFIG`: grid, random and Optuna search, with pruning, in parallel, as nested MLflow runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from framework.cli.common import EXIT_INTERRUPTED, user_errors

STATUS_STYLE = {
    "queued": "dim",
    "running": "yellow",
    "finished": "green",
    "pruned": "magenta",
    "failed": "red",
    "killed": "red",
}


def sweep(
    config: Annotated[Path, typer.Argument(help="Experiment file; its [sweep] section is the default definition.")],
    grid: Annotated[
        list[str] | None,
        typer.Option("--grid", "-g", help="KEY=V1,V2,... values to try (repeatable; trials are the product)."),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="KEY=uniform(a,b)|loguniform(a,b)|int(a,b)|choice(a,b,...) (repeatable)."),
    ] = None,
    sampler: Annotated[
        str | None,
        typer.Option(
            "--sampler",
            help="How trials are chosen: grid, random, tpe, cmaes, qmc, or a plugin's "
            "(default: random with --param, else grid).",
        ),
    ] = None,
    trials: Annotated[
        int | None,
        typer.Option(
            "--trials", "-n", min=0, help="Number of trials (random: draws per grid point; grid: at most N points)."
        ),
    ] = None,
    random: Annotated[
        int | None, typer.Option("--random", "-r", min=0, help="Short for --sampler random --trials N.")
    ] = None,
    prune: Annotated[
        str | None,
        typer.Option("--prune", help="Stop hopeless trials early: median, hyperband or successive_halving."),
    ] = None,
    study_storage: Annotated[
        str | None,
        typer.Option("--study-storage", help="The Optuna study's RDB URL (default: optuna.db beside the store)."),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the random draws (repeatable sweeps).")] = None,
    metric: Annotated[
        str | None, typer.Option("--metric", help="Metric that picks the best trial (default val_loss).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", "-w", help="Trials at a time (default: the cores).")
    ] = None,
    executor: Annotated[str, typer.Option("--executor", help="local (a process pool) or dask.")] = "local",
    address: Annotated[str | None, typer.Option("--address", help="Dask scheduler, tcp://HOST:PORT.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="Override a base config key (repeatable).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live table; only the summary.")] = False,
) -> None:
    """Run a sweep over CONFIG: one MLflow parent run, one child run per trial.

    Running the same sweep again skips the trials that already finished and runs the rest under the same
    parent run (and the same Optuna study, for --sampler tpe, cmaes or qmc and for --prune).
    """
    with user_errors():
        # MLflow announces its database migrations at INFO on stderr; only its warnings matter here
        # (read when mlflow is imported; a user's own MLFLOW_LOGGING_LEVEL wins).
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

        from framework.config import Experiment
        from framework.errors import ConfigError
        from framework.sweep import SweepDefinition, parse_grid, parse_params
        from framework.sweep_run import SweepRunner

        experiment = Experiment.from_file(config, set_ or [])
        definition = experiment.sweep.model_dump() if experiment.sweep is not None else {}
        if grid:
            definition["grid"] = parse_grid(grid)
        if param:
            definition["params"] = parse_params(param)
        if random is not None:
            if sampler not in (None, "random") or (trials is not None and trials != random):
                raise ConfigError("--random N is short for --sampler random --trials N: give one or the other")
            sampler, trials = "random", random
        given = {"trials": trials, "sampler": sampler, "prune": prune, "study_storage": study_storage, "seed": seed}
        definition.update({key: value for key, value in {**given, "metric": metric}.items() if value is not None})
        section = SweepDefinition.model_validate(definition)
        view = _LiveView(enabled=not quiet)
        runner = SweepRunner(
            experiment,
            section,
            workers=workers or os.cpu_count() or 1,
            executor=executor,
            address=address,
            on_update=view.update,
        )
        try:
            result = runner.run()
        except KeyboardInterrupt:
            view.stop()
            if runner.parent_id is None:
                raise
            finished = sum(t.status in ("finished", "pruned") for t in runner.trials)
            typer.echo(f"parent run id: {runner.parent_id}")
            typer.echo(
                f"interrupted: the sweep and its running trials were recorded as KILLED ({finished} trials "
                "finished); run the same command again to finish the rest",
                err=True,
            )
            raise typer.Exit(EXIT_INTERRUPTED) from None
        finally:
            view.stop()
        _summary(result)


class _LiveView:
    """A rich table of the trials, redrawn as they change state."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._live: Any = None

    def update(self, trials: list[Any]) -> None:
        if not self.enabled:
            return
        from rich.live import Live

        table = _table(trials)
        if self._live is None:
            self._live = Live(table, refresh_per_second=4, transient=False)
            self._live.start()
        else:
            self._live.update(table)

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def _table(trials: list[Any], metric: str | None = None) -> Any:
    from rich.table import Table

    table = Table("#", "trial", "status", metric or "metric", "run id")
    for t in trials:
        style = STATUS_STYLE.get(t.status, "")
        value = f"{t.metric:.5g}" if t.metric is not None else ("-" if t.status != "failed" else (t.error or "")[:60])
        table.add_row(str(t.index), t.label, f"[{style}]{t.status}[/]", value, (t.run_id or "")[:12])
    return table


def _summary(result: Any) -> None:
    from rich.console import Console

    console = Console()
    console.print(_table(result.trials, result.metric))
    count = {s: sum(t.status == s for t in result.trials) for s in ("finished", "pruned", "failed", "killed")}
    line = (
        f"trials: {count['finished'] + count['pruned']} finished ({result.skipped} from an earlier run of this sweep)"
    )
    if result.pruner is not None:
        saved = result.savings
        line += (
            f", {count['pruned']} pruned by {result.pruner} ({saved.epochs_saved} epochs, "
            f"about {saved.seconds_saved:.3g} s saved)"
        )
    console.print(
        line + f", {count['failed']} failed" + (f", {count['killed']} killed" if count["killed"] else ""),
        soft_wrap=True,
    )
    if result.best is not None:
        console.print(
            f"best ({result.direction} {result.metric}): trial {result.best.index}, {result.best.label}: "
            f"{result.metric}={result.best.metric:.6g}, run id {result.best.run_id}",
            soft_wrap=True,
        )
    if result.study is not None:
        console.print(f"optuna study: {result.study}", soft_wrap=True, highlight=False)
    console.print(f"parent run id: {result.parent_run_id}", soft_wrap=True)
    link = _parent_link(result)
    if link:
        console.print(f"parent run: {link}", soft_wrap=True, highlight=False)
    if count["failed"]:
        raise typer.Exit(1)


def _parent_link(result: Any) -> str | None:
    """The parent run's page: on the tracking server, or where `backprop ui` serves a local store."""
    try:
        from framework.mlflow_store import run_link
    except ImportError:  # the link is a convenience
        return None
    return str(run_link(str(result.tracking_uri), result.experiment_id, result.parent_run_id))
