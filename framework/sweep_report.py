"""What a sweep's parent run shows: its description and the figure of the swept parameters against the metric.

The description is the parent's `mlflow.note.content` (markdown, the run's Overview page): the sampler and
pruner, the counts, what pruning saved, and every trial ranked best first with a link to its child run (on the
tracking server, or where `backprop ui` serves a local store: `framework.mlflow_store.run_link`).

The figure (`diagnostics/parallel_coordinates.png`) draws each trial as a line across one vertical axis per
swept key and a last one for the metric, coloured by the metric, the best in red; below it, the metric against
each key (pruned trials in grey, at the epoch they stopped). The positions on each axis are `parallel_axes`,
tested on their own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framework.mlflow_store import run_link
from framework.sweep import Trial

PNG = "parallel_coordinates.png"
METRIC_LOG_RATIO = 10.0  # the metric axis turns logarithmic when its largest value is 10x its smallest
MAX_NOTE = 7600  # the description must fit in a tag (8000 characters), the command line included
LOG_RATIO = 100.0  # positive values spread over more than this factor get a log axis


def number(value: float) -> str:
    """A value as the description writes it: 6 significant digits."""
    return f"{value:.6g}"


def value_text(value: Any) -> str:
    return number(value) if isinstance(value, float) else str(value)


def _scored(trial: Trial) -> bool:
    return trial.metric is not None and math.isfinite(trial.metric)


def ranked(trials: Sequence[Trial], direction: str) -> list[Trial]:
    """Finished trials best first, then pruned ones (best first), then the rest in trial order."""

    def by_metric(group: list[Trial]) -> list[Trial]:
        sign = 1.0 if direction == "min" else -1.0
        return sorted(group, key=lambda t: (sign * (t.metric if t.metric is not None else 0.0), t.index))

    finished = by_metric([t for t in trials if t.status == "finished" and _scored(t)])
    pruned = by_metric([t for t in trials if t.status == "pruned" and _scored(t)])
    rest = [t for t in trials if t not in finished and t not in pruned]
    return finished + pruned + sorted(rest, key=lambda t: t.index)


@dataclass(frozen=True)
class Savings:
    """What pruning saved: the trials it stopped, the epochs they did not train, and an estimate of the time."""

    pruned: int
    epochs_run: int
    epochs_saved: int
    seconds_saved: float


def savings(trials: Sequence[Trial]) -> Savings:
    """Epochs not trained by pruned trials (their configured epochs minus those they ran), and the time that
    is, at each pruned trial's own seconds per epoch (its epochs' wall time, set-up and logging left out)."""
    pruned = [t for t in trials if t.status == "pruned"]
    epochs_run = sum(t.epochs or 0 for t in trials if t.done)
    epochs_saved, seconds_saved = 0, 0.0
    for trial in pruned:
        planned = int(trial.config.get("training", {}).get("epochs", 0))
        if trial.epochs:
            left = max(0, planned - trial.epochs)
            epochs_saved += left
            if trial.seconds is not None:
                seconds_saved += trial.seconds / trial.epochs * left
    return Savings(len(pruned), epochs_run, epochs_saved, seconds_saved)


def _status(trial: Trial) -> str:
    if trial.status == "pruned":
        return f"pruned at epoch {(trial.pruned_epoch or 0) + 1}"
    if trial.status in {"failed", "killed"} and trial.error:
        return f"{trial.status}: {trial.error.splitlines()[0][:80]}".replace("|", "/")
    return trial.status


def description(
    trials: Sequence[Trial],
    *,
    metric: str,
    direction: str,
    experiment_id: str,
    tracking_uri: str,
    sampler: str,
    pruner: str | None,
    command: str | None,
    status: str,
) -> str:
    """The parent run's description (markdown)."""
    keys = list(dict.fromkeys(k for t in trials for k in t.overrides))
    better = "lower" if direction == "min" else "higher"
    counts = {s: sum(t.status == s for t in trials) for s in ("finished", "pruned", "failed", "killed")}
    lines = [
        f"**Sweep** of {len(trials)} trials over {', '.join(f'`{k}`' for k in keys) or 'nothing'}, ranked by "
        f"`{metric}` ({better} is better); {status.lower()}.",
        "",
        f"Sampler `{sampler}`" + (f", pruning `{pruner}`" if pruner else ", no pruning") + ": "
        + ", ".join(f"{n} {s}" for s, n in counts.items() if n or s == "finished")
        + (f", {len(trials) - sum(counts.values())} not run" if len(trials) > sum(counts.values()) else "")
        + ".",
    ]  # fmt: skip
    saved = savings(trials)
    if saved.pruned:
        lines += [
            "",
            f"Pruning stopped {saved.pruned} trial{'s' if saved.pruned != 1 else ''} early: "
            f"{saved.epochs_saved} epochs not trained (about "
            f"{saved.seconds_saved:.3g} s), {saved.epochs_run} epochs trained in all.",
        ]
    order = ranked(trials, direction)
    best = next((t for t in order if t.status == "finished" and _scored(t)), None)
    if best is not None and best.metric is not None:
        where = (
            f"[trial {best.index}]({run_link(tracking_uri, experiment_id, best.run_id)})"
            if best.run_id
            else f"trial {best.index}"
        )
        values = ", ".join(f"{k} = {value_text(v)}" for k, v in best.overrides.items())
        lines += ["", f"Best: {where}, `{metric}` = {number(best.metric)}" + (f" ({values})." if values else ".")]
    header = ["rank", "trial", *keys, metric, "epochs", "status"]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---:|" * (len(header) - 1) + "---|"]
    tail = ["", f"Run again (runs only what is missing): `{command}`"] if command else []
    budget = MAX_NOTE - len("\n".join([*lines, *tail])) - 80  # room for the "more trials" line
    shown = 0
    for rank, trial in enumerate(order, start=1):
        link = (
            f"[{trial.index}]({run_link(tracking_uri, experiment_id, trial.run_id)})"
            if trial.run_id
            else str(trial.index)
        )
        cells = [
            str(rank) if _scored(trial) and trial.done else "-",
            link,
            *(value_text(trial.overrides.get(k, "")) for k in keys),
            number(trial.metric) if trial.metric is not None and trial.done else "-",
            str(trial.epochs) if trial.epochs is not None else "-",
            _status(trial),
        ]
        row = "| " + " | ".join(cells) + " |"
        budget -= len(row) + 1
        if budget < 0:
            break
        lines.append(row)
        shown += 1
    if shown < len(order):
        lines.append(f"\n{len(order) - shown} more trials: see the child runs.")
    lines += tail
    return "\n".join(lines)


