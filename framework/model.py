"""The Dense layer and the sequential model, with explicit, vectorised forward and backward passes.

Notation for one Dense layer on a batch of n samples (rows):

    z = x @ W + b          (n, out)   the affine map
    a = f(z)               (n, out)   the activation

and, given the upstream gradient dL/da:

    dL/dz = f'(z) * dL/da            activation backward (element-wise)
    dL/dW = x.T @ dL/dz              (in, out)
    dL/db = 1.T @ dL/dz              (out,)   the column sums, as a matrix product (faster than .sum)
    dL/dx = dL/dz @ W.T              (n, in)  passed to the layer below

The per-batch path writes into buffers allocated once per batch size, so a training step allocates almost
nothing (see docs/how-it-works.md).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from framework.components import Activation, AnyParams, Array, Layer, Params


class DenseParams(Params):
    units: int = Field(ge=1, description="Number of output units.")
    activation: str = Field("identity", description="Name of a registered activation.")
    use_bias: bool = Field(True, description="Add a learned bias to each unit.")
    init: Literal["auto", "glorot", "he", "normal"] = Field(
        "auto",
        description="Weight initialiser: glorot (uniform), he (normal), normal (std 0.01); "
        "auto picks he for relu-like activations and glorot otherwise. Biases start at zero.",
    )


class Dense(Layer):
    """A fully connected layer followed by an activation: a = f(x @ W + b).

    `forward(x, training=True)` keeps references to x, z and a for `backward`; its output buffers are
    reused for the next batch of the same size, so an inference pass of that size between a training
    forward and its backward would overwrite them (the trainer never does that).
    """

    name: ClassVar[str] = "dense"
    Params: ClassVar[type[Params]] = DenseParams
    params: DenseParams

    def __init__(self, params: AnyParams | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.activation: Activation | None = None
        self.W: Array = np.empty((0, 0))
        self.b: Array = np.empty(0)
        self.dW: Array = np.empty((0, 0))
        self.db: Array = np.empty(0)
        self._buffers: dict[tuple[int, bool], tuple[Array, Array, Array, Array]] = {}
        self._last: tuple[int, bool, tuple[Array, Array, Array, Array]] | None = None  # skips the dict lookup
        self._identity = True
        self._use_bias = self.params.use_bias
        self._x: Array | None = None
        self._z: Array | None = None
        self._a: Array | None = None
        self._n = 0
        self._train_bufs: tuple[Array, Array, Array, Array] | None = None  # the training forward's buffers

    def set_activation(self, activation: Activation) -> None:
        self.activation = activation
        self._identity = activation.is_identity

    def build(self, input_dim: int, dtype: np.dtype[Any], rng: np.random.Generator) -> int:
        units = self.params.units
        init = self.params.init
        if init == "auto":
            init = "he" if self.params.activation in {"relu", "leaky_relu"} else "glorot"
        if init == "glorot":
            limit = math.sqrt(6.0 / (input_dim + units))
            W = rng.uniform(-limit, limit, size=(input_dim, units))
        elif init == "he":
            W = rng.normal(0.0, math.sqrt(2.0 / input_dim), size=(input_dim, units))
        else:
            W = rng.normal(0.0, 0.01, size=(input_dim, units))
        self.W = np.ascontiguousarray(W, dtype=dtype)
        self.b = np.zeros(units, dtype=dtype)
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)
        self._buffers.clear()
        self._last = None
        return units

    def _buffers_for(self, n: int, training: bool = True) -> tuple[Array, Array, Array, Array]:
        # One set of buffers per batch size (the full batches and, at most, one smaller last batch), and
        # separate ones for inference, so that evaluating between a training forward and its backward
        # (from a hook, say) cannot overwrite what backward needs.
        last = self._last
        if last is not None and last[0] == n and last[1] is training:
            return last[2]
        bufs = self._buffers.get((n, training))
        if bufs is None:
            dtype = self.W.dtype
            units, inputs = self.params.units, self.W.shape[0]
            z = np.empty((n, units), dtype=dtype)
            a = z if self._is_identity() else np.empty((n, units), dtype=dtype)
            dx = np.empty((n, inputs), dtype=dtype)
            ones = np.ones(n, dtype=dtype)
            bufs = (z, a, dx, ones)
            if len(self._buffers) > 8:  # evaluation on odd sizes must not grow memory without bound
                for key in [k for k in self._buffers if not k[1]]:
                    del self._buffers[key]
            self._buffers[(n, training)] = bufs
        self._last = (n, training, bufs)
        return bufs

    def _is_identity(self) -> bool:
        return self._identity

    def forward(self, x: Array, training: bool) -> Array:
        n, last = x.shape[0], self._last
        # The common case (same batch size and mode as the last call) inline: a method call is 0.1-0.2 µs, and
        # a small model's whole step is 20 µs.
        bufs = last[2] if last is not None and last[0] == n and last[1] is training else self._buffers_for(n, training)
        z, a = bufs[0], bufs[1]
        np.matmul(x, self.W, out=z)  # z = x @ W
        if self._use_bias:
            z += self.b  # + b, broadcast over rows
        if not self._identity:
            a = self.activation.forward(z, out=a)  # type: ignore[union-attr]  # a = f(z)
        if training:
            self._x, self._z, self._a, self._n, self._train_bufs = x, z, a, n, bufs
        return a

    def backward(self, grad: Array) -> Array | None:
        x, z, a, bufs = self._x, self._z, self._a, self._train_bufs
        assert x is not None and z is not None and a is not None and bufs is not None, (
            "backward() before forward(training=True)"
        )
        _, _, dx, ones = bufs
        # dL/dz = f'(z) * dL/da (the activation may reuse `grad`'s memory).
        dz = grad if self._identity else self.activation.backward(z, a, grad)  # type: ignore[union-attr]
        np.matmul(x.T, dz, out=self.dW)  # dL/dW = x.T @ dL/dz
        if self._use_bias:
            np.matmul(ones, dz, out=self.db)  # dL/db = column sums of dL/dz
        if not self.needs_input_grad:
            return None
        np.matmul(dz, self.W.T, out=dx)  # dL/dx = dL/dz @ W.T
        return dx

    def parameters(self) -> list[Array]:
        return [self.W, self.b] if self.params.use_bias else [self.W]

    def gradients(self) -> list[Array]:
        return [self.dW, self.db] if self.params.use_bias else [self.dW]

    def bind(self, params: list[Array], grads: list[Array]) -> bool:
        if self.params.use_bias:
            self.W, self.b = params
            self.dW, self.db = grads
        else:
            (self.W,), (self.dW,) = params, grads
        return True

    @property
    def output_dim(self) -> int:
        return self.params.units


class Standardizer:
    """Feature scaling fitted on the training split: x' = (x - mean) / scale."""

    def __init__(self, mean: Array, scale: Array) -> None:
        self.mean = mean
        self.scale = scale

    @classmethod
    def fit(cls, X: Array) -> Standardizer:
        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[scale == 0] = 1.0  # a constant feature is left centred, not divided by zero
        return cls(mean, scale)

    def transform(self, X: Array) -> Array:
        return ((X - self.mean) / self.scale).astype(X.dtype, copy=False)

    def inverse_transform(self, X: Array) -> Array:
        """x = x' * scale + mean: back to the original units (regression targets)."""
        return (X * self.scale + self.mean).astype(X.dtype, copy=False)


