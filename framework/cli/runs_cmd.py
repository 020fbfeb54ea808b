"""`backprop runs list|show|compare|repair|sync`: the tracked runs, from the terminal (rich tables, sparklines).

`repair` and `sync` live in `framework.cli.runs_repair`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from framework.cli import runs_repair
from framework.cli.common import user_errors

runs_app = typer.Typer(help="List, show and compare the runs in the MLflow store.", no_args_is_help=True)
runs_app.command("repair")(runs_repair.repair)
runs_app.command("sync")(runs_repair.sync)

SPARK = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 30
LOSS_CURVES = ("train_loss", "val_loss")


def sparkline(values: list[float], low: float | None = None, high: float | None = None) -> str:
    """`values` as a row of block characters (at most SPARK_WIDTH, evenly sampled); non-finite ones as spaces."""
    if not values:
        return ""
    if len(values) > SPARK_WIDTH:
        values = [values[round(i * (len(values) - 1) / (SPARK_WIDTH - 1))] for i in range(SPARK_WIDTH)]
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return " " * len(values)
    low = min(finite) if low is None else low
    high = max(finite) if high is None else high
    span = high - low
    chars = []
    for v in values:
        if not math.isfinite(v):
            chars.append(" ")
        else:
            level = 0 if span <= 0 else round((v - low) / span * (len(SPARK) - 1))
            chars.append(SPARK[min(max(level, 0), len(SPARK) - 1)])
    return "".join(chars)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _when(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else "-"


def _duration(run: Any) -> str:
    start, end = run.info.start_time, run.info.end_time
    if not start or not end:
        return "-"
    seconds = (end - start) / 1000
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _history(client: Any, run_id: str, key: str) -> list[float]:
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))]


def _directions() -> dict[str, str]:
    """Each registered metric's declared direction ("min" or "max"), from the installed plugins."""
    from framework.pluginmanager import create_plugin_manager
    from framework.registry import Registry

    registry = Registry.from_host(create_plugin_manager())
    return {name: getattr(registry.get("metric", name), "direction", "min") for name in registry.names("metric")}


