"""Building a run from an experiment: plugins, registries, resolved config, data, model, callbacks.

`prepare_run` is the one path that the Python API (`framework.fit`) and the CLI take.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from framework.components import (
    Callback,
    Dataset,
    Layer,
    Loss,
    Metric,
    Optimizer,
    Task,
    component_fields,
    spec_name,
    spec_params,
)
from framework.config import ComponentSection, DataSection, Experiment, OptimizerSection
from framework.data import check_bundle, prepare
from framework.errors import ConfigError, DataError, UserError
from framework.model import Model, Standardizer
from framework.pluginmanager import PluginHost, create_plugin_manager, disabled_from_env
from framework.registry import Registry
from framework.trainer import Split, Trainer

DEFAULT_METRICS: dict[Task, list[str]] = {
    "regression": ["mae", "r2"],
    "binary": ["accuracy"],
    "multiclass": ["accuracy"],
}

CONFIG_KEYS = frozenset(Experiment.model_fields)
"""First parts of the key paths that errors start with: an error starting with one names a config key."""

TRACKING_CALLBACK = "mlflow"
PROGRESS_CALLBACK = "progress"


def load_plugins(
    experiment: Experiment, extra: Sequence[str | object] = (), strict: bool = False, disabled: Sequence[str] = ()
) -> tuple[PluginHost, Registry]:
    """A fresh plugin manager with the built-ins, entry points and the experiment's own plugins.

    Disabled (never imported): the experiment's `disabled_plugins`, `BACKPROP_DISABLE_PLUGINS` and `disabled`.
    """
    blocked = [*experiment.disabled_plugins, *disabled_from_env(), *disabled]
    host = create_plugin_manager(
        [*experiment.plugins, *extra], base_dir=experiment.base_dir, strict=strict, disabled=blocked
    )
    return host, Registry.from_host(host)


def resolve(experiment: Experiment, registry: Registry) -> Experiment:
    """Validate every component section with its component's `Params` and write out the defaults.

    The result is the experiment as it will run: every key explicit, so that logging it and running it
    again gives the same run. Errors name the experiment's file before the key (`exp.toml: optimizer.lr: ...`).
    """
    with in_file(experiment.source):
        return _resolve(experiment, registry)


@contextlib.contextmanager
def in_file(source: Path | None) -> Iterator[None]:
    """Prefix a user error that names a config key (`optimizer.lr: ...`) with the experiment's file."""
    try:
        yield
    except UserError as exc:
        message = str(exc)
        key = message.split(":", 1)[0].split(".", 1)[0]
        if source is not None and key in CONFIG_KEYS and not message.startswith(f"{source}: "):
            exc.args = (f"{source}: {message}",)
        raise


