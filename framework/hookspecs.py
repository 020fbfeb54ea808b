"""Every hook of backprop, in the order a run meets them.

Implement a hook by writing a function (in a plugin module) or a method (on a plugin object, such as a
`Callback`) with the hook's name, marked with `@framework.hookimpl`. An implementation takes any subset of
the arguments below, by name, so arguments can be added later without breaking plugins.

How results combine:

- *Registration hooks* are called once per plugin manager, one implementation at a time, and each returns a
  list of component classes. Returning something else is an error naming the plugin.
- *Event hooks* return nothing; every implementation is called. Per-batch hooks that no plugin implements
  are not called at all, so they cost nothing.
- *Decision hooks* (`should_stop`) collect every implementation's answer; any non-empty answer stops
  training and is kept as the stop reason.

An exception raised inside an implementation propagates with a note naming the plugin and the hook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from framework.markers import hookspec

if TYPE_CHECKING:
    from framework.components import (
        Activation,
        Callback,
        Dataset,
        Initializer,
        Layer,
        Loss,
        Metric,
        Optimizer,
        Sampler,
    )
    from framework.trainer import FitResult, Trainer

# ---------------------------------------------------------------------------------------------------------
# Registration hooks: called once per plugin manager, when the registries are built.
# ---------------------------------------------------------------------------------------------------------


@hookspec
def register_activations() -> list[type[Activation]]:  # type: ignore[empty-body]
    """Return the `Activation` classes this plugin provides.

    Called once when the registries are built. Each class's `name` is how experiments refer to it
    (`activation = "relu"`); a name registered by two plugins is an error naming both.
    """


@hookspec
def register_losses() -> list[type[Loss]]:  # type: ignore[empty-body]
    """Return the `Loss` classes this plugin provides (`[loss] name = ...`)."""


@hookspec
def register_optimizers() -> list[type[Optimizer]]:  # type: ignore[empty-body]
    """Return the `Optimizer` classes this plugin provides (`[optimizer] name = ...`)."""


@hookspec
def register_layers() -> list[type[Layer]]:  # type: ignore[empty-body]
    """Return the `Layer` classes this plugin provides (`[[model.layers]] type = ...`)."""


@hookspec
def register_initializers() -> list[type[Initializer]]:  # type: ignore[empty-body]
    """Return the `Initializer` classes this plugin provides (a layer's `init = ...`, `bias_init = ...`)."""


@hookspec
def register_datasets() -> list[type[Dataset]]:  # type: ignore[empty-body]
    """Return the `Dataset` classes this plugin provides (`[data] name = ...`)."""


@hookspec
def register_metrics() -> list[type[Metric]]:  # type: ignore[empty-body]
    """Return the `Metric` classes this plugin provides (`[training] metrics = [...]`)."""


@hookspec
def register_callbacks() -> list[type[Callback]]:  # type: ignore[empty-body]
    """Return the `Callback` classes this plugin provides (`[callbacks.<name>]` sections)."""


@hookspec
def register_samplers() -> list[type[Sampler]]:  # type: ignore[empty-body]
    """Return the `Sampler` classes this plugin provides (`backprop sweep --sampler NAME`, `[sweep] sampler`).

    Called once when the registries are built, like the other registration hooks. A sampler either plans
    every trial of a sweep up front or hands Optuna a sampler that picks them as results arrive (see
    `framework.components.Sampler`).
    """


@hookspec
def register_commands(app: Any) -> None:
    """Add sub-commands to the `backprop` command line.

    Args:
        app: a `typer.Typer` of this plugin's own, whose commands join the root `backprop` command; add
            commands with `@app.command()` or `app.add_typer`. A name the core has is skipped.

    Called only when the CLI runs a command it does not know itself, so `backprop --help` imports no plugin.
    """


# ---------------------------------------------------------------------------------------------------------
# Event hooks: called by the trainer, in this order. They return nothing.
# ---------------------------------------------------------------------------------------------------------


@hookspec
def before_fit(trainer: Trainer) -> None:
    """Called once before the first epoch, after the model, optimiser and data are built.

    Args:
        trainer: the run. `trainer.experiment` is the resolved config, `trainer.model`, `trainer.optimizer`,
            `trainer.loss` and `trainer.metric_names` are ready. A tracking plugin may set `trainer.run_id`.

    Raise a `framework.errors.UserError` to refuse the run before any training happens.
    """


@hookspec
def before_epoch(trainer: Trainer, epoch: int) -> None:
    """Called at the start of each epoch (`epoch` counts from 0), before the data is shuffled."""


@hookspec
def before_batch(trainer: Trainer, epoch: int, batch: int) -> None:
    """Called before each batch's forward pass (hot: keep it cheap). `batch` counts from 0 in the epoch."""


@hookspec
def after_backward(trainer: Trainer, epoch: int, batch: int) -> None:
    """Called after the backward pass, before the optimiser step (hot).

    The gradients are `trainer.model.gradients()` and may be changed in place (clipping, inspection).
    """


@hookspec
def after_step(trainer: Trainer, epoch: int, batch: int) -> None:
    """Called after the optimiser has updated the parameters (hot)."""


@hookspec
def after_batch(trainer: Trainer, epoch: int, batch: int, step: int, outputs: Any, targets: Any) -> None:
    """Called at the end of each batch (hot).

    Args:
        step: the global step, counting batches from 0 over the whole run.
        outputs: the model's raw outputs for this batch (read-only; the buffer is reused).
        targets: the prepared targets of this batch, as the loss sees them.
    """


@hookspec
def after_validation(trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
    """Called after the epoch's metrics are computed; `logs` holds `train_*` and `val_*` values.

    An implementation may add entries to `logs` (for example the learning rate); they go into the history.
    """


@hookspec
def after_epoch(trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
    """Called at the end of each epoch with the metrics that the history records (do not change them)."""


# ---------------------------------------------------------------------------------------------------------
# Decision hooks.
# ---------------------------------------------------------------------------------------------------------


@hookspec
def should_stop(trainer: Trainer, epoch: int, logs: dict[str, float]) -> str | None:
    """Called after `after_epoch`; return a reason (a short sentence) to stop training, or None.

    Every implementation is asked; all non-empty answers are kept as the stop reason.
    """


# ---------------------------------------------------------------------------------------------------------
# End of the run.
# ---------------------------------------------------------------------------------------------------------


@hookspec
def after_fit(trainer: Trainer, result: FitResult) -> None:
    """Called once when training ended normally (epochs ran out or a stop was requested).

    `result` holds the model, the history and the stop reason; an implementation may restore weights into
    `result.model` (early stopping does).
    """


@hookspec
def on_fit_error(trainer: Trainer, error: BaseException) -> None:
    """Called when training ends with an exception, including `KeyboardInterrupt` (Ctrl-C, SIGTERM).

    Every implementation is called even if one of them fails; the original exception is re-raised after.
    Tracking marks the run FAILED, or KILLED for an interruption.
    """


EVENT_HOOKS = (
    "before_fit",
    "before_epoch",
    "before_batch",
    "after_backward",
    "after_step",
    "after_batch",
    "after_validation",
    "after_epoch",
    "should_stop",
    "after_fit",
    "on_fit_error",
)
REGISTRATION_HOOKS = {
    "activation": "register_activations",
    "loss": "register_losses",
    "optimizer": "register_optimizers",
    "layer": "register_layers",
    "initializer": "register_initializers",
    "dataset": "register_datasets",
    "metric": "register_metrics",
    "callback": "register_callbacks",
    "sampler": "register_samplers",
}