def _best(key: str, values: list[float], directions: dict[str, str]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    base = key.split("_", 1)[-1]
    if not finite or key == "lr":
        return None
    direction = "min" if base == "loss" else directions.get(base)
    if direction is None:
        return None
    return min(finite) if direction == "min" else max(finite)


@runs_app.command("list")
def list_runs(
    experiment: Annotated[str | None, typer.Option("--experiment", "-e", help="Only this MLflow experiment.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many runs, newest first.")] = 20,
) -> None:
    """List the newest runs: id, experiment, name, status (STALE: RUNNING, its process died), start, duration
    and losses."""
    with user_errors():
        from rich.console import Console
        from rich.table import Table

        from framework.cli import store
        from framework.errors import UserError
        from framework.ownership import stale_reason

        client = store.client(store.tracking_uri())
        experiments = {e.experiment_id: e.name for e in client.search_experiments()}
        if experiment is not None:
            ids = [i for i, name in experiments.items() if name == experiment]
            if not ids:
                known = ", ".join(sorted(experiments.values())) or "none"
                raise UserError(f"--experiment: no MLflow experiment {experiment!r}. Available: {known}.")
        else:
            ids = list(experiments)
        runs = client.search_runs(ids, order_by=["attributes.start_time DESC"], max_results=limit) if ids else []
        table = Table("run id", "experiment", "name", "status", "started", "duration", "train_loss", "val_loss")
        for run in runs:
            metrics = run.data.metrics
            table.add_row(
                run.info.run_id,
                experiments.get(run.info.experiment_id, run.info.experiment_id),
                run.info.run_name or "",
                "STALE" if run.info.status == "RUNNING" and stale_reason(run.data.tags) else run.info.status,
                _when(run.info.start_time),
                _duration(run),
                _fmt(metrics.get("train_loss")),
                _fmt(metrics.get("val_loss")),
            )
        console = Console()
        if not runs:
            console.print("no runs" + (f" in experiment {experiment!r}" if experiment else ""))
        else:
            console.print(table)
        unsent = runs_repair.unsent_runs()
        if unsent:
            console.print(
                f"unsent data of {len(unsent)} run(s) in ./{runs_repair.UNSENT_DIR}/: send it with `backprop runs sync`"
            )
        if any(r.info.status == "RUNNING" and stale_reason(r.data.tags) for r in runs):
            console.print("STALE runs: their process died; end them with `backprop runs repair`")


@runs_app.command("show")
def show(run_id: Annotated[str, typer.Argument(help="The MLflow run id (as `backprop run` printed it).")]) -> None:
    """Show one run: its status and tags, params, final and best metrics with loss curves, and artifacts."""
    with user_errors():
        from rich.console import Console
        from rich.table import Table

        from framework.cli import store

        client = store.client(store.tracking_uri())
        run = store.get_run(client, run_id)
        directions = _directions()
        console = Console()
        info = Table("", "", show_header=False, box=None)
        tags = run.data.tags
        experiment = client.get_experiment(run.info.experiment_id)
        rows = [
            ("run", f"{run.info.run_id} ({run.info.run_name})"),
            ("experiment", f"{experiment.name} (id {experiment.experiment_id})"),
            ("status", run.info.status),
            ("started", _when(run.info.start_time)),
            ("duration", _duration(run)),
            ("stop reason", tags.get("backprop.stop_reason", "-")),
            ("best epoch", _epoch(tags.get("backprop.best_epoch"))),
            ("error", tags.get("backprop.error", "")),
            (
                "git commit",
                tags.get("backprop.git_commit", "-") + (" (dirty)" if tags.get("backprop.git_dirty") == "true" else ""),
            ),
            ("command", tags.get("backprop.command", "-")),
            ("artifacts", run.info.artifact_uri),
        ]
        for key, value in rows:
            if value:
                info.add_row(key, value)
        console.print(info)
        params = Table("param", "value")
        for key, value in sorted(run.data.params.items()):
            params.add_row(key, value)
        console.print(params)
        # The last epoch's value: a run that restored its best weights returned the best epoch's model (its
        # description and `backprop run` show that one), so the column says which it is.
        metrics = Table("metric", "last epoch", "best", "epochs", "curve")
        for key in sorted(run.data.metrics):
            values = _history(client, run.info.run_id, key)
            metrics.add_row(
                key,
                _fmt(values[-1] if values else None),
                _fmt(_best(key, values, directions)),
                str(len(values)),
                sparkline(values),
            )
        console.print(metrics)
        names = [a.path + ("/" if a.is_dir else "") for a in client.list_artifacts(run.info.run_id)]
        outputs = getattr(run, "outputs", None)
        if outputs is not None and getattr(outputs, "model_outputs", None):
            names.append("model (MLflow logged model; load it with mlflow.pyfunc.load_model('runs:/<id>/model'))")
        console.print("artifacts: " + (", ".join(names) or "none"))
        pictures = [Path(a.path).name for a in client.list_artifacts(run.info.run_id, "diagnostics")]
        if pictures:
            console.print("diagnostics/ (see docs/tracking.md): " + ", ".join(pictures))


def _epoch(step: str | None) -> str:
    """The best-epoch tag (an MLflow step, from 0) counted from 1, as the stop reason and the description count."""
    return f"{int(step) + 1} (step {step})" if step is not None and step.isdigit() else (step or "-")


@runs_app.command("compare")
def compare(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more MLflow run ids.")],
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write a PNG overlaying the runs' --metric against the epoch.")
    ] = None,
    metric: Annotated[
        str | None, typer.Option("--metric", help="The metric --plot draws, as logged (default: val_loss).")
    ] = None,
) -> None:
    """Compare runs: the params that differ, final and best metrics, and their loss curves."""
    with user_errors():
        from rich.console import Console
        from rich.table import Table

        from framework.cli import store
        from framework.errors import UserError

        if len(run_ids) < 2:
            raise UserError("compare needs at least two run ids")
        client = store.client(store.tracking_uri())
        runs = [store.get_run(client, run_id) for run_id in run_ids]
        drawn = metric or "val_loss"  # not `key`: the tables below loop over `key`
        if metric is not None and plot is None:
            raise UserError("--metric chooses what --plot draws: add --plot out.png")
        if plot is not None:
            if plot.suffix.lower() != ".png":
                raise UserError(f"--plot {plot}: the picture is a PNG; give a path ending in .png")
            if metric is None and not all("val_loss" in r.data.metrics for r in runs):
                drawn = "train_loss"
            lacking = [r.info.run_id for r in runs if drawn not in r.data.metrics]
            if lacking:
                logged = sorted(set.intersection(*(set(r.data.metrics) for r in runs)))
                raise UserError(
                    f"--metric {drawn}: not logged by run {', '.join(lacking)}; every run has: "
                    + (", ".join(logged) or "no metric in common")
                )
        directions = _directions()
        heads = [f"{r.info.run_id[:8]}\n{r.info.run_name or ''}" for r in runs]
        console = Console()

        keys = sorted({k for r in runs for k in r.data.params})
        params = Table("param", *heads, title="params that differ")
        for key in keys:
            values = [r.data.params.get(key, "-") for r in runs]
            if len(set(values)) > 1:
                params.add_row(key, *values)
        if params.row_count:
            console.print(params)
        else:
            console.print("the runs have the same params")

        histories = {(r.info.run_id, key): _history(client, r.info.run_id, key) for r in runs for key in r.data.metrics}
        metric_keys = sorted({k for r in runs for k in r.data.metrics})
        metrics = Table("metric", *heads, title="last epoch (best)")
        for key in metric_keys:
            cells = []
            for r in runs:
                values = histories.get((r.info.run_id, key), [])
                final, best = (values[-1] if values else None), _best(key, values, directions)
                cells.append(_fmt(final) + (f" ({_fmt(best)})" if best is not None and best != final else ""))
            metrics.add_row(key, *cells)
        console.print(metrics)

        curves = Table(
            "run",
            *[k for k in LOSS_CURVES if any((r.info.run_id, k) in histories for r in runs)],
            title="loss per epoch",
        )
        shown = [k for k in LOSS_CURVES if any((r.info.run_id, k) in histories for r in runs)]
        ranges = {}
        for key in shown:  # one scale per curve across the runs, so the lines compare
            finite = [v for r in runs for v in histories.get((r.info.run_id, key), []) if math.isfinite(v)]
            ranges[key] = (min(finite), max(finite)) if finite else (0.0, 0.0)
        for r, head in zip(runs, heads, strict=True):
            curves.add_row(
                head.replace("\n", " "), *[sparkline(histories.get((r.info.run_id, k), []), *ranges[k]) for k in shown]
            )
        if shown:
            console.print(curves)
            console.print("  ".join(f"{k}: {_fmt(lo)} (▁) .. {_fmt(hi)} (█)" for k, (lo, hi) in ranges.items()))
        if plot is not None:
            series = {
                head.replace("\n", " "): _history(client, r.info.run_id, drawn)
                for r, head in zip(runs, heads, strict=True)
            }
            overlay_png(series, drawn, plot)
            console.print(f"{drawn} of {len(runs)} runs: {plot}")


def overlay_png(series: dict[str, list[float]], key: str, path: Path) -> None:
    """One line per run: `key` against the epoch, on a log axis when it spans more than a decade."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from framework.errors import UserError

    figure = Figure(figsize=(7.5, 4.8), dpi=100, layout="constrained")
    axes = figure.subplots()
    for name, values in series.items():
        marker = "o" if len(values) <= 20 else None  # a few epochs: show where the points are
        axes.plot(range(1, len(values) + 1), values, label=name, linewidth=1.5, marker=marker, markersize=4)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    finite = [v for values in series.values() for v in values if math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 10:
        axes.set_yscale("log")
    axes.set(xlabel="epoch", ylabel=key, title=f"{key} of {len(series)} runs")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path)
    except OSError as exc:
        raise UserError(f"--plot {path}: cannot write it ({exc.strerror or type(exc).__name__})") from None
