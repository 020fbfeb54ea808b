"""The conformance check of losses: on every problem a loss accepts, its gradient against finite differences
of its value, shapes, dtypes and purity.

A problem is a task with a number of outputs (`LOSS_PROBLEMS`); a loss is checked on each one its `tasks` and
`check_outputs` accept. Classification problems give class labels; regression problems try every family of
`TARGET_FAMILIES` in turn (normal values, non-negative values, distribution rows), since a loss may rightly
refuse some (poisson refuses negative targets, kl_divergence anything but distributions): the loss is
checked on every family its `prepare_targets` accepts, and a problem on which it accepts none fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from framework.components import Array, Loss, Task
from framework.testing.numeric import (
    F32,
    F64,
    assert_dtype,
    assert_gradient,
    assert_same,
    numerical_gradient,
)

# (task, n_outputs, n_classes): a loss is checked on every problem it accepts (its `tasks`, `check_outputs`).
LOSS_PROBLEMS: list[tuple[Task, int, int | None]] = [
    ("regression", 1, None),
    ("regression", 3, None),
    ("binary", 1, 2),
    ("binary", 2, 2),
    ("multiclass", 4, 4),
]

N_SAMPLES = 6


def _normal(rng: np.random.Generator, n: int, k: int) -> Array:
    return np.asarray(rng.normal(size=(n, k)))


def _non_negative(rng: np.random.Generator, n: int, k: int) -> Array:
    # Counts and rates (poisson); zeros included, since a count of 0 is a valid target.
    return np.asarray(rng.poisson(2.0, size=(n, k)), dtype=np.float64)


def _distributions(rng: np.random.Generator, n: int, k: int) -> Array:
    return np.asarray(rng.dirichlet(np.ones(k), size=n))


TARGET_FAMILIES: dict[str, Callable[[np.random.Generator, int, int], Array]] = {
    "normal values": _normal,
    "non-negative values": _non_negative,
    "rows of a Dirichlet draw": _distributions,
}
"""The kinds of regression targets tried, in order: (rng, n_samples, n_outputs) -> raw targets (n, k)."""


@dataclass
class LossProblem:
    """One batch a loss accepts: raw targets `y`, the prepared `targets`, and `outputs` (logits or values)."""

    task: Task
    n_outputs: int
    n_classes: int | None
    family: str
    y: Array
    outputs: Array
    targets: Array

    @property
    def where(self) -> str:
        return f"on a {self.task} problem with {self.n_outputs} output(s) and {self.family}"


def _raw_targets(family: str, n_out: int, n_classes: int | None, rng: np.random.Generator) -> Array:
    if n_classes is not None:
        labels = rng.permutation(np.arange(N_SAMPLES) % n_classes)  # every class present
        return np.asarray(labels)
    return TARGET_FAMILIES[family](rng, N_SAMPLES, n_out)


def accepted_problems(loss: Loss) -> list[tuple[Task, int, int | None]]:
    """The problems of `LOSS_PROBLEMS` that the loss's `tasks` and `check_outputs` accept."""
    return [
        (task, n_out, n_cls)
        for task, n_out, n_cls in LOSS_PROBLEMS
        if task in loss.tasks and loss.check_outputs(n_out, task, n_cls) is None
    ]


def loss_problems(
    loss: Loss, task: Task, n_out: int, n_classes: int | None, dtype: np.dtype[Any], seed: int = 0
) -> list[LossProblem]:
    """A batch of every target family the loss accepts on this problem, as the core prepares it.

    As before training, `adapt` sees the raw targets first (class names "0", "1", ... for classification),
    then `prepare_targets` makes the loss's targets; a ValueError from it means "not this family". Raises an
    AssertionError when the loss accepts no family at all.
    """
    families = ["class labels"] if n_classes is not None else list(TARGET_FAMILIES)
    classes = [str(i) for i in range(n_classes)] if n_classes is not None else []
    found, refusals = [], []
    for family in families:
        rng = np.random.default_rng(seed)
        y = _raw_targets(family, n_out, n_classes, rng)
        outputs = (2 * rng.normal(size=(N_SAMPLES, n_out))).astype(dtype)
        loss.adapt(y, task, classes)
        try:
            targets = loss.prepare_targets(y, n_out, dtype)
        except ValueError as exc:
            refusals.append(f"{family}: {exc}")
            continue
        found.append(LossProblem(task, n_out, n_classes, family, y, outputs, targets))
    if not found:
        raise AssertionError(
            f"loss {loss.name!r} on a {task} problem with {n_out} output(s): prepare_targets refused every kind "
            f"of target tried, but its tasks and check_outputs accept the problem ({'; '.join(refusals)})"
        )
    return found


