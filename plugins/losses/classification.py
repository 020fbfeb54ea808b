"""Classification losses on logits: binary_cross_entropy and cross_entropy, with label smoothing and class weights.

They fuse their link (sigmoid, softmax) into the loss, which keeps them finite for any logits and makes the
gradient the simple (prediction - target) / n.

Label smoothing changes the targets only (t' = (1 - ε)·t + ε/k), so `prepare_targets` applies it once and
the per-batch formulas stay the unsmoothed ones: they already take any target row, not only one-hot ones.
Class weights w_j enter the loss itself (PyTorch's `weight`, with the mean over samples as the normaliser,
so that the mean of `per_sample` stays `value`); the weighted formulas run only when `class_weight` is set,
and the unweighted path is the one that ran before these options existed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from framework.components import AnyParams, Array, Params, Task
from framework.functional import constant, row_max, row_sum, sigmoid, softmax
from framework.functional.links import logistic, probabilities
from plugins.losses.base import BufferedLoss, binary_column, check_shapes, one_hot
from plugins.losses.weights import CLASS_WEIGHT_HELP, ClassWeight, class_weights

CLASS_WEIGHT_KEY = "loss.class_weight"


class WeightedParams(Params):
    label_smoothing: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="ε: train on the smoothed targets (1 - ε)·t + ε/k, k the number of classes (0: none).",
    )
    class_weight: ClassWeight = Field(None, description=CLASS_WEIGHT_HELP)


class WeightedLoss(BufferedLoss):
    """What the two cross entropies share: the class weights, learnt once in `adapt`."""

    Params: ClassVar[type[Params]] = WeightedParams
    params: WeightedParams

    def __init__(self, params: AnyParams | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._weights: Array | None = None  # float64 (k,), set by `adapt` (or from an index table)
        self._typed: dict[np.dtype[Any], Array] = {}  # the same in each dtype seen, for the per-batch path

    def adapt(self, y: Array, task: Task, classes: Sequence[str]) -> None:
        """Resolve `class_weight` against the dataset's class names (and count them for "balanced")."""
        self._weights = class_weights(self.params.class_weight, y, classes, CLASS_WEIGHT_KEY)
        self._typed = {}

    @property
    def class_weights(self) -> Array | None:
        """The weight of each class (float64, label i at index i) once resolved (by `adapt`), else None."""
        return None if self._weights is None else self._weights.copy()

    def _class_weights(self, k: int, dtype: np.dtype[Any]) -> Array:
        """The (k,) class weights in `dtype`; without `adapt`, only a table keyed by index can be read."""
        typed = self._typed.get(dtype)
        if typed is not None and len(typed) == k:
            return typed
        if self._weights is None:
            spec = self.params.class_weight
            fix = "help: call loss.adapt(y_train, task, classes) first"
            if spec == "balanced":
                raise ValueError(
                    f"{self.name}: class_weight = 'balanced' is counted on the training split by adapt(), which "
                    f"was not called; {fix}"
                )
            names = sorted(set(spec or {}) - {str(i) for i in range(k)})
            if names:
                raise ValueError(
                    f"{self.name}: class_weight key {names[0]!r} is not a class index 0..{k - 1}, and the class "
                    f"names come from adapt(), which was not called; {fix}"
                )
            self._weights = class_weights(spec, None, [str(i) for i in range(k)], CLASS_WEIGHT_KEY)
        assert self._weights is not None
        if len(self._weights) != k:
            raise ValueError(
                f"{self.name}: class_weight gives {len(self._weights)} weights, the targets have {k} classes"
            )
        typed = self._typed[dtype] = self._weights.astype(dtype)
        typed.flags.writeable = False
        return typed


