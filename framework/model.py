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

from typing import Any, ClassVar

import numpy as np
from pydantic import Field, field_validator

from framework.components import (
    Activation,
    AnyParams,
    Array,
    Component,
    ComponentSpec,
    Initializer,
    Layer,
    Params,
    component_field,
)
from framework.functional import constant

LEGACY_INITS = {"glorot": "glorot_uniform", "he": "he_normal"}
"""The initialiser names of the first release, still accepted: `init = "he"` is he_normal."""


class DenseParams(Params):
    units: int = Field(ge=1, description="Number of output units.")
    activation: ComponentSpec = component_field(
        "activation",
        "identity",
        'The activation: a name, or a table of its name and params ({name = "leaky_relu", negative_slope = 0.1}).',
    )
    use_bias: bool = Field(True, description="Add a learned bias to each unit.")
    init: ComponentSpec = component_field(
        "initializer",
        "auto",
        "Weight initialiser: a name (he_normal, glorot_uniform, ...) or a table with its params; auto picks the "
        "activation's default: he_normal for the relu family, lecun_normal for selu, glorot_uniform otherwise.",
    )
    bias_init: ComponentSpec = component_field("initializer", "zeros", "Bias initialiser (default zeros).")
    l1: float = Field(0.0, ge=0, description="L1 penalty λ₁·Σ|W| on the weights, added to the loss (0: off).")
    l2: float = Field(0.0, ge=0, description="L2 penalty λ₂·ΣW² on the weights, added to the loss (0: off).")
    max_norm: float | None = Field(
        None,
        gt=0,
        description="Constraint: after each step, rescale each unit's incoming weights to this norm at most.",
    )

    @field_validator("init", mode="before")
    @classmethod
    def _legacy_names(cls, value: Any) -> Any:
        return LEGACY_INITS.get(value, value) if isinstance(value, str) else value


