"""The Python API for scripts and notebooks: the same path the CLI takes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from framework.build import prepare_run
from framework.config import Experiment
from framework.trainer import FitResult


def fit(
    experiment: Experiment,
    callbacks: Sequence[object] = (),
    *,
    track: bool | None = None,
    plugins: Sequence[str | object] = (),
    strict_plugins: bool = False,
    disabled_plugins: Sequence[str] = (),
    resume: str | Path | None = None,
) -> FitResult:
    """Train the experiment and return the model, the history, the stop reason and the MLflow run id.

    Args:
        experiment: from `Experiment.from_file(path)` or `Experiment.from_dict(data)`.
        callbacks: objects with `@hookimpl` methods (for example `Callback` instances), registered for
            this run only.
        track: log to MLflow; `None` follows the experiment's `tracking.enabled`.
        plugins: extra plugins for this run (module names, `.py` paths or plugin objects).
        strict_plugins: fail if an installed plugin does not load, instead of skipping it.
        disabled_plugins: plugins to leave out of this run (besides the experiment's own list); never imported.
        resume: a checkpoint directory (`checkpoints/<experiment>/<run>/epoch-N`) to continue from; the
            experiment must be the one it was made with (only `training.epochs`, the checkpoint options and
            tracking may differ). See `framework.checkpoint`.
    """
    run = prepare_run(
        experiment,
        callbacks,
        track=track,
        plugins=plugins,
        strict_plugins=strict_plugins,
        disabled_plugins=disabled_plugins,
        resume=resume,
    )
    return run.trainer.fit()
