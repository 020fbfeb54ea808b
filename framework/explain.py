"""One training step, every number of it: what `backprop explain` prints.

The step is the trainer's own: the model's layers run forward one at a time (as `Model.forward` runs them),
the loss gives dL/d(output), the layers run backward in reverse (as `Model.backward`), and the trainer's step
function (`Trainer._make_step`: clipping, weight decay, the optimiser, constraints) updates the parameters.
Between the calls the arrays are copied out of the layers: their inputs and outputs, what they expose
through `Layer.intermediates()` (dense: z and delta = dL/dz) and their gradients. Nothing is computed a
second way, so a plugin's layer, activation, loss or optimiser is explained exactly as it trains.

Names follow the lesson (counting layers from 1): `x`, `z1`, `a1`, ..., `output` (the last layer's a),
`loss`, `grad_output` = dL/d(output), then going back `delta2` = dL/dz2, `deriv_w2`, `deriv_b2`,
`grad_a1` = dL/da1 (what layer 2 passes down), ..., then `update_w1` = w1 after − w1 before, ..., and
`loss_after`, the loss of the same batch after the step.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from framework.components import Array, Layer
from framework.dispatch import EventDispatcher
from framework.errors import UserError
from framework.trainer import Trainer

SMALL = 64
"""Arrays of at most this many numbers are shown in full; larger ones as shape, mean, std, min and max."""


@dataclass
class Entry:
    """One named array (or number) of the step."""

    section: str
    name: str
    value: Array
    what: str

    def summary(self) -> dict[str, float]:
        v = self.value.astype(np.float64)
        return {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()), "max": float(v.max())}


@dataclass
class Explanation:
    """The step: its entries in order, and what it was taken on."""

    experiment: str
    batch: int
    rows: list[int]
    steps_before: int
    lr: float
    entries: list[Entry] = field(default_factory=list)

    def add(self, section: str, name: str, value: Any, what: str) -> None:
        self.entries.append(Entry(section, name, np.array(value, dtype=np.float64, copy=True), what))

    def get(self, name: str) -> Array:
        for entry in self.entries:
            if entry.name == name:
                return entry.value
        raise KeyError(name)


def parameter_names(layer: Layer) -> list[str]:
    """The attribute names of a layer's parameter arrays (dense: w, b), found by identity; else p0, p1, ..."""
    found = {id(v): k for k, v in vars(layer).items() if isinstance(v, np.ndarray) and not k.startswith("_")}
    return [found.get(id(p), f"p{i}").lower() for i, p in enumerate(layer.parameters())]


def layer_names(trainer: Trainer) -> list[list[str]]:
    """Per layer, the lesson's names of its parameters: w1, b1, w2, b2, ..."""
    return [[f"{n}{i}" for n in parameter_names(layer)] for i, layer in enumerate(trainer.model.layers, start=1)]


