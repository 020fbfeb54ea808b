"""Normalisation layers: `batch_norm` (each feature over the batch) and `layer_norm` (each sample over its features).

Notation for a batch x of n samples (rows) by d features, and the upstream gradient g = dL/dy:

    x̂ = (x − μ)/√(σ² + ε)        the normalised input (μ, σ² per feature for batch_norm, per row for layer_norm)
    y = γ·x̂ + β                  the affine map (γ = 1, β = 0 at the start; none when affine = false)
    dL/dγ = Σ_rows g·x̂,  dL/dβ = Σ_rows g                      (column sums, as matrix-vector products)

When μ and σ² are the statistics of the very values being normalised (batch_norm on batch statistics,
layer_norm), they depend on x too, and with dx̂ = γ·g the chain rule through them gives

    dL/dx = (1/√(σ² + ε))·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂))   (means over what μ averages: the batch, or the row)

When they are fixed (batch_norm on its running statistics) the layer is an affine map per feature, and
dL/dx = γ·g/√(σ² + ε).

The per-batch path writes into arrays kept per batch size (as `Dense` does), so a training step allocates
no array; column sums and means are products with kept vectors of ones (and of 1/n): `np.dot(ones, a)` takes
0.6 µs on a 32 x 64 float32 batch, `np.matmul` 1.0 µs and `a.sum(axis=0)` 2.7 µs (numpy 2.4, one thread).
The evaluation forward calls `framework.functional.normalization`, the very function that the numpy-only
pyfunc loader calls, so a saved model predicts the same bits either way.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
from pydantic import Field

from framework.components import AnyParams, Array, Layer, Params
from framework.functional import constant
from framework.functional.normalization import batch_norm, layer_norm

MAX_CACHED_SIZES = 8
"""Batch sizes whose arrays a layer keeps (the full batches, a last smaller one, evaluation chunks)."""


class _Arrays(NamedTuple):
    """The arrays of one training batch size, allocated once."""

    xhat: Array  # (n, d) x̂, kept from forward for backward
    out: Array  # (n, d) y
    work: Array  # (n, d) scratch of forward and backward
    ones: Array  # (n,) of 1: Σ over the batch as ones @ a
    means: Array  # (n,) of 1/n: the mean over the batch as means @ a
    inv_n: Any  # 1/n as a 0-d array of the dtype
    columns: tuple[Array, ...]  # layer_norm's per-row μ, σ², 1/√(σ² + ε), mean(dx̂), mean(dx̂·x̂), each (n, 1)
    rows: tuple[Array, ...]  # the same five as (n,) views, for np.dot's `out`


class _Normalization(Layer):
    """What both normalisation layers share: γ and β (when affine), their binding, arrays per batch size."""

    needs_input_grad: bool = True

    def __init__(self, params: AnyParams | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.affine: bool = self.params.affine  # type: ignore[attr-defined]
        self.width = 0
        self.dtype: np.dtype[Any] = np.dtype(np.float64)
        self.gamma: Array = np.empty(0)
        self.beta: Array = np.empty(0)
        self.dgamma: Array = np.empty(0)
        self.dbeta: Array = np.empty(0)
        self._eps: Any = 0.0
        self._arrays: dict[int, _Arrays] = {}
        self._last: _Arrays | None = None  # skips the dict lookup for the usual batch size
        self._train: _Arrays | None = None  # the arrays of the last training forward, for backward
        self._outputs: dict[int, Array] = {}  # evaluation's outputs, apart: see `_output_for`

    def build(self, input_dim: int, dtype: np.dtype[Any], rng: np.random.Generator) -> int:
        # No randomness: γ = 1, β = 0 (as Keras and PyTorch), so `rng` is left alone and adding a
        # normalisation layer does not change the other layers' initial weights.
        self.width, self.dtype = input_dim, np.dtype(dtype)
        self.gamma = np.ones(input_dim, dtype=dtype)
        self.beta = np.zeros(input_dim, dtype=dtype)
        self.dgamma = np.zeros(input_dim, dtype=dtype)
        self.dbeta = np.zeros(input_dim, dtype=dtype)
        self._eps = constant(float(self.params.epsilon), self.dtype)  # type: ignore[attr-defined]
        self._arrays.clear()
        self._outputs.clear()
        self._last = self._train = None
        return input_dim

    def _arrays_for(self, n: int) -> _Arrays:
        last = self._last
        if last is not None and last.ones.shape[0] == n:
            return last
        arrays = self._arrays.get(n)
        if arrays is None:
            shape, dtype = (n, self.width), self.dtype
            per_row = np.empty((5, n, 1), dtype)
            arrays = _Arrays(
                xhat=np.empty(shape, dtype),
                out=np.empty(shape, dtype),
                work=np.empty(shape, dtype),
                ones=np.ones(n, dtype),
                means=np.full(n, 1.0 / n, dtype),
                inv_n=constant(1.0 / n, dtype),
                columns=tuple(per_row),  # views made once: a view costs 0.1-0.2 µs per call
                rows=tuple(per_row[:, :, 0]),
            )
            if len(self._arrays) >= MAX_CACHED_SIZES:
                self._arrays.clear()
            self._arrays[n] = arrays
        self._last = arrays
        return arrays

    def _output_for(self, n: int) -> Array:
        # Apart from training's arrays, so that evaluating between a training forward and its backward (from
        # a hook, say) cannot overwrite what backward needs.
        out = self._outputs.get(n)
        if out is None:
            if len(self._outputs) >= MAX_CACHED_SIZES:  # odd evaluation sizes must not grow memory without bound
                self._outputs.clear()
            out = self._outputs[n] = np.empty((n, self.width), self.dtype)
        return out

    def _affine(self, xhat: Array, out: Array) -> Array:
        """y = γ·x̂ + β, or x̂ itself without the affine map (no layer writes into its input)."""
        if not self.affine:
            return xhat
        np.multiply(xhat, self.gamma, out=out)
        out += self.beta
        return out

    def _affine_gradients(self, grad: Array, arrays: _Arrays) -> None:
        """dL/dγ = Σ_rows g·x̂ and dL/dβ = Σ_rows g (nothing to do without the affine map)."""
        if self.affine:
            np.multiply(grad, arrays.xhat, out=arrays.work)
            np.dot(arrays.ones, arrays.work, out=self.dgamma)
            np.dot(arrays.ones, grad, out=self.dbeta)

    def parameters(self) -> list[Array]:
        return [self.gamma, self.beta] if self.affine else []

    def gradients(self) -> list[Array]:
        return [self.dgamma, self.dbeta] if self.affine else []

    def bind(self, params: list[Array], grads: list[Array]) -> bool:
        if self.affine:
            self.gamma, self.beta = params
            self.dgamma, self.dbeta = grads
        return True


class BatchNormParams(Params):
    momentum: float = Field(
        0.99,
        ge=0,
        lt=1,
        description="Weight of the old running statistics: running ← momentum·running + (1 − momentum)·batch "
        "(Keras's convention; PyTorch's momentum m is 1 − m here, so its 0.1 is 0.9).",
    )
    epsilon: float = Field(1e-3, gt=0, description="ε added to the variance under the square root (Keras's 1e-3).")
    affine: bool = Field(True, description="Learn a scale γ and a shift β per feature (y = γ·x̂ + β); false: y = x̂.")
    statistics: Literal["batch", "running"] = Field(
        "batch",
        description="What training normalises with: 'batch', the batch's own mean and variance (which also "
        "update the running statistics); 'running', the running statistics, left unchanged (a frozen layer for "
        "fine-tuning, as Keras's BatchNormalization with trainable = false, except that γ and β still train).",
    )


class BatchNorm(_Normalization):
    """Batch normalisation: y = γ·(x − μ_B)/√(σ²_B + ε) + β per feature, μ_B, σ²_B over the batch in training.

    Training (statistics = "batch"): μ_B is the batch mean and σ²_B the biased batch variance of each feature
    (two passes: the mean of (x − μ_B)²); they update the running statistics (buffers `running_mean`, starting
    at 0, and `running_var`, starting at 1, biased as Keras keeps it) by
    running ← momentum·running + (1 − momentum)·batch, and backward goes through them:
    dL/dx = (γ/√(σ²_B + ε))·(g − mean(g) − x̂·mean(g·x̂)), means over the batch, g = dL/dy.

    Evaluation, and training with statistics = "running": μ, σ² are the running statistics, which training
    then leaves unchanged; the layer is the affine map y = γ·(x − μ)/√(σ² + ε) + β, dL/dx = γ·g/√(σ² + ε).
    Either way dL/dγ = Σ g·x̂ and dL/dβ = Σ g over the batch.

    A training batch of ONE sample (a last partial batch) is normalised with the running statistics and leaves
    them unchanged, as in "running" mode: its own variance is 0, which would map it to β whatever its values,
    pass no gradient to the layers below, and drag the running variance towards 0. (PyTorch raises instead;
    Keras normalises it to β.)
    """

    name: ClassVar[str] = "batch_norm"
    Params: ClassVar[type[Params]] = BatchNormParams
    params: BatchNormParams

    def __init__(self, params: AnyParams | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._batch_statistics = self.params.statistics == "batch"
        self._used_batch = False  # whether the last training forward normalised with the batch's statistics
        self._running: Array = np.empty((2, 0))  # rows: running mean, running variance (one update for both)
        self.running_mean: Array = self._running[0]
        self.running_var: Array = self._running[1]
        self._stats: Array = np.empty((2, 0))  # rows: μ_B, σ²_B of the last training batch
        self._step: Array = np.empty((2, 0))  # (1 − momentum)·batch statistics
        self._inv_std: Array = np.empty(0)  # 1/√(σ² + ε) of the last training forward
        self._scale: Array = np.empty(0)  # γ/√(σ² + ε)
        self._mean_g: Array = np.empty(0)
        self._mean_gx: Array = np.empty(0)
        self._keep: Any = 0.0
        self._take: Any = 0.0

    def build(self, input_dim: int, dtype: np.dtype[Any], rng: np.random.Generator) -> int:
        super().build(input_dim, dtype, rng)
        self._running = np.empty((2, input_dim), dtype=dtype)
        self.running_mean, self.running_var = self._running[0], self._running[1]  # views: `buffers()` is stable
        self.running_mean[...] = 0.0
        self.running_var[...] = 1.0
        self._stats = np.empty((2, input_dim), dtype=dtype)
        self._step = np.empty((2, input_dim), dtype=dtype)
        self._inv_std, self._scale = np.empty(input_dim, dtype=dtype), np.empty(input_dim, dtype=dtype)
        self._mean_g, self._mean_gx = np.empty(input_dim, dtype=dtype), np.empty(input_dim, dtype=dtype)
        self._keep = constant(self.params.momentum, self.dtype)
        self._take = constant(1.0 - self.params.momentum, self.dtype)
        return input_dim

    def buffers(self) -> dict[str, Array]:
        return {"running_mean": self.running_mean, "running_var": self.running_var}

    def forward(self, x: Array, training: bool) -> Array:
        n = x.shape[0]
        if not training:
            gamma, beta = (self.gamma, self.beta) if self.affine else (None, None)
            eps = self.params.epsilon
            return batch_norm(x, self.running_mean, self.running_var, gamma, beta, eps, out=self._output_for(n))
        arrays = self._arrays_for(n)
        xhat, inv_std = arrays.xhat, self._inv_std
        self._used_batch = self._batch_statistics and n > 1  # one sample: its variance is 0 (class docstring)
        if self._used_batch:
            mean, var = self._stats
            np.dot(arrays.means, x, out=mean)  # μ_B = (1/n)·Σ x
            np.subtract(x, mean, out=xhat)  # x − μ_B
            np.multiply(xhat, xhat, out=arrays.work)
            np.dot(arrays.means, arrays.work, out=var)  # σ²_B = (1/n)·Σ (x − μ_B)², biased
            self._update_running()
        else:
            mean, var = self.running_mean, self.running_var
            np.subtract(x, mean, out=xhat)  # x − μ
        np.add(var, self._eps, out=inv_std)
        np.sqrt(inv_std, out=inv_std)
        np.reciprocal(inv_std, out=inv_std)  # 1/√(σ² + ε)
        xhat *= inv_std  # x̂
        self._train = arrays
        return self._affine(xhat, arrays.out)

    def _update_running(self) -> None:
        """running ← momentum·running + (1 − momentum)·batch, for the mean and the variance at once."""
        self._running *= self._keep
        np.multiply(self._stats, self._take, out=self._step)
        self._running += self._step

    def backward(self, grad: Array) -> Array | None:
        arrays = self._train
        assert arrays is not None, "backward() before forward(training=True)"
        self._affine_gradients(grad, arrays)
        if not self.needs_input_grad:
            return None
        scale = np.multiply(self.gamma, self._inv_std, out=self._scale) if self.affine else self._inv_std
        if self._used_batch:
            # Through the batch statistics: dx = γ/σ·(g − mean(g) − x̂·mean(g·x̂)); the caller owns `grad`.
            work, mean_g, mean_gx = arrays.work, self._mean_g, self._mean_gx
            if self.affine:  # the parameter gradients are the sums already: Σ g = dL/dβ, Σ g·x̂ = dL/dγ
                np.multiply(self.dbeta, arrays.inv_n, out=mean_g)
                np.multiply(self.dgamma, arrays.inv_n, out=mean_gx)
            else:
                np.dot(arrays.means, grad, out=mean_g)  # mean(g)
                np.multiply(grad, arrays.xhat, out=work)
                np.dot(arrays.means, work, out=mean_gx)  # mean(g·x̂)
            np.multiply(arrays.xhat, mean_gx, out=work)  # x̂·mean(g·x̂)
            grad -= work
            grad -= mean_g
        grad *= scale  # dx = γ/σ·(...), or γ/σ·g for fixed statistics
        return grad


class LayerNormParams(Params):
    epsilon: float = Field(1e-5, gt=0, description="ε added to each row's variance under the square root.")
    affine: bool = Field(True, description="Learn a scale γ and a shift β per feature (y = γ·x̂ + β); false: y = x̂.")


class LayerNorm(_Normalization):
    """Layer normalisation: y = γ·(x − μ_row)/√(σ²_row + ε) + β, each sample over its own features.

    μ_row and σ²_row are the mean and the biased variance of the sample's d features, in training and in
    evaluation alike (no running statistics, no dependence on the batch). Backward, per row, with dx̂ = γ·g:
    dL/dx = (1/√(σ²_row + ε))·(dx̂ − mean_row(dx̂) − x̂·mean_row(dx̂·x̂)); dL/dγ = Σ g·x̂, dL/dβ = Σ g over
    the batch.
    """

    name: ClassVar[str] = "layer_norm"
    Params: ClassVar[type[Params]] = LayerNormParams
    params: LayerNormParams

    def __init__(self, params: AnyParams | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._row_means: Array = np.empty(0)  # (d,) of 1/d: the mean of each row as a @ row_means

    def build(self, input_dim: int, dtype: np.dtype[Any], rng: np.random.Generator) -> int:
        super().build(input_dim, dtype, rng)
        self._row_means = np.full(input_dim, 1.0 / input_dim, dtype=dtype)
        return input_dim

    def forward(self, x: Array, training: bool) -> Array:
        if not training:
            gamma, beta = (self.gamma, self.beta) if self.affine else (None, None)
            return layer_norm(x, gamma, beta, self.params.epsilon, out=self._output_for(x.shape[0]))
        arrays = self._arrays_for(x.shape[0])
        xhat, work = arrays.xhat, arrays.work
        (mean, var, inv_std, _, _), rows = arrays.columns, arrays.rows
        np.dot(x, self._row_means, out=rows[0])  # μ_row = (1/d)·Σ_j x_j
        np.subtract(x, mean, out=xhat)  # x − μ_row
        np.multiply(xhat, xhat, out=work)
        np.dot(work, self._row_means, out=rows[1])  # σ²_row, biased
        np.add(var, self._eps, out=inv_std)
        np.sqrt(inv_std, out=inv_std)
        np.reciprocal(inv_std, out=inv_std)  # 1/√(σ²_row + ε)
        xhat *= inv_std  # x̂
        self._train = arrays
        return self._affine(xhat, arrays.out)

    def backward(self, grad: Array) -> Array | None:
        arrays = self._train
        assert arrays is not None, "backward() before forward(training=True)"
        self._affine_gradients(grad, arrays)
        if not self.needs_input_grad:
            return None
        xhat, work = arrays.xhat, arrays.work
        (_, _, inv_std, mean_g, mean_gx), rows = arrays.columns, arrays.rows
        if self.affine:
            grad *= self.gamma  # dx̂ = γ·g (the caller owns `grad`)
        np.dot(grad, self._row_means, out=rows[3])  # mean_row(dx̂)
        np.multiply(grad, xhat, out=work)
        np.dot(work, self._row_means, out=rows[4])  # mean_row(dx̂·x̂)
        np.multiply(xhat, mean_gx, out=work)  # x̂·mean_row(dx̂·x̂)
        grad -= work
        grad -= mean_g
        grad *= inv_std  # dx = (dx̂ − mean_row(dx̂) − x̂·mean_row(dx̂·x̂))/√(σ²_row + ε)
        return grad