# -- the figure ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Axis:
    """One vertical axis of the parallel-coordinates figure: each trial's position on it (0 bottom, 1 top)."""

    name: str
    positions: list[float]
    ticks: list[tuple[float, str]]
    log: bool = False
    categorical: bool = False


def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def axis_for(name: str, values: Sequence[Any], *, log: bool = False, levels: Sequence[Any] = ()) -> Axis:
    """Positions of `values` on an axis: linear or logarithmic between their extremes for numbers (a
    single value sits in the middle), evenly spaced levels for anything else (in the order of `levels`,
    then of first appearance)."""
    if values and _numeric(values):
        numbers = [float(v) for v in values]
        low, high = min(numbers), max(numbers)
        log = (log or (low > 0 and high / low > LOG_RATIO)) and low > 0
        scale = math.log if log else (lambda x: x)
        span = scale(high) - scale(low)

        def at(x: float) -> float:
            return 0.5 if span == 0 else (scale(x) - scale(low)) / span

        middle = math.sqrt(low * high) if log else (low + high) / 2
        ticks = [(at(x), f"{x:.3g}") for x in dict.fromkeys([low, middle, high])]
        return Axis(name, [at(x) for x in numbers], ticks, log=log)
    order = [v for v in levels if v in values] + [v for v in values if v not in levels]
    unique = list(dict.fromkeys(str(v) for v in order))
    step = 1.0 / (len(unique) - 1) if len(unique) > 1 else 0.0
    place = {label: (i * step if len(unique) > 1 else 0.5) for i, label in enumerate(unique)}
    return Axis(name, [place[str(v)] for v in values], [(p, s) for s, p in place.items()], categorical=True)