def _resolve(experiment: Experiment, registry: Registry) -> Experiment:
    # Python values, not JSON ones: a NaN or an infinity must reach validation as itself, not as None.
    data = experiment.model_dump()

    def section(kind: str, key: str, values: dict[str, Any], core: type[ComponentSection]) -> dict[str, Any]:
        # The section's own keys (DataSection.validation_split, OptimizerSection.clip_norm, ...) belong to
        # the core; the rest are the component's params.
        core_keys = set(core.model_fields) - {"name"}
        own = {k: values[k] for k in ("name",) if k in values}
        params = {k: v for k, v in values.items() if k not in own and k not in core_keys}
        validated = registry.params(kind, values["name"], params, where=key, also=list(core.model_fields))
        rest = {k: v for k, v in values.items() if k in core_keys}
        return {**own, **rest, **validated.model_dump(mode="json")}

    data["data"] = section("dataset", "data", data["data"], DataSection)
    data["loss"] = section("loss", "loss", data["loss"], ComponentSection)
    data["optimizer"] = section("optimizer", "optimizer", data["optimizer"], OptimizerSection)
    if data["optimizer"].get("weight_decay") is None:  # written out: the resolved config says what ran
        optimizer_cls = registry.get("optimizer", data["optimizer"]["name"])
        data["optimizer"]["weight_decay"] = getattr(optimizer_cls, "default_weight_decay", 0.0)
    layers = []
    for i, layer in enumerate(data["model"]["layers"]):
        kind_name = layer.get("type", "dense")
        params = {k: v for k, v in layer.items() if k != "type"}
        validated = registry.params(
            "layer", kind_name, params, where=f"model.layers.{i}", name_at=f"model.layers.{i}.type", also=["type"]
        )
        resolved = validated.model_dump(mode="json")
        for key, kind in component_fields(type(validated)).items():
            resolved[key] = registry.resolve_spec(kind, resolved[key], where=f"model.layers.{i}.{key}")
        layers.append({"type": kind_name, **resolved})
    data["model"]["layers"] = layers
    metric_specs = data["training"]["metrics"]
    if metric_specs is not None:
        data["training"]["metrics"] = [
            registry.resolve_spec("metric", spec, where=f"training.metrics.{i}") for i, spec in enumerate(metric_specs)
        ]
        names = [spec_name(spec) for spec in data["training"]["metrics"]]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ConfigError(
                f"training.metrics: {', '.join(map(repr, repeated))} appears more than once; each metric is "
                "logged under its name (train_<name>, val_<name>), so list it once"
            )
    callbacks = {}
    for name, values in data["callbacks"].items():
        if name in {TRACKING_CALLBACK, PROGRESS_CALLBACK}:
            raise ConfigError(
                f"callbacks.{name}: {name!r} is configured elsewhere "
                f"({'the [tracking] section' if name == TRACKING_CALLBACK else '--quiet on the command line'})"
            )
        validated = registry.params("callback", name, values or {}, where=f"callbacks.{name}", name_at="callbacks")
        callbacks[name] = validated.model_dump(mode="json")
    data["callbacks"] = callbacks
    return Experiment.from_dict(data, source=experiment.source)


@dataclass
class Run:
    """Everything a run needs, built and checked, before the first epoch."""

    experiment: Experiment
    host: PluginHost
    registry: Registry
    trainer: Trainer
    callbacks: list[object] = field(default_factory=list)


def build_model(
    experiment: Experiment, registry: Registry, input_dim: int, dtype: np.dtype[Any], rng: np.random.Generator
) -> Model:
    layers: list[Layer] = []
    width = input_dim
    for i, spec in enumerate(experiment.model.layers):
        params = spec.component_params()
        layer = registry.create("layer", spec.type, params, where=f"model.layers.{i}", expect=Layer)
        registry.attach_components(layer, where=f"model.layers.{i}")  # its activation, initialisers
        layer.needs_input_grad = i > 0  # the first layer's input is the data: no gradient needed
        try:
            width = layer.build(width, dtype, rng)
        except MemoryError as exc:  # `units = 1e12`: refused by name, before anything is written (issue 19)
            where = f"{experiment.source}: " if experiment.source is not None else ""
            raise UserError(
                f"{where}model.layers.{i}: the {spec.type} layer does not fit in memory ({exc}); "
                "help: give it fewer units"
            ) from None
        layers.append(layer)
    return Model(layers, input_dim, dtype)


def prepare_run(
    experiment: Experiment,
    callbacks: Sequence[object] = (),
    *,
    track: bool | None = None,
    progress: bool = False,
    plugins: Sequence[str | object] = (),
    strict_plugins: bool = False,
    disabled_plugins: Sequence[str] = (),
    resume: str | Path | None = None,
) -> Run:
    """Load plugins, resolve the config, build data, model and callbacks, and check they fit together.

    With `resume` (a checkpoint directory), the run continues from that checkpoint: weights, optimiser and
    callback state, random generator, history and epoch are restored (`framework.checkpoint.restore`).
    """
    host, registry = load_plugins(experiment, plugins, strict=strict_plugins, disabled=disabled_plugins)
    experiment = resolve(experiment, registry)
    with in_file(experiment.source):
        return _prepare(experiment, host, registry, callbacks, track, progress, resume)


