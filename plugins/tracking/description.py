"""The run's description: what MLflow shows first on a run's Overview page (`mlflow.note.content`, markdown).

It says, without opening an artifact: the model layer by layer, the loss and optimiser with their params, the
data and its splits, the final and best value of every metric with their epochs, why the run stopped, how long
it took, and the command that runs it again (`backprop run FILE --set ...`, the keys where the logged config
differs from the file's own). `tests/tracking/test_run_page.py` parses it back and checks every number
against what the run logged, and runs the command again.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from framework.components import spec_text

if TYPE_CHECKING:
    from framework import Trainer

NOTE = "mlflow.note.content"
"""The tag MLflow's UI shows (and edits) as a run's or an experiment's description."""
EXPERIMENT_KIND = "mlflow.experimentKind"
CUSTOM_MODEL = "custom_model_development"


def number(value: float) -> str:
    """A metric as the description writes it: 6 significant digits."""
    return f"{value:.6g}"


def _params(values: dict[str, Any]) -> str:
    shown = {k: v for k, v in values.items() if k != "name" and v is not None}
    return ", ".join(f"{k} = {json.dumps(v) if isinstance(v, str) else v}" for k, v in shown.items())


def model_lines(trainer: Trainer) -> list[str]:
    rows = ["| # | layer | units | activation | parameters |", "|---|---|---:|---|---:|"]
    width = trainer.model.input_dim
    for i, layer in enumerate(trainer.model.layers):
        params = layer.params.model_dump(mode="json")
        units = params.get("units", width)
        width = units if isinstance(units, int) else width
        activation = spec_text(params["activation"]) if "activation" in params else "-"
        if layer.name == "dense":  # its regularisers, when set
            extra = {k: params[k] for k in ("l1", "l2", "max_norm") if params.get(k)}
        else:
            extra = {k: v for k, v in params.items() if k != "activation"}
        name = layer.name + (f" ({_params(extra)})" if extra else "")
        count = sum(int(p.size) for p in layer.parameters())
        rows.append(f"| {i} | {name} | {width} | {activation} | {count:,} |")
    return rows


def metric_lines(trainer: Trainer, final_epoch: int | None) -> list[str]:
    history = trainer.history
    if not history.epochs:
        return ["No epoch completed."]
    row = history.epochs.index(final_epoch) if final_epoch in history.epochs else len(history.epochs) - 1
    lines = ["| metric | final | epoch | best | best epoch |", "|---|---:|---:|---:|---:|"]
    for key, values in history.metrics.items():
        if key == "lr":
            continue
        maximise = not key.endswith("_loss") and _direction(trainer, key) == "max"
        finite = [(v, e) for v, e in zip(values, history.epochs, strict=True) if math.isfinite(v)]
        best = (max if maximise else min)(finite, key=lambda pair: pair[0]) if finite else (math.nan, None)
        lines.append(
            f"| {key} | {number(values[row])} | {history.epochs[row] + 1} | {number(best[0])} | "
            f"{'-' if best[1] is None else best[1] + 1} |"
        )
    return lines


def _direction(trainer: Trainer, key: str) -> str:
    name = key.split("_", 1)[1] if "_" in key else key
    metric = trainer.metrics.get(name)
    return metric.direction if metric is not None else "min"


def toml_value(value: Any) -> str:
    """`value` as a TOML literal, for `--set key=value`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def reproduce_command(trainer: Trainer, registry: Any) -> str:
    """`backprop run FILE --set ...`: the file the run came from, with a `--set` for each key whose value in the
    run's resolved config differs from the file's own; `backprop run config.json` (the run's artifact) when the
    run did not come from a file, or the file no longer resolves."""
    from framework.build import resolve
    from framework.config import Experiment, flatten

    experiment = trainer.experiment
    source = experiment.source
    if source is None or not Path(source).is_file():
        return "backprop run config.json   # the run's config.json artifact"
    try:
        from_file = resolve(Experiment.from_file(source), registry).to_dict()
    except Exception:
        return "backprop run config.json   # the run's config.json artifact"
    logged, own = experiment.to_dict(), from_file
    sets = []
    for key, value in _changes(logged, own, flatten):
        sets.append(f"--set {shlex.quote(f'{key}={toml_value(value)}')}")
    return " ".join(["backprop run", shlex.quote(str(source)), *sets])


def _changes(logged: dict[str, Any], own: dict[str, Any], flatten: Any) -> list[tuple[str, Any]]:
    """(key, value) of the logged config where it differs from the file's: whole layers or metric lists when
    they differ (a layer's key path is only valid for the layers the file has)."""
    changes = []
    for section in logged:
        a, b = logged[section], own.get(section)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict) and section != "model":
            flat_a, flat_b = flatten(a, f"{section}."), flatten(b, f"{section}.")
            changes += [(k, v) for k, v in flat_a.items() if flat_b.get(k, object()) != v]
        elif section == "model" and len(a["layers"]) == len(b["layers"]):
            for i, (la, lb) in enumerate(zip(a["layers"], b["layers"], strict=True)):
                changes += [(f"model.layers.{i}.{k}", v) for k, v in la.items() if lb.get(k, object()) != v]
        else:
            changes.append((section, a))
    return changes


def run_description(
    trainer: Trainer,
    *,
    status: str,
    stop_reason: str,
    final_epoch: int | None,
    seconds: float,
    reproduce: str,
) -> str:
    """The markdown of the run's description."""
    experiment = trainer.experiment
    loss = experiment.loss.model_dump(mode="json")
    optimizer = {k: v for k, v in experiment.optimizer.model_dump(mode="json").items() if v is not None}
    bundle = getattr(trainer, "dataset", None)
    n_train, n_val = len(trainer.train), len(trainer.val) if trainer.val is not None else 0
    classes = f", {bundle.n_classes} classes" if bundle is not None and bundle.n_classes else ""
    parts = [
        f"**{experiment.name}**: {status}, {stop_reason}; {seconds:.1f} s.",
        "",
        f"**Model**: {trainer.model.n_parameters():,} parameters, {trainer.model.input_dim} inputs.",
        "",
        *model_lines(trainer),
        "",
        f"**Loss**: {loss['name']}" + (f" ({_params(loss)})" if _params(loss) else ""),
        f"· **Optimizer**: {optimizer['name']} ({_params(optimizer)})",
        f"· **Data**: {experiment.data.name}, {n_train} training and {n_val} validation samples{classes}.",
        "",
        "**Metrics** (final: the epoch whose weights the model holds):",
        "",
        *metric_lines(trainer, final_epoch),
        "",
        "**Run it again**:",
        "",
        "```bash",
        reproduce,
        "```",
    ]
    return "\n".join(parts) + "\n"


def experiment_note(files: list[str]) -> str:
    """The description of an experiment that backprop created: the experiment files whose runs it holds."""
    lines = ["Runs trained by backprop from these experiment files:", ""]
    lines += [f"- `{f}`" for f in files] or ["- (runs from Python, not from a file)"]
    return "\n".join(lines) + "\n"