class BinaryCrossEntropy(WeightedLoss):
    """L = mean of -[t log σ(o) + (1-t) log(1-σ(o))] = softplus(o) - t·o on logits o; dL/do = (σ(o) - t)/n.

    With `label_smoothing` ε the targets are t' = t(1 - ε) + ε/2. With `class_weight` (w₀, w₁ for classes 0
    and 1), L_i = -[w₁ t' log σ(o) + w₀ (1 - t') log(1 - σ(o))] = m·softplus(o) - w₁ t'·o with the row mass
    m = w₁ t' + w₀ (1 - t'), and dL/do = (m·σ(o) - w₁ t') / n.
    """

    name: ClassVar[str] = "binary_cross_entropy"
    tasks: ClassVar[tuple[Task, ...]] = ("binary",)

    def value(self, outputs: Array, targets: Array) -> float:
        if self.params.class_weight is not None:
            return float(np.mean(self.per_sample(outputs, targets)))
        check_shapes(self, outputs, targets)
        # softplus(o) = log(1 + e^o) = logaddexp(0, o), finite for any o.
        per_sample = np.logaddexp(0, outputs) - targets * outputs
        return float(np.mean(per_sample))

    def per_sample(self, outputs: Array, targets: Array) -> Array:
        check_shapes(self, outputs, targets)
        if self.params.class_weight is not None:
            w0, w1 = self._class_weights(2, outputs.dtype)
            mass = targets * (w1 - w0) + w0  # the row mass m = w₁ t' + w₀ (1 - t')
            return np.asarray((mass * np.logaddexp(0, outputs) - (w1 * targets) * outputs)[:, 0])
        return np.asarray((np.logaddexp(0, outputs) - targets * outputs)[:, 0])

    def gradient(self, outputs: Array, targets: Array) -> Array:
        check_shapes(self, outputs, targets)
        grad = sigmoid(outputs, out=self._buffer(outputs))  # σ(o), the fused link
        if self.params.class_weight is not None:
            return self._weighted_gradient(grad, targets)
        grad -= targets  # σ(o) - t
        grad *= constant(1 / outputs.shape[0], grad.dtype)  # the 1/n of the mean over samples
        return grad

    def _weighted_gradient(self, grad: Array, targets: Array) -> Array:
        dtype = grad.dtype
        w0, w1 = (float(w) for w in self._class_weights(2, dtype))
        (work,) = self._scratch(grad.shape, dtype, 1)
        np.multiply(targets, constant(w1 - w0, dtype), out=work)
        work += constant(w0, dtype)  # the row mass m = w₁ t' + w₀ (1 - t')
        grad *= work  # m·σ(o)
        np.multiply(targets, constant(w1, dtype), out=work)
        grad -= work  # m·σ(o) - w₁ t'
        grad *= constant(1 / grad.shape[0], dtype)
        return grad

    def link(self, outputs: Array) -> Array:
        return logistic(outputs)

    def prepare_targets(self, y: Array, n_outputs: int, dtype: np.dtype[Any]) -> Array:
        targets = binary_column(self.name, y, dtype)
        if self.params.class_weight is not None:
            self._class_weights(2, dtype)  # a table that cannot be read fails here, before training
        eps = self.params.label_smoothing
        if eps:
            # in float64, then one rounding to the dtype
            return np.asarray(np.asarray(targets, np.float64) * (1 - eps) + eps / 2, dtype=dtype)
        return targets

    def check_outputs(self, n_outputs: int, task: Task, n_classes: int | None) -> str | None:
        if n_outputs != 1:
            return (
                f"binary_cross_entropy needs exactly 1 output (the logit of class 1), the model has "
                f"{n_outputs}; help: set the last layer's units = 1, or use cross_entropy"
            )
        return None


def softmax_cross_entropy(outputs: Array, targets: Array, per_sample: bool) -> tuple[float, Array, Array, Array | None]:
    """-Σ_j t_j log softmax(o)_j averaged over the rows, for any non-negative target rows t.

    Returns the mean loss, e^s with s = o - max o (a new array), its row sums (n, 1), and (if asked) each
    row's loss. The rows need not sum to 1: a row's term is (Σ_j t_j) log Σ_j e^(s_j) - Σ_j t_j s_j.
    """
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