class Model:
    """A stack of layers applied in order, with the preprocessing and link that predictions need.

    `forward`/`backward` are the training path on preprocessed data; `predict` takes raw features, applies
    the stored standardisation, runs the layers in inference mode and applies the loss's link (so it returns
    probabilities for classification).
    """

    def __init__(
        self,
        layers: list[Layer],
        input_dim: int,
        dtype: np.dtype[Any],
        preprocess: Standardizer | None = None,
        link: Any = None,
    ) -> None:
        self.layers = layers
        self.input_dim = input_dim
        self.dtype = dtype
        self.preprocess = preprocess
        self.link = link
        self.target_scaler: Standardizer | None = None
        """Set when the regression targets were standardised (`data.standardize_target`): predictions are
        mapped back to the targets' units with it."""
        self.loss_spec: dict[str, Any] | None = None
        """The loss's name and params: saved with the model so that loading restores the link."""
        self.feature_names: list[str] = []
        self.target_names: list[str] = []
        self.task: str | None = None
        self._params: list[Array] = []
        self._grads: list[Array] = []
        self.flat_parameters: Array | None = None
        self.flat_gradients: Array | None = None
        self._reversed = list(reversed(layers))
        self._make_flat()
        self.refresh()

    def _make_flat(self) -> None:
        """Move every parameter (and gradient) into one contiguous buffer, the layers keeping views of it.

        An element-wise optimiser then updates the whole model with a few numpy calls instead of a few per
        array: for small models the per-call overhead is most of a step (research/performance.md).
        """
        per_layer = [(layer, layer.parameters()) for layer in self.layers]
        total = sum(p.size for _, params in per_layer for p in params)
        if total == 0:
            return
        flat_p = np.empty(total, dtype=self.dtype)
        flat_g = np.zeros(total, dtype=self.dtype)
        offset = 0
        bound: list[tuple[Layer, list[Array], list[Array]]] = []
        for layer, params in per_layer:
            p_views, g_views = [], []
            for p in params:
                p_view = flat_p[offset : offset + p.size].reshape(p.shape)
                p_view[...] = p
                p_views.append(p_view)
                g_views.append(flat_g[offset : offset + p.size].reshape(p.shape))
                offset += p.size
            bound.append((layer, p_views, g_views))
        for layer, p_views, g_views in bound:
            if p_views and not layer.bind(p_views, g_views):
                return  # a layer keeps its own arrays: no flat view of the whole model
        self.flat_parameters, self.flat_gradients = flat_p, flat_g

    def refresh(self) -> None:
        """Recollect the parameter and gradient lists (after layers replaced their arrays)."""
        self._params = [p for layer in self.layers for p in layer.parameters()]
        self._grads = [g for layer in self.layers for g in layer.gradients()]

    @property
    def output_dim(self) -> int:
        return int(self.forward(np.zeros((1, self.input_dim), dtype=self.dtype), training=False).shape[1])

    def forward(self, x: Array, training: bool = False) -> Array:
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, grad: Array) -> None:
        g: Array | None = grad
        for layer in self._reversed:
            assert g is not None
            g = layer.backward(g)

    def parameters(self) -> list[Array]:
        return self._params

    def gradients(self) -> list[Array]:
        return self._grads

    def get_weights(self) -> list[Array]:
        """Copies of every parameter array (for early stopping and checkpoints)."""
        return [p.copy() for p in self._params]

    def parameter_views(self, flat: Array) -> list[Array]:
        """Views of `flat`, laid out as `flat_parameters`, shaped as the parameter arrays and in their order.

        `_make_flat` and `refresh` both walk the layers and each layer's `parameters()` in order, so the i-th
        view covers the i-th parameter's place in the flat buffer.
        """
        if self.flat_parameters is None or flat.shape != self.flat_parameters.shape:
            raise ValueError("parameter_views needs a buffer shaped as flat_parameters")
        views, offset = [], 0
        for p in self._params:
            views.append(flat[offset : offset + p.size].reshape(p.shape))
            offset += p.size
        return views

    def set_weights(self, weights: list[Array]) -> None:
        """Copy `weights` into the parameter arrays in place (optimiser state keeps pointing at them)."""
        if len(weights) != len(self._params):
            raise ValueError(f"expected {len(self._params)} arrays, got {len(weights)}")
        for p, w in zip(self._params, weights, strict=True):
            if p.shape != w.shape:
                raise ValueError(f"shape mismatch: {p.shape} != {w.shape}")
            p[...] = w

    def n_parameters(self) -> int:
        return sum(int(p.size) for p in self._params)

    def outputs(self, X: Array, batch_size: int = 4096) -> Array:
        """Raw outputs for already preprocessed features, computed in chunks."""
        chunks = [self.forward(X[i : i + batch_size], training=False).copy() for i in range(0, len(X), batch_size)]
        if not chunks:
            return np.empty((0, 0), dtype=self.dtype)
        return np.concatenate(chunks)

    def save(self, path: Any) -> Any:
        """Save to a directory (`.npz` weights and JSON; no pickle). See `framework.serialize`."""
        from framework.serialize import save_model

        return save_model(self, path)

    @classmethod
    def load(cls, path: Any, registry: Any = None) -> Model:
        """Load a model saved with `save`; its layers and activations come from the installed plugins."""
        from framework.serialize import load_model

        return load_model(path, registry)

    def predict(self, X: Any) -> Array:
        """Predictions for raw features: standardised as in training, then the link (probabilities)."""
        X = np.asarray(X, dtype=self.dtype)
        if X.ndim == 1:
            X = X.reshape(1, -1)
        if X.shape[1] != self.input_dim:
            raise ValueError(f"expected {self.input_dim} features per sample, got {X.shape[1]}")
        if self.preprocess is not None:
            X = self.preprocess.transform(X)
        out = self.outputs(X)
        predictions = np.asarray(self.link(out)) if self.link is not None else out
        if self.target_scaler is not None:
            predictions = self.target_scaler.inverse_transform(predictions)
        return predictions