def parallel_axes(
    trials: Sequence[Trial], keys: Sequence[str], metric: str, log_keys: Sequence[str] = ()
) -> list[Axis]:
    """An axis per swept key and one for the metric, over the trials that have a finite metric."""
    scored = [t for t in trials if _scored(t)]
    axes = [axis_for(key, [t.overrides.get(key) for t in scored], log=key in log_keys) for key in keys]
    metrics = [float(t.metric) for t in scored if t.metric is not None]
    # A loss that spans a decade is read on a log axis: one diverged trial must not flatten all the good ones.
    spans_a_decade = bool(metrics) and min(metrics) > 0 and max(metrics) / min(metrics) > METRIC_LOG_RATIO
    axes.append(axis_for(metric, [t.metric for t in scored], log=spans_a_decade))
    return axes


def parameters_png(
    trials: Sequence[Trial],
    keys: Sequence[str],
    metric: str,
    direction: str,
    path: Path,
    log_keys: Sequence[str] = (),
) -> Path | None:
    """Draw the figure into `path`; None when no trial has a metric or nothing was swept.

    Pruned trials stopped at an early epoch, so their metric is not comparable with a whole trial's: they
    are drawn grey in the scatter plots only, and the lines, axes and colours span the whole trials.
    """
    scored = [t for t in trials if _scored(t)]
    if not scored or not keys:
        return None
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.figure import Figure

    from framework.diagnostics import TITLE

    whole = [t for t in scored if t.status != "pruned"] or scored
    axes = parallel_axes(whole, keys, metric, log_keys)
    values = [float(t.metric or 0.0) for t in whole]  # scored: every metric is a finite number
    best = ranked(whole, direction)[0]
    # "Better" is always the bright end of the colour map, whichever way the metric goes.
    cmap = colormaps["viridis" if direction == "max" else "viridis_r"]
    low, high = min(values), max(values) if max(values) > min(values) else min(values) + 1
    # The colours follow the metric's axis: on a log axis one diverged trial does not wash out all the others.
    norm = LogNorm(low, high) if axes[-1].log else Normalize(low, high)
    width = max(7.0, 1.9 * len(axes))
    fig = Figure(figsize=(width, 7.2), layout="constrained")
    grid = fig.add_gridspec(2, len(keys), height_ratios=[1.5, 1])
    top = fig.add_subplot(grid[0, :])
    xs = list(range(len(axes)))
    for i, trial in sorted(enumerate(whole), key=lambda it: it[1] is best):
        ys = [axis.positions[i] for axis in axes]
        if trial is best:
            top.plot(xs, ys, color="crimson", linewidth=3, zorder=3)
        else:
            top.plot(xs, ys, color=cmap(norm(values[i])), linewidth=1.5, alpha=0.85, zorder=2)
    for x, axis in enumerate(axes):
        top.axvline(x, color="0.25", linewidth=0.8)
        for y, label in axis.ticks:
            top.annotate(label, (x, y), xytext=(4, 0), textcoords="offset points", fontsize=8, va="center")
    top.set_xticks(xs, [a.name + (" (log)" if a.log else "") for a in axes], fontsize=9)
    top.set_yticks([])
    top.set_xlim(-0.2, len(axes) - 0.6)
    top.set_ylim(-0.05, 1.05)
    pruned = sum(t.status == "pruned" for t in scored)
    top.set_title(
        f"Swept parameters against {metric} ({'higher' if direction == 'max' else 'lower'} is better)\n"
        f"{len(whole)} trials, the best (trial {best.index}) in red"
        + (
            f"; {pruned} pruned trials in grey below, at the epoch they stopped"
            if pruned and whole is not scored
            else ""
        ),
        fontsize=10,
        **TITLE,
    )
    colorbar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=top, pad=0.01)
    colorbar.set_label(metric)
    metrics = [float(t.metric or 0.0) for t in scored]
    for k, key in enumerate(keys):
        ax = fig.add_subplot(grid[1, k])
        raw = [t.overrides.get(key) for t in scored]
        numeric = _numeric(raw)
        shown: list[Any] = [float(v or 0) for v in raw] if numeric else [str(v) for v in raw]
        colors = ["crimson" if t is best else ("0.6" if t.status == "pruned" else "tab:blue") for t in scored]
        ax.scatter(shown, metrics, c=colors, s=22)
        if numeric and axes[k].log:
            ax.set_xscale("log")
        if axes[-1].log:
            ax.set_yscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel(metric if k == 0 else "")
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    fig.savefig(path, dpi=100)
    return path