def _prepare(
    experiment: Experiment,
    host: PluginHost,
    registry: Registry,
    callbacks: Sequence[object],
    track: bool | None,
    progress: bool,
    resume: str | Path | None,
) -> Run:
    if experiment.training.checkpoint_every > 0:
        check_writable_dir(experiment.training.checkpoint_dir, "training.checkpoint_dir")
    # The callbacks first: their settings are checked before a large data set is loaded, and what they start
    # now (tracking's painter process: matplotlib imported on the other core) is ready sooner.
    run_callbacks = _run_callbacks(experiment, registry, callbacks, track, progress)
    for callback in run_callbacks:
        if isinstance(callback, Callback):
            callback.warm_up()
    dtype = np.dtype(experiment.dtype)
    seeds = np.random.SeedSequence(experiment.seed).spawn(4)
    data_rng, split_rng, init_rng, shuffle_rng = (np.random.default_rng(s) for s in seeds)

    # Data: load, check, split, standardise.
    data_params = experiment.data.component_params()
    dataset = registry.create("dataset", experiment.data.name, data_params, where="data", expect=Dataset)
    dataset.base_dir = experiment.base_dir  # file datasets read paths relative to the experiment file
    dataset.dtype = dtype  # a file dataset parses straight to it (peak memory: one copy of the features)
    bundle = dataset.load(data_rng)
    check_bundle(bundle, experiment.data.name)
    X_train, y_train, X_val, y_val, scaler = prepare(
        bundle, experiment.data.validation_split, experiment.data.standardize, dtype, split_rng
    )

    # Model, loss, optimiser, metrics.
    model = build_model(experiment, registry, X_train.shape[1], dtype, init_rng)
    loss = registry.create("loss", experiment.loss.name, experiment.loss.component_params(), where="loss", expect=Loss)
    n_outputs = model.output_dim
    problem = loss.check_outputs(n_outputs, bundle.task, bundle.n_classes)
    if bundle.task not in loss.tasks:
        raise ConfigError(
            f"loss.name: loss {loss.name!r} is for {', '.join(loss.tasks)} tasks, but dataset "
            f"{experiment.data.name!r} is a {bundle.task} task" + (f": {problem}" if problem else "")
        )
    if problem:
        raise DataError(f"model.layers: the last layer has {n_outputs} units, but {problem}")
    if bundle.task == "regression":
        targets_width = 1 if np.ndim(bundle.y) == 1 else int(np.shape(bundle.y)[1])
        if targets_width != n_outputs:
            raise DataError(
                f"model.layers: the last layer has {n_outputs} units, but dataset {experiment.data.name!r} "
                f"has {targets_width} target column(s); set units = {targets_width}"
            )
    model.preprocess = scaler
    target_scaler = None
    if experiment.data.standardize_target:
        if bundle.task != "regression":
            raise ConfigError(
                f"data.standardize_target: only regression targets can be standardised; dataset "
                f"{experiment.data.name!r} is a {bundle.task} task"
            )
        target_scaler = Standardizer.fit(np.asarray(y_train, dtype=dtype).reshape(len(y_train), -1))
    model.target_scaler = target_scaler
    model.link = loss.link
    model.loss_spec = {"name": experiment.loss.name, **experiment.loss.component_params()}
    model.feature_names = list(bundle.feature_names)
    model.target_names = list(bundle.target_names)
    model.task = bundle.task
    optimizer = registry.create(
        "optimizer",
        experiment.optimizer.name,
        experiment.optimizer.component_params(),
        where="optimizer",
        expect=Optimizer,
    )
    metric_specs: list[Any] = list(experiment.training.metrics or DEFAULT_METRICS[bundle.task])
    metrics: dict[str, Metric] = {}
    for i, spec in enumerate(metric_specs):
        name = spec_name(spec)
        metric = registry.create("metric", name, spec_params(spec), where=f"training.metrics.{i}", expect=Metric)
        if bundle.task not in metric.tasks:
            raise ConfigError(
                f"training.metrics.{i}: metric {name!r} is for {', '.join(metric.tasks)} tasks, "
                f"but dataset {experiment.data.name!r} is a {bundle.task} task"
            )
        metrics[name] = metric

    classes = list(bundle.target_names) or [str(i) for i in range(bundle.n_classes or 0)]
    loss.adapt(np.asarray(y_train), bundle.task, classes if bundle.task != "regression" else [])
    weights = getattr(loss, "class_weights", None)
    if weights is not None:  # as adapted to the training split ("balanced", names): `evaluate` rebuilds this loss
        model.loss_spec["class_weight"] = {str(i): float(w) for i, w in enumerate(weights)}

    def loss_targets(y: Any, split: str) -> Any:
        if target_scaler is not None:
            y = target_scaler.transform(np.asarray(y, dtype=dtype).reshape(len(y), -1))
        try:
            return loss.prepare_targets(y, n_outputs, dtype)
        except ValueError as exc:  # the loss's own check of the targets: a data problem, said in one line
            raise DataError(f"dataset {experiment.data.name!r} ({split} split) and loss {loss.name!r}: {exc}") from None

    train = Split(X_train, loss_targets(y_train, "training"), y_train)
    val = Split(X_val, loss_targets(y_val, "validation"), y_val) if len(X_val) else None
    trainer = Trainer(
        experiment=experiment,
        model=model,
        loss=loss,
        optimizer=optimizer,
        metrics=metrics,
        host=host,
        train=train,
        val=val,
        task=bundle.task,
        rng=shuffle_rng,
    )
    trainer.dataset = bundle  # type: ignore[attr-defined]
    trainer.registry = registry  # type: ignore[attr-defined]  # what built the run (tracking resolves with it)

    for i, callback in enumerate(run_callbacks):
        name = f"run-callback-{i}-{getattr(callback, 'name', '') or type(callback).__name__}"
        host.register(callback, name, _callback_info(name, callback))
    trainer.callbacks = run_callbacks
    for callback in run_callbacks:
        validate = getattr(callback, "validate_against", None)
        if validate is not None:
            validate(trainer)
    if resume is not None:
        from framework.checkpoint import restore

        restore(trainer, Path(resume))
    return Run(experiment, host, registry, trainer, run_callbacks)