def batches(trainer: Trainer) -> int:
    """How many batches the training split is cut into (batch_size rows each, the last one maybe fewer)."""
    return -(-len(trainer.train) // trainer.batch_size)


def select(trainer: Trainer, batch: int, samples: list[int] | None) -> list[int]:
    """The rows of the training split that batch `batch` (from 0), restricted to `samples`, holds."""
    n = batches(trainer)
    if not 0 <= batch < n:
        raise UserError(
            f"--batch {batch}: the training data ({len(trainer.train)} samples, batch_size "
            f"{trainer.batch_size}) has {n} batch(es), numbered 0 to {n - 1}"
        )
    start = batch * trainer.batch_size
    rows = list(range(start, min(start + trainer.batch_size, len(trainer.train))))
    if samples is None:
        return rows
    bad = [s for s in samples if not 0 <= s < len(rows)]
    if bad:
        raise UserError(f"--samples {bad[0]}: batch {batch} has {len(rows)} rows, numbered 0 to {len(rows) - 1}")
    return [rows[s] for s in samples]


def train_steps(trainer: Trainer, steps: int) -> None:
    """Take the first `steps` steps of training as `Trainer.fit` takes them (the same order of batches, shuffled
    per epoch with the run's generator when `training.shuffle`), then start the epoch of the next step.

    The callbacks' `before_fit` and `before_epoch` run as in `fit`, so a schedule or warm-up sets the rate each
    epoch trains with (and the explained step is taken with its epoch's rate). The epoch-end hooks do not run
    (`after_epoch`, `should_stop`: they need the epoch's metrics), so `reduce_on_plateau` and early stopping
    never act, nor do the per-batch hooks."""
    hooks = EventDispatcher(trainer.host.pm)
    hooks.call("before_fit", trainer=trainer)
    step, (params, grads) = trainer._make_step(), trainer._step_arrays()
    model, loss, train, bs = trainer.model, trainer.loss, trainer.train, trainer.batch_size
    per_epoch = batches(trainer)
    done = 0
    with np.errstate(all="ignore"):
        while True:
            trainer.epoch = done // per_epoch
            hooks.call("before_epoch", trainer=trainer, epoch=trainer.epoch)
            if done == steps:
                return
            if trainer.experiment.training.shuffle:
                perm = trainer.rng.permutation(len(train))
                X, T = train.X.take(perm, axis=0), train.targets.take(perm, axis=0)
            else:
                X, T = train.X, train.targets
            for start in range(0, len(train), bs):
                model.backward(loss.gradient(model.forward(X[start : start + bs], True), T[start : start + bs]))
                step(params, grads)
                done += 1
                trainer.step += 1
                if done == steps and done % per_epoch:
                    return  # inside an epoch: its rate is set


def explain(trainer: Trainer, batch: int = 0, samples: list[int] | None = None, steps: int = 0) -> Explanation:
    """Train `steps` steps, then take one step on batch `batch` (rows `samples` of it) and record every array."""
    if steps < 0:
        raise UserError(f"--step {steps}: the number of steps to train first must be 0 or more")
    rows = select(trainer, batch, samples)
    train_steps(trainer, steps)
    model, loss = trainer.model, trainer.loss
    names = layer_names(trainer)
    out = Explanation(trainer.experiment.name, batch, rows, steps, float(trainer.optimizer.lr))
    xb, tb = trainer.train.X[rows], trainer.train.targets[rows]
    for layer, layer_params in zip(model.layers, names, strict=True):
        for name, p in zip(layer_params, layer.parameters(), strict=True):
            out.add("parameters", name, p, f"{type(layer).name} parameter, before the step")
    before = [p.copy() for p in model.parameters()]
    states = [copy.deepcopy(layer.state_dict()) for layer in model.layers]  # dropout's generator, for loss_after
    buffers = [b.copy() for b in model.buffers()]
    last = len(model.layers)
    with np.errstate(all="ignore"):
        out.add("forward", "x", xb, "the input (as the model sees it, after data.standardize)")
        a = xb
        for i, layer in enumerate(model.layers, start=1):
            a = layer.forward(a, True)
            z = layer.intermediates().get("z")
            if z is not None:
                source = "x" if i == 1 else f"a{i - 1}"  # a layer's input is the layer before's output
                out.add("forward", f"z{i}", z, f"layer {i} ({layer.name}): pre-activation {source} @ W + b")
            act = _activation(layer)
            out.add("forward", "output" if i == last else f"a{i}", a, f"layer {i} ({layer.name}) output {act}".rstrip())
        value = float(loss.value(a, tb))
        out.add("loss", "loss", value, f"{loss.name}, the mean over the batch")
        if model.penalized_layers:
            out.add("loss", "penalty", model.penalty(), "the layers' l1/l2 regularisation, added to the loss")
        g: Array | None = np.array(loss.gradient(a, tb), copy=True)
        out.add("loss", "grad_output", g, "dL/d(output), from the loss")
        first_needs = model.layers[0].needs_input_grad
        for i in range(last, 0, -1):
            layer = model.layers[i - 1]
            assert g is not None
            g = layer.backward(g)
            delta = layer.intermediates().get("delta")
            if delta is not None:
                out.add("backward", f"delta{i}", delta, f"dL/dz{i}: the activation's derivative times dL/da{i}")
            for name, grad in zip(names[i - 1], layer.gradients(), strict=True):
                out.add("backward", f"deriv_{name}", grad, f"dL/d{name}")
            if g is not None and i > 1:
                out.add("backward", f"grad_a{i - 1}", g, f"dL/da{i - 1}, passed down by layer {i}")
        assert model.layers[0].needs_input_grad == first_needs
        params, grads = trainer._step_arrays()
        trainer._make_step()(params, grads)
        for p, was, name in zip(model.parameters(), before, [n for ns in names for n in ns], strict=True):
            out.add("update", f"update_{name}", p - was, f"{name} after the step - before ({trainer.optimizer.name})")
        for layer, state in zip(model.layers, states, strict=True):
            layer.load_state_dict(state)
        for live, kept in zip(model.buffers(), buffers, strict=True):
            live[...] = kept
        after = float(loss.value(model.forward(xb, True), tb))
        out.add("update", "loss_after", after, "the loss of the same batch after the step")
    return out


def _activation(layer: Layer) -> str:
    act = layer.components.get("activation")
    return f"a = {act.name}(z)" if act is not None and act.name != "identity" else ""


def to_json(ex: Explanation, full: bool = False) -> dict[str, Any]:
    """The step as JSON-ready data: small arrays (or every one, with `full`) as nested lists."""
    entries = []
    for e in ex.entries:
        item: dict[str, Any] = {"section": e.section, "name": e.name, "shape": list(e.value.shape), "what": e.what}
        if full or e.value.size <= SMALL:
            item["values"] = e.value.tolist()
        item["summary"] = e.summary()
        entries.append(item)
    return {
        "experiment": ex.experiment,
        "batch": ex.batch,
        "rows": ex.rows,
        "steps_before": ex.steps_before,
        "lr": ex.lr,
        "entries": entries,
    }


def format_value(value: Array, full: bool, digits: int = 6) -> str:
    """A number, a small array in full (rows on lines), or a large one summarised."""
    if value.ndim == 0:
        return f"{float(value):.{digits}g}"
    if not full and value.size > SMALL:
        v = value.astype(np.float64)
        return (
            f"mean {v.mean():.{digits}g}  std {v.std():.{digits}g}  min {v.min():.{digits}g}  max {v.max():.{digits}g}"
        )
    with np.printoptions(precision=digits, suppress=False, floatmode="maxprec", linewidth=100, threshold=sys.maxsize):
        return np.array2string(value, separator=" ")


def to_text(ex: Explanation, full: bool = False, markdown: bool = False) -> str:
    """The step as text (sections, `name (shape)  what`, then the values), or as Markdown."""
    lines = [
        f"{'# ' if markdown else ''}One step of {ex.experiment!r}: batch {ex.batch}, rows {ex.rows}, "
        f"after {ex.steps_before} step(s), lr {ex.lr:g}"
    ]
    section = ""
    for e in ex.entries:
        if e.section != section:
            section = e.section
            lines += ["", f"## {section}" if markdown else f"[{section}]"]
        shape = "x".join(map(str, e.value.shape)) or "scalar"
        text = format_value(e.value, full)
        if markdown:
            lines += ["", f"**{e.name}** ({shape}): {e.what}", "", "```", text, "```"]
        else:
            lines.append(f"{e.name} ({shape})  {e.what}")
            lines += ["    " + line for line in text.splitlines()]
    return "\n".join(lines) + "\n"
