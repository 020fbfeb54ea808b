"""Checks of optimisers, datasets, metrics and callbacks: updates, determinism and state round trips."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from framework.components import Array, Callback, Dataset, Metric, Optimizer, Task
from framework.testing.numeric import F32, F64, assert_dtype, assert_same

OptimizerFactory = Callable[[], Optimizer]


def _problem(dtype: np.dtype[Any]) -> tuple[list[Array], list[Array]]:
    rng = np.random.default_rng(0)
    params = [rng.normal(size=(3, 4)).astype(dtype), rng.normal(size=4).astype(dtype)]
    grads = [rng.normal(size=(3, 4)).astype(dtype), rng.normal(size=4).astype(dtype)]
    return params, grads


def _plain(value: Any, path: str) -> None:
    """State must be plain data (arrays, numbers, strings, lists, dicts) so checkpoints can store it."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise AssertionError(f"state_dict(): key {key!r} at {path or 'top level'} is not a string")
            _plain(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _plain(item, f"{path}.{i}")
    elif not isinstance(value, np.ndarray | np.generic | int | float | str | bool | type(None)):
        raise AssertionError(f"state_dict(): {path} holds a {type(value).__name__}; keep to arrays, numbers, text")


def _assert_states_equal(what: str, first: Any, second: Any) -> None:
    if isinstance(first, Mapping) and isinstance(second, Mapping):
        if set(first) != set(second):
            raise AssertionError(f"{what}: keys {sorted(first)} != {sorted(second)}")
        for key in first:
            _assert_states_equal(f"{what}.{key}", first[key], second[key])
    elif isinstance(first, list | tuple) and isinstance(second, list | tuple):
        if len(first) != len(second):
            raise AssertionError(f"{what}: {len(first)} items != {len(second)}")
        for i, (a, b) in enumerate(zip(first, second, strict=True)):
            _assert_states_equal(f"{what}.{i}", a, b)
    else:
        assert_same(what, first, second)


def check_optimizer(make: OptimizerFactory, steps: int = 100) -> None:
    """An optimiser updates in place, descends, is deterministic, keeps dtypes, and resumes exactly.

    Args:
        make: builds a fresh optimiser (for example `lambda: MyOptimizer(lr=0.1)`).
        steps: steps on f(p) = ½‖p‖² (gradient p), which must end lower than it started.
    """
    opt = make()
    what = f"optimizer {opt.name!r}"
    params, grads = _problem(F64)
    ids, before, grads_before = [id(p) for p in params], [p.copy() for p in params], [g.copy() for g in grads]
    opt.step(params, grads)
    if [id(p) for p in params] != ids:
        raise AssertionError(f"{what}: step() must update the parameter arrays in place")
    if all(np.array_equal(p, b) for p, b in zip(params, before, strict=True)):
        raise AssertionError(f"{what}: step() left every parameter unchanged")
    for g, b in zip(grads, grads_before, strict=True):
        assert_same(f"{what}: step() must not change the gradients", g, b)

    descent = make()
    p = [np.full((2, 3), 2.0), np.full(3, -1.5)]
    start = sum(float(np.sum(x * x)) for x in p) / 2
    for _ in range(steps):
        descent.step(p, [x.copy() for x in p])  # the gradient of ½‖p‖² is p
    end = sum(float(np.sum(x * x)) for x in p) / 2
    if not end < start:
        raise AssertionError(f"{what}: {steps} steps on ½‖p‖² went from {start:.4g} to {end:.4g}; it must descend")

    first, second = make(), make()
    pa, ga = _problem(F64)
    pb, gb = _problem(F64)
    for _ in range(3):
        first.step(pa, ga)
        second.step(pb, gb)
    for x, y in zip(pa, pb, strict=True):
        assert_same(f"{what}: the same steps on a fresh optimiser must give the same parameters", x, y)

    # Resume: the state after 3 steps, loaded into a fresh optimiser, gives the same next step.
    state = first.state_dict()
    _plain(state, "")
    resumed = make()
    resumed.load_state_dict(copy.deepcopy(state))
    pr = [x.copy() for x in pa]
    first.step(pa, ga)
    resumed.step(pr, ga)
    for x, y in zip(pa, pr, strict=True):
        assert_same(f"{what}: after load_state_dict(state_dict()) the next step differs", x, y)

    p32, g32 = _problem(F32)
    opt32 = make()
    for _ in range(2):
        opt32.step(p32, g32)
    for x in p32:
        assert_dtype(f"{what}: float32 parameters", x, F32)

    if opt.elementwise:  # the trainer then passes all parameters as one flat array
        flat_opt, list_opt = make(), make()
        pl, gl = _problem(F64)
        flat_p = np.concatenate([x.ravel() for x in pl])
        flat_g = np.concatenate([x.ravel() for x in gl])
        for _ in range(2):
            flat_opt.step([flat_p], [flat_g])
            list_opt.step(pl, gl)
        assert_same(
            f"{what}: elementwise = True, but one flat array and separate arrays update differently "
            "(set elementwise = False)",
            flat_p,
            np.concatenate([x.ravel() for x in pl]),
        )

    opt.lr = 0.125
    if opt.lr != 0.125:
        raise AssertionError(f"{what}: setting optimizer.lr must change the learning rate (schedules use it)")


def check_dataset(dataset: Dataset, seed: int = 0) -> None:
    """A dataset loads valid arrays, the same ones for the same seed."""
    from framework.data import check_bundle
    from framework.errors import DataError

    what = f"dataset {dataset.name!r}"
    bundle = dataset.load(np.random.default_rng(seed))
    try:
        check_bundle(bundle, dataset.name)
    except DataError as exc:
        raise AssertionError(str(exc)) from None
    if bundle.task not in ("regression", "binary", "multiclass"):
        raise AssertionError(f"{what}: task must be regression, binary or multiclass, got {bundle.task!r}")
    if bundle.feature_names and len(bundle.feature_names) != bundle.X.shape[1]:
        raise AssertionError(f"{what}: {len(bundle.feature_names)} feature names for {bundle.X.shape[1]} features")
    if bundle.task != "regression":
        n_classes = bundle.n_classes or 0
        if np.asarray(bundle.y).ndim != 1 or np.max(bundle.y) >= n_classes:
            raise AssertionError(f"{what}: class labels must be a 1-D array of integers in 0..{n_classes - 1}")
        if bundle.task == "binary" and n_classes != 2:
            raise AssertionError(f"{what}: a binary task has 2 classes, got {n_classes}")
    again = dataset.load(np.random.default_rng(seed))
    assert_same(f"{what}: the same seed must give the same features", bundle.X, again.X)
    assert_same(f"{what}: the same seed must give the same targets", bundle.y, again.y)


def _metric_cases(task: Task, rng: np.random.Generator) -> tuple[Array, Array, Array]:
    """Targets, perfect predictions and random predictions (as the loss's link gives them) for `task`."""
    n = 12
    if task == "regression":
        values = rng.normal(size=n)
        return values, values.reshape(n, 1).copy(), rng.normal(size=(n, 1))
    k = 2 if task == "binary" else 3
    labels = np.arange(n) % k
    if task == "binary":
        return labels, labels.reshape(n, 1).astype(float), rng.uniform(size=(n, 1))
    return labels, np.eye(k)[labels], rng.dirichlet(np.ones(k), size=n)


def check_metric(metric: Metric, seed: int = 0) -> None:
    """A metric declares its direction, returns finite floats, and scores perfect predictions best."""
    what = f"metric {metric.name!r}"
    if metric.direction not in ("min", "max"):
        raise AssertionError(f"{what}: direction must be 'min' or 'max', got {metric.direction!r}")
    if not metric.tasks or not set(metric.tasks) <= {"regression", "binary", "multiclass"}:
        raise AssertionError(f"{what}: tasks must be a non-empty tuple of regression, binary, multiclass")
    rng = np.random.default_rng(seed)
    for task in metric.tasks:
        y, perfect, noisy = _metric_cases(task, rng)
        before = y.copy(), noisy.copy()
        best, other = metric(y, perfect), metric(y, noisy)
        for value in (best, other):
            if not isinstance(value, float) or not np.isfinite(value):
                raise AssertionError(f"{what} on {task}: must return a finite Python float, got {value!r}")
        assert_same(f"{what}: must not change y_true", y, before[0])
        assert_same(f"{what}: must not change y_pred", noisy, before[1])
        if (best < other) if metric.direction == "max" else (best > other):
            raise AssertionError(
                f"{what} on {task}: perfect predictions score {best:.4g}, random ones {other:.4g}, "
                f"but direction is {metric.direction!r}"
            )
        assert_same(f"{what}: is not deterministic", metric(y, noisy), other)


SMALL_EXPERIMENT: dict[str, Any] = {
    "name": "conformance",
    "seed": 0,
    "data": {"name": "house_prices", "n_samples": 64, "validation_split": 0.25},
    "model": {"layers": [{"units": 4, "activation": "tanh"}, {"units": 1}]},
    "loss": {"name": "mse"},
    "optimizer": {"name": "sgd", "lr": 0.01},
    "training": {"epochs": 3, "batch_size": 16},
    "tracking": {"enabled": False},
}
"""The run `check_callback` trains with the callback: built-in components only, about 10 ms."""


def check_callback(make: Callable[[], Callback], experiment: Mapping[str, Any] | None = None) -> None:
    """A callback's hooks are valid, it survives a short training run, and its state round-trips.

    Args:
        make: builds a fresh callback (for example `lambda: MyCallback(patience=2)`).
        experiment: the run to train with the callback (default `SMALL_EXPERIMENT`); `None` to use it.
    """
    from framework.api import fit
    from framework.config import Experiment
    from framework.pluginmanager import create_plugin_manager

    callback = make()
    what = f"callback {callback.name!r}"
    host = create_plugin_manager([callback], entry_points=False, strict=True)
    if host.warnings:
        raise AssertionError(f"{what}: {host.warnings[0]}")
    if not host.infos[next(iter(host.infos))].hooks:
        raise AssertionError(f"{what}: implements no hook; mark its hook methods with @framework.hookimpl")

    result = fit(Experiment.from_dict(experiment or SMALL_EXPERIMENT), callbacks=[callback], track=False)
    if len(result.history) == 0:
        raise AssertionError(f"{what}: the run trained no epoch")
    state = callback.state_dict()
    _plain(state, "")
    fresh = make()
    fresh.load_state_dict(copy.deepcopy(state))
    _assert_states_equal(f"{what}: state_dict() after load_state_dict(state_dict())", fresh.state_dict(), state)
