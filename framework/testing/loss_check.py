"""The conformance check of losses: on every problem a loss accepts, its gradient against finite differences
of its value, shapes, dtypes and purity."""

from __future__ import annotations

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


def _problem(loss: Loss, task: Task, n_out: int, n_classes: int | None, dtype: np.dtype[Any]) -> tuple[Array, Array]:
    rng = np.random.default_rng(0)
    n = 6
    y = rng.normal(size=(n, n_out)) if n_classes is None else rng.permutation(np.arange(n) % n_classes)
    if task == "binary" and n_out == 1:
        y = y.reshape(n)
    outputs = (2 * rng.normal(size=(n, n_out))).astype(dtype)
    return outputs, loss.prepare_targets(y, n_out, dtype)


def check_loss(loss: Loss) -> None:
    """On every problem the loss accepts: gradient = finite differences of value, shapes, dtypes, purity."""
    what = f"loss {loss.name!r}"
    problems = [
        (task, n_out, n_cls)
        for task, n_out, n_cls in LOSS_PROBLEMS
        if task in loss.tasks and loss.check_outputs(n_out, task, n_cls) is None
    ]
    if not problems:
        raise AssertionError(f"{what}: accepts none of the test problems {LOSS_PROBLEMS} (check `tasks`)")
    for task, n_out, n_cls in problems:
        where = f"{what} on a {task} problem with {n_out} output(s)"
        outputs, targets = _problem(loss, task, n_out, n_cls, F64)
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
        np.testing.assert_allclose(
            three_value, value, rtol=1e-12, err_msg=f"{where}: value_link_and_per_sample's value"
        )
        np.testing.assert_allclose(
            three_link, link, rtol=1e-12, atol=1e-300, err_msg=f"{where}: value_link_and_per_sample's link"
        )
        if (three_per_sample is None) != (per_sample is None):
            raise AssertionError(f"{where}: value_link_and_per_sample's per-sample losses differ from per_sample()")
        if per_sample is not None and three_per_sample is not None:
            np.testing.assert_allclose(
                three_per_sample, per_sample, rtol=1e-12, err_msg=f"{where}: value_link_and_per_sample's per-sample"
            )
        outputs32, targets32 = _problem(loss, task, n_out, n_cls, F32)
        assert_dtype(f"{where}: prepare_targets", targets32, F32)
        assert_dtype(f"{where}: gradient", loss.gradient(outputs32, targets32), F32)
        if not np.isfinite(loss.value(outputs32, targets32)):
            raise AssertionError(f"{where}: value() is not finite in float32")