class CrossEntropy(WeightedLoss):
    """L = mean over samples of -Σ_j t_j log softmax(o)_j on logits o; dL/do = (softmax(o) - t) / n.

    With `label_smoothing` ε the targets are t' = (1 - ε)·t + ε/k for k classes. With `class_weight` w,
    L_i = -Σ_j w_j t'_ij log softmax(o)_ij and dL/do_i = (s_i·softmax(o)_i - w ⊙ t'_i) / n, where
    s_i = Σ_j w_j t'_ij (PyTorch's weighted cross entropy, divided by n rather than by Σ_i s_i).
    """

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
        check_shapes(self, outputs, targets)
        targets = self._weighted_targets(targets)
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

    def _weighted_targets(self, targets: Array) -> Array:
        # -Σ_j w_j t_j log p_j is the unweighted formula on the rows w ⊙ t (their mass is s_i, not 1).
        if self.params.class_weight is None:
            return targets
        return targets * self._class_weights(targets.shape[1], targets.dtype)

    def _value(
        self, outputs: Array, targets: Array, per_sample: bool = False
    ) -> tuple[float, Array, Array, Array | None]:
        """The loss, e^s with s = o - max o (a new array), its row sums (n, 1), and (if asked) each row's loss,
        the same numbers as `per_sample`."""
        check_shapes(self, outputs, targets)
        return softmax_cross_entropy(outputs, self._weighted_targets(targets), per_sample)

    def gradient(self, outputs: Array, targets: Array) -> Array:
        check_shapes(self, outputs, targets)
        grad = softmax(outputs, out=self._buffer(outputs))  # softmax(o), the fused link
        if self.params.class_weight is not None:
            return self._weighted_gradient(grad, targets)
        grad -= targets  # softmax(o) - t
        grad *= constant(1 / outputs.shape[0], grad.dtype)  # the 1/n of the mean over samples
        return grad

    def _weighted_gradient(self, grad: Array, targets: Array) -> Array:
        n, k = grad.shape
        weights = self._class_weights(k, grad.dtype)
        (mass,) = self._scratch((n,), grad.dtype, 1)
        (work,) = self._scratch(grad.shape, grad.dtype, 1)
        np.matmul(targets, weights, out=mass)  # s_i = Σ_j w_j t'_ij
        grad *= mass[:, None]  # s_i·softmax(o)_i
        np.multiply(targets, weights, out=work)
        grad -= work  # s_i·softmax(o)_i - w ⊙ t'_i
        grad *= constant(1 / n, grad.dtype)
        return grad

    def link(self, outputs: Array) -> Array:
        return probabilities(outputs)

    def prepare_targets(self, y: Array, n_outputs: int, dtype: np.dtype[Any]) -> Array:
        """One-hot rows (n, n_outputs) from integer class labels of shape (n,) or (n, 1), smoothed if asked."""
        eps = self.params.label_smoothing
        if self.params.class_weight is not None:
            self._class_weights(n_outputs, dtype)  # a table that cannot be read fails here, before training
        if not eps:
            return one_hot(self.name, y, n_outputs, dtype)
        targets = one_hot(self.name, y, n_outputs, np.dtype(np.float64))
        return np.asarray(targets * (1 - eps) + eps / n_outputs, dtype=dtype)  # one rounding to the dtype

    def check_outputs(self, n_outputs: int, task: Task, n_classes: int | None) -> str | None:
        if n_classes is None:
            return "cross_entropy needs class labels (a binary or multiclass dataset)"
        if n_outputs != n_classes:
            return (
                f"cross_entropy needs one output per class ({n_classes}), the model has {n_outputs}; "
                f"help: set the last layer's units = {n_classes}"
            )
        return None
