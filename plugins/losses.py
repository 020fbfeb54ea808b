"""The built-in losses: mse, binary_cross_entropy and cross_entropy.

The classification losses take logits and fuse their link (sigmoid, softmax) into the loss, which keeps
them finite for any logits and makes the gradient the simple (prediction - target) / n.

`gradient()` runs once per batch, so it writes into a buffer kept on the loss for each (shape, dtype); the
returned array is overwritten by the next `gradient()` call of the same shape (the caller may modify it in
place, as the model's backward pass does). `value()` never touches that buffer.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from framework.components import Array, Loss, Params, Task
from framework.markers import hookimpl
from plugins.activations import constant, sigmoid


class _BufferedLoss(Loss):
    """A loss whose gradient is written into a buffer reused across batches of the same shape."""

    def __init__(self, params: Params | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._buffers: dict[tuple[tuple[int, ...], np.dtype[Any]], Array] = {}
        self._last: Array | None = None

    def _buffer(self, like: Array) -> Array:
        last = self._last
        if last is not None and last.shape == like.shape and last.dtype == like.dtype:
            return last  # once per batch: skip the dict for the common case of a repeated batch shape
        key = (like.shape, like.dtype)
        buf = self._buffers.get(key)
        if buf is None:
            if len(self._buffers) > 8:  # evaluation on odd sizes must not grow memory without bound
                self._buffers.clear()
            buf = self._buffers[key] = np.empty_like(like)
        self._last = buf
        return buf


def _check_shapes(loss: Loss, outputs: Array, targets: Array) -> None:
    # Broadcasting (n, k) against (n, 1) would give a wrong loss silently.
    if outputs.shape != targets.shape:
        raise ValueError(
            f"{loss.name}: outputs {outputs.shape} and targets {targets.shape} differ in shape; "
            "help: targets must come from the loss's prepare_targets()"
        )


class MSE(_BufferedLoss):
    """L = mean over all n·k elements of (o - t)^2; dL/do = 2 (o - t) / (n·k)."""

    name: ClassVar[str] = "mse"
    # A multiclass model would need one-hot targets, which prepare_targets cannot build without the task.
    tasks: ClassVar[tuple[Task, ...]] = ("regression", "binary")

    def value(self, outputs: Array, targets: Array) -> float:
        _check_shapes(self, outputs, targets)
        diff = np.subtract(outputs, targets)  # o - t
        # mean of (o - t)^2: vdot flattens without the ravel() call (0.3 µs of a 1.3 µs call at W1's size)
        return float(np.vdot(diff, diff)) / diff.size if diff.size else float("nan")

    def per_sample(self, outputs: Array, targets: Array) -> Array:
        _check_shapes(self, outputs, targets)
        diff = np.subtract(outputs, targets)
        return np.asarray(np.square(diff, out=diff).mean(axis=1))  # each row's mean of (o - t)^2

    def gradient(self, outputs: Array, targets: Array) -> Array:
        _check_shapes(self, outputs, targets)
        grad = np.subtract(outputs, targets, out=self._buffer(outputs))  # o - t
        grad *= constant(2 / outputs.size, grad.dtype)  # d/do of the mean of squares
        return grad

    def prepare_targets(self, y: Array, n_outputs: int, dtype: np.dtype[Any]) -> Array:
        targets = super().prepare_targets(y, n_outputs, dtype)
        if targets.shape[1] != n_outputs:
            raise ValueError(
                f"mse: the targets have {targets.shape[1]} column(s), the model has {n_outputs} output(s); "
                f"help: set the last layer's units = {targets.shape[1]}"
            )
        return targets

    def check_outputs(self, n_outputs: int, task: Task, n_classes: int | None) -> str | None:
        if task == "binary" and n_outputs != 1:
            return f"mse on a binary task compares one output with the 0/1 label, the model has {n_outputs}"
        return None


class BinaryCrossEntropy(_BufferedLoss):
    """L = mean of -[t log σ(o) + (1-t) log(1-σ(o))] = softplus(o) - t·o on logits o; dL/do = (σ(o) - t)/n."""

    name: ClassVar[str] = "binary_cross_entropy"
    tasks: ClassVar[tuple[Task, ...]] = ("binary",)

    def value(self, outputs: Array, targets: Array) -> float:
        _check_shapes(self, outputs, targets)
        # softplus(o) = log(1 + e^o) = logaddexp(0, o), finite for any o.
        per_sample = np.logaddexp(0, outputs) - targets * outputs
        return float(np.mean(per_sample))

    def per_sample(self, outputs: Array, targets: Array) -> Array:
        _check_shapes(self, outputs, targets)
        return np.asarray((np.logaddexp(0, outputs) - targets * outputs)[:, 0])

    def gradient(self, outputs: Array, targets: Array) -> Array:
        _check_shapes(self, outputs, targets)
        grad = sigmoid(outputs, out=self._buffer(outputs))  # σ(o), the fused link
        grad -= targets  # σ(o) - t
        grad *= constant(1 / outputs.shape[0], grad.dtype)  # the 1/n of the mean over samples
        return grad

    def link(self, outputs: Array) -> Array:
        return sigmoid(outputs)

    def prepare_targets(self, y: Array, n_outputs: int, dtype: np.dtype[Any]) -> Array:
        targets = super().prepare_targets(y, n_outputs, dtype)
        if targets.shape[1] != 1 or np.any((targets < 0) | (targets > 1)):
            raise ValueError(
                "binary_cross_entropy: targets must be one column of labels in [0, 1]; "
                "help: for more than two classes use cross_entropy"
            )
        return targets

    def check_outputs(self, n_outputs: int, task: Task, n_classes: int | None) -> str | None:
        if n_outputs != 1:
            return (
                f"binary_cross_entropy needs exactly 1 output (the logit of class 1), the model has "
                f"{n_outputs}; help: set the last layer's units = 1, or use cross_entropy"
            )
        return None


def row_max(a: Array) -> Array:
    """The maximum of each row, as a column (n, 1).

    numpy reduces along a short contiguous axis slowly (about 80 µs for 1797 x 10); reducing a transposed
    copy along its first axis gives the same values about 7 times faster.
    """
    return np.ascontiguousarray(a.T).max(axis=0)[:, None]


_ONES: dict[tuple[int, np.dtype[Any]], Array] = {}


def row_sum(a: Array) -> Array:
    """The sum of each row, as a column (n, 1): a matrix-vector product, 3-6 times faster than sum(axis=1).

    The vector of ones is kept per width and dtype: allocating it was half the cost on a 32 x 10 batch
    (2.3 µs against 1.0 µs with a kept one).
    """
    key = (a.shape[1], a.dtype)
    ones = _ONES.get(key)
    if ones is None:
        if len(_ONES) > 64:
            _ONES.clear()
        ones = _ONES[key] = np.ones(a.shape[1], dtype=a.dtype)
        ones.flags.writeable = False
    return (a @ ones)[:, None]


def softmax(outputs: Array, out: Array | None = None) -> Array:
    """Row-wise softmax(o)_j = e^(o_j - max o) / Σ_i e^(o_i - max o); the shift keeps e^x <= 1."""
    out = np.subtract(outputs, row_max(outputs), out=out)  # o - max o (may alias)
    np.exp(out, out=out)
    out /= row_sum(out)
    return out


class CrossEntropy(_BufferedLoss):
    """L = mean over samples of -Σ_j t_j log softmax(o)_j on logits o; dL/do = (softmax(o) - t) / n."""

    name: ClassVar[str] = "cross_entropy"
    tasks: ClassVar[tuple[Task, ...]] = ("binary", "multiclass")

    def value(self, outputs: Array, targets: Array) -> float:
        return self._value(outputs, targets)[0]

    def value_and_link(self, outputs: Array, targets: Array) -> tuple[float, Array]:
        """`value(outputs, targets)` and `link(outputs)` at once, the same numbers as the two calls.

        They share the row maxima, e^s and its row sums, so the trainer's per-epoch loss and metrics (which
        need both) cost 50 µs instead of 90 on W2's 1797 x 10 outputs. The trainer uses this method when a
        loss has it.
        """
        value, exp_shifted, sums, _ = self._value(outputs, targets)
        exp_shifted /= sums  # softmax(o), as `softmax` computes it
        return value, exp_shifted

    def per_sample(self, outputs: Array, targets: Array) -> Array:
        _check_shapes(self, outputs, targets)
        shifted = outputs - row_max(outputs)
        # log Σ_j e^(s_j) · Σ_j t_j - Σ_j t_j s_j, row by row (the terms of `value`'s sum)
        log_sum = np.log(row_sum(np.exp(shifted)))[:, 0]
        return np.asarray(log_sum * row_sum(targets)[:, 0] - row_sum(targets * shifted)[:, 0])

    def value_link_and_per_sample(self, outputs: Array, targets: Array) -> tuple[float, Array, Array]:
        """The three from one softmax: per-step logging gets each sample's loss for ~15 µs more than
        `value_and_link` on digits' 1437 x 10 outputs, instead of ~60 µs for a `per_sample` call."""
        value, exp_shifted, sums, per_sample = self._value(outputs, targets, per_sample=True)
        exp_shifted /= sums
        assert per_sample is not None
        return value, exp_shifted, per_sample

    def _value(
        self, outputs: Array, targets: Array, per_sample: bool = False
    ) -> tuple[float, Array, Array, Array | None]:
        """The loss, e^s with s = o - max o (a new array), its row sums (n, 1), and (if asked) each row's loss,
        the same numbers as `per_sample`."""
        _check_shapes(self, outputs, targets)
        shifted = outputs - row_max(outputs)  # s = o - max o: e^s cannot overflow
        # -Σ_j t_j log softmax(s)_j = (Σ_j t_j) log Σ_j e^(s_j) - Σ_j t_j s_j, computed without the full
        # log-softmax array: this runs on the whole epoch's outputs, once per epoch. vdot rather than einsum
        # for Σ t·s and e^s in place: 41 µs against 48 on W2's 1797 x 10 outputs.
        picked = np.vdot(targets, shifted)
        picked_rows = row_sum(targets * shifted)[:, 0] if per_sample else None
        exp_shifted = np.exp(shifted, out=shifted)
        sums = row_sum(exp_shifted)
        log_sum = np.log(sums)[:, 0]
        mass = row_sum(targets)[:, 0]  # 1 for one-hot (or probability) rows
        rows = None if picked_rows is None else log_sum * mass - picked_rows
        return float((log_sum @ mass - picked) / outputs.shape[0]), exp_shifted, sums, rows

    def gradient(self, outputs: Array, targets: Array) -> Array:
        _check_shapes(self, outputs, targets)
        grad = softmax(outputs, out=self._buffer(outputs))  # softmax(o), the fused link
        grad -= targets  # softmax(o) - t
        grad *= constant(1 / outputs.shape[0], grad.dtype)  # the 1/n of the mean over samples
        return grad

    def link(self, outputs: Array) -> Array:
        return softmax(outputs)

    def prepare_targets(self, y: Array, n_outputs: int, dtype: np.dtype[Any]) -> Array:
        """One-hot rows (n, n_outputs) from integer class labels of shape (n,) or (n, 1)."""
        labels = np.asarray(y)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if labels.ndim != 1 or np.any(labels != np.round(labels)):
            raise ValueError(
                f"cross_entropy: targets must be integer class labels of shape (n,), got shape {labels.shape}"
            )
        if len(labels) and (labels.min() < 0 or labels.max() >= n_outputs):
            raise ValueError(
                f"cross_entropy: labels must lie in 0..{n_outputs - 1} for {n_outputs} outputs, found "
                f"{labels.min():g}..{labels.max():g}; help: the last layer needs one unit per class"
            )
        targets = np.zeros((len(labels), n_outputs), dtype=dtype)
        targets[np.arange(len(labels)), labels.astype(np.intp)] = 1
        return targets

    def check_outputs(self, n_outputs: int, task: Task, n_classes: int | None) -> str | None:
        if n_classes is None:
            return "cross_entropy needs class labels (a binary or multiclass dataset)"
        if n_outputs != n_classes:
            return (
                f"cross_entropy needs one output per class ({n_classes}), the model has {n_outputs}; "
                f"help: set the last layer's units = {n_classes}"
            )
        return None


@hookimpl
def register_losses() -> list[type[Loss]]:
    return [MSE, BinaryCrossEntropy, CrossEntropy]