def check_loss(loss: Loss) -> None:
    """On every problem the loss accepts: gradient = finite differences of value, shapes, dtypes, purity."""
    what = f"loss {loss.name!r}"
    problems = accepted_problems(loss)
    if not problems:
        raise AssertionError(f"{what}: accepts none of the test problems {LOSS_PROBLEMS} (check `tasks`)")
    for task, n_out, n_cls in problems:
        singles = {p.family: p for p in loss_problems(loss, task, n_out, n_cls, F32)}
        for problem in loss_problems(loss, task, n_out, n_cls, F64):
            where = f"{what} {problem.where}"
            _check_problem(loss, where, problem)
            single = singles.get(problem.family)
            if single is None:
                raise AssertionError(f"{where}: prepare_targets accepts these targets in float64 but not in float32")
            loss.adapt(single.y, task, [str(i) for i in range(n_cls)] if n_cls is not None else [])
            assert_dtype(f"{where}: prepare_targets", single.targets, F32)
            assert_dtype(f"{where}: gradient", loss.gradient(single.outputs, single.targets), F32)
            if not np.isfinite(loss.value(single.outputs, single.targets)):
                raise AssertionError(f"{where}: value() is not finite in float32")


def _check_problem(loss: Loss, where: str, problem: LossProblem) -> None:
    outputs, targets = problem.outputs, problem.targets
    # The loss may keep what `adapt` learnt: adapt to this problem's targets again before using them.
    loss.adapt(problem.y, problem.task, [str(i) for i in range(problem.n_classes or 0)])
    if targets.shape != outputs.shape:
        raise AssertionError(f"{where}: prepare_targets gave shape {targets.shape}, outputs are {outputs.shape}")
    before = outputs.copy(), targets.copy()
    value = loss.value(outputs, targets)
    if not isinstance(value, float) or not np.isfinite(value):
        raise AssertionError(f"{where}: value() must return a finite Python float, got {value!r}")
    analytic = np.array(loss.gradient(outputs, targets), copy=True)
    assert_same(f"{where}: value/gradient must not change the outputs", outputs, before[0])
    assert_same(f"{where}: value/gradient must not change the targets", targets, before[1])

    def value_at(o: Array = outputs, t: Array = targets) -> float:
        return loss.value(o, t)

    assert_gradient(f"{where}: gradient", analytic, numerical_gradient(value_at, outputs))
    assert_same(f"{where}: value is not deterministic", loss.value(outputs, targets), value)
    link = np.asarray(loss.link(outputs))
    if link.shape != outputs.shape:
        raise AssertionError(f"{where}: link() returned shape {link.shape} for outputs {outputs.shape}")
    per_sample = loss.per_sample(outputs, targets)
    if per_sample is not None:
        if np.shape(per_sample) != (len(outputs),):
            raise AssertionError(f"{where}: per_sample() must return shape ({len(outputs)},)")
        np.testing.assert_allclose(np.mean(per_sample), value, rtol=1e-10, err_msg=f"{where}: mean of per_sample")
    both_value, both_link = loss.value_and_link(outputs, targets)
    np.testing.assert_allclose(both_value, value, rtol=1e-12, err_msg=f"{where}: value_and_link's value")
    np.testing.assert_allclose(both_link, link, rtol=1e-12, atol=1e-300, err_msg=f"{where}: value_and_link's link")
    three_value, three_link, three_per_sample = loss.value_link_and_per_sample(outputs, targets)
    np.testing.assert_allclose(three_value, value, rtol=1e-12, err_msg=f"{where}: value_link_and_per_sample's value")
    np.testing.assert_allclose(
        three_link, link, rtol=1e-12, atol=1e-300, err_msg=f"{where}: value_link_and_per_sample's link"
    )
    if (three_per_sample is None) != (per_sample is None):
        raise AssertionError(f"{where}: value_link_and_per_sample's per-sample losses differ from per_sample()")
    if per_sample is not None and three_per_sample is not None:
        np.testing.assert_allclose(
            three_per_sample, per_sample, rtol=1e-12, err_msg=f"{where}: value_link_and_per_sample's per-sample"
        )