def _run_callbacks(
    experiment: Experiment, registry: Registry, callbacks: Sequence[object], track: bool | None, progress: bool
) -> list[object]:
    """The callbacks of this run only: configured ones, tracking, progress, then the caller's objects."""
    run_callbacks: list[object] = []
    for name, values in experiment.callbacks.items():
        run_callbacks.append(registry.create("callback", name, values, where=f"callbacks.{name}", expect=Callback))
    tracking_on = experiment.tracking.enabled if track is None else track
    if tracking_on:
        values = experiment.tracking.model_dump(exclude={"enabled"})
        try:
            registry.get("callback", TRACKING_CALLBACK)
        except UserError:
            raise UserError(
                "tracking is on but no plugin provides the 'mlflow' callback (is the 'tracking' plugin "
                "disabled?); turn tracking off with --no-track or tracking.enabled = false"
            ) from None
        run_callbacks.append(registry.create("callback", TRACKING_CALLBACK, values, where="tracking", expect=Callback))
    if progress and PROGRESS_CALLBACK in registry.names("callback"):
        run_callbacks.append(registry.create("callback", PROGRESS_CALLBACK, {}, where="progress", expect=Callback))
    run_callbacks.extend(callbacks)
    return run_callbacks


def check_writable_dir(directory: str | Path, key: str) -> None:
    """Refuse, before training, a directory that cannot be created or written (nothing is created here)."""
    path = Path(directory)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        where = "" if existing == path else f" ({str(existing)!r} is in the way)"
        raise ConfigError(
            f"{key}: {str(directory)!r} cannot be a directory: a file is in the way{where}; "
            "help: remove or rename that file, or set another directory"
        )
    if existing.exists() and not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{key}: {str(existing)!r} is not writable; help: fix its permissions or set another directory"
        )


def _callback_info(name: str, callback: object) -> Any:
    from framework.pluginmanager import PluginInfo

    return PluginInfo(
        name=name, source=f"callback {type(callback).__module__}.{type(callback).__qualname__}", origin="callback"
    )