class Dense(Layer):
    """A fully connected layer followed by an activation: a = f(x @ W + b).

    Optional regularisation of the weights W (not the biases): the penalty λ₁·Σ|W| + λ₂·ΣW² is added to the
    loss, so backward adds λ₁·sign(W) + 2λ₂·W to dL/dW; `max_norm` rescales, after every optimiser step, each
    column W[:, j] (the weights into unit j) whose norm exceeds it down to that norm.
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
        self._dz: Array | None = None  # dL/dz of the last backward, for `intermediates` (backprop explain)
        self._n = 0
        self._train_bufs: tuple[Array, Array, Array, Array] | None = None  # the training forward's buffers
        self._regularised = self.params.l1 > 0 or self.params.l2 > 0
        self._penalty_scratch: Array | None = None

    def attach(self, field: str, component: Component) -> None:
        super().attach(field, component)
        if field == "activation":
            assert isinstance(component, Activation)
            self.activation = component
            self._identity = component.is_identity

    def set_activation(self, activation: Activation) -> None:
        """Use `activation` (the core attaches the one the params name; this is for models built by hand)."""
        self.attach("activation", activation)

    def build(self, input_dim: int, dtype: np.dtype[Any], rng: np.random.Generator) -> int:
        units = self.params.units
        init, bias_init = self.components.get("init"), self.components.get("bias_init")
        if not isinstance(init, Initializer) or not isinstance(bias_init, Initializer):
            raise RuntimeError(
                "dense: build() before its initialisers were attached; help: build layers with "
                "framework.build.attach_components(layer, registry) (as the core does)"
            )
        self.W = np.ascontiguousarray(init((input_dim, units), input_dim, units, rng), dtype=dtype)
        if self.params.use_bias:
            self.b = np.ascontiguousarray(bias_init((units,), input_dim, units, rng), dtype=dtype)
        else:
            self.b = np.zeros(units, dtype=dtype)
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)
        self._buffers.clear()
        self._last = None
        self._penalty_scratch = None
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
        """a = f(x @ W + b).

        In training, references to x, z and a are kept for `backward`. Output buffers are kept per batch size
        and mode, so an inference pass between a training forward and its backward leaves them intact.
        """
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
        self._dz = dz
        np.matmul(x.T, dz, out=self.dW)  # dL/dW = x.T @ dL/dz
        if self._regularised:
            self._add_penalty_gradient()
        if self._use_bias:
            np.matmul(ones, dz, out=self.db)  # dL/db = column sums of dL/dz
        if not self.needs_input_grad:
            return None
        np.matmul(dz, self.W.T, out=dx)  # dL/dx = dL/dz @ W.T
        return dx

    def intermediates(self) -> dict[str, Array]:
        """z = x @ W + b of the last training forward and delta = dL/dz of the last backward (live buffers)."""
        found = {"z": self._z, "delta": self._dz}
        return {name: value for name, value in found.items() if value is not None}

    def _add_penalty_gradient(self) -> None:
        # d/dW of λ₁·Σ|W| + λ₂·ΣW² = λ₁·sign(W) + 2λ₂·W, added to dL/dW (sign(0) = 0).
        scratch = self._penalty_scratch
        if scratch is None or scratch.shape != self.W.shape:
            scratch = self._penalty_scratch = np.empty_like(self.W)
        l1, l2 = self.params.l1, self.params.l2
        if l1 > 0:
            np.sign(self.W, out=scratch)
            scratch *= constant(l1, scratch.dtype)
            self.dW += scratch
        if l2 > 0:
            np.multiply(self.W, constant(2 * l2, scratch.dtype), out=scratch)
            self.dW += scratch

    def penalized(self) -> bool:
        return self._regularised

    def penalty(self) -> float:
        """λ₁·Σ|W| + λ₂·ΣW², in float64."""
        W = self.W.astype(np.float64, copy=False)
        return float(self.params.l1 * np.abs(W).sum() + self.params.l2 * np.vdot(W, W))

    def constrained(self) -> bool:
        return self.params.max_norm is not None

    def constrain(self) -> None:
        """W[:, j] ← W[:, j] · min(1, max_norm / ‖W[:, j]‖) for every unit j."""
        limit = self.params.max_norm
        if limit is None:
            return
        norms = np.sqrt(np.einsum("ij,ij->j", self.W, self.W))
        too_long = norms > limit
        if too_long.any():
            self.W[:, too_long] *= (limit / norms[too_long]).astype(self.W.dtype)

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
        self._buffers: list[Array] = []
        self.flat_parameters: Array | None = None
        self.flat_gradients: Array | None = None
        self._reversed = list(reversed(layers))
        self.penalized_layers = [layer for layer in layers if layer.penalized()]
        """The layers whose `penalty()` adds to the loss (dense with l1/l2): empty for most models."""
        self.constrained_layers = [layer for layer in layers if layer.constrained()]
        """The layers whose `constrain()` runs after every optimiser step (dense with max_norm)."""
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
        self._buffers = [b for layer in self.layers for b in layer.buffers().values()]

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

    def buffers(self) -> list[Array]:
        """Every layer's buffers (arrays of the trained model that are not trained: running statistics)."""
        return self._buffers

    def weights(self) -> list[Array]:
        """The live arrays that make the trained model: the parameters, then the buffers (see `get_weights`)."""
        return [*self._params, *self._buffers]

    def get_weights(self) -> list[Array]:
        """Copies of every parameter array, then of every buffer (for early stopping and checkpoints).

        As in Keras, the weights of a model are its trainable parameters and its other state arrays
        (batch_norm's running statistics), so restoring the best epoch's weights restores both.
        """
        return [w.copy() for w in self.weights()]

    def penalty(self) -> float:
        """The regularisation term of every layer at the current weights (0.0 without regularisers)."""
        return float(sum(layer.penalty() for layer in self.penalized_layers))

    def constrain(self) -> None:
        """Apply every layer's weight constraint (after an optimiser step)."""
        for layer in self.constrained_layers:
            layer.constrain()

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
        """Copy `weights` (as `get_weights` gives them) into the model's arrays in place (optimiser state keeps
        pointing at them)."""
        arrays = self.weights()
        if len(weights) != len(arrays):
            raise ValueError(f"expected {len(arrays)} arrays, got {len(weights)}")
        for p, w in zip(arrays, weights, strict=True):
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
