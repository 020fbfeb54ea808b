"""The MLflow pyfunc loader of backprop models: numpy only, no pickle, no backprop needed.

`plugins.tracking` logs a trained model with `mlflow.pyfunc.log_model(loader_module="backprop_pyfunc",
code_paths=[this file, backprop_functional], data_path=<the directory written by
framework.serialize.save_model>)`. MLflow copies both into the logged model and imports this file by its
top-level name when the model is loaded, so `mlflow.pyfunc.load_model(...)` works wherever numpy and mlflow
are installed: backprop is not on PyPI and need not be installed where the model is served.

Where backprop is installed, the model is loaded through backprop itself (`framework.serialize.load_model`),
so predictions are the trainer's for any plugin component. Elsewhere this file is self-contained: it imports
numpy and `backprop_functional` only (the copy of `framework.functional` shipped with the model: the very
functions that backprop's built-in components call at inference), and computes what
`framework.model.Model.predict` computes, bit for bit, for the built-in components: the standardisation; the
layers `dense` (with any built-in activation and its params), `batch_norm` (its running statistics) and
`layer_norm`, with `dropout` and `gaussian_noise` as the identity they are at inference; the link of the
built-in losses (probabilities for classification) and the regression targets' scaling. A model with any
other component is refused with a message naming it. `tests/plugins/test_pyfunc_loader.py` checks both paths.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "backprop-model"
FORMAT_VERSION = 1
CHUNK = 4096  # Model.outputs' chunk size: the same matrix shapes give the same rounding

Array = Any


try:  # the formulas backprop's own components call (numpy alone), from backprop where it is installed ...
    from framework import functional as F
    from framework.functional import normalization as N
except ImportError:  # ... else the copy shipped inside the MLflow model, next to this file
    import backprop_functional as F  # type: ignore[import-not-found,no-redef]
    from backprop_functional import normalization as N  # type: ignore[no-redef]


class Weights:
    """The arrays of `weights.npz`, read by key; a missing one is a ValueError naming it and its layer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with np.load(path, allow_pickle=False) as data:
            self.arrays = {name: data[name] for name in data.files}

    def get(self, key: str) -> Array | None:
        return self.arrays.get(key)

    def __getitem__(self, key: str) -> Array:
        found = self.arrays.get(key)
        if found is None:
            layer = key.split(".", 1)[0].removeprefix("layer")
            raise ValueError(f"{self.path}: no array {key!r} (a weight of layer {layer}); the model is incomplete")
        return found


# -- the layers at inference: each is built from its saved config and weights, and called on a batch ----------


class Dense:
    """a = f(x @ W + b), as `framework.model.Dense` computes it."""

    def __init__(self, spec: dict[str, Any], weights: Weights, prefix: str) -> None:
        self.W = weights[f"{prefix}.param0"]
        self.b = weights[f"{prefix}.param1"] if spec.get("use_bias", True) else None
        name, params = _spec(spec.get("activation", "identity"))
        self.activation = None if name == "identity" else F.activation_function(name, params)

    def __call__(self, x: Array) -> Array:
        z = np.matmul(x, self.W)
        if self.b is not None:
            z += self.b
        return self.activation(z) if self.activation is not None else z


class BatchNorm:
    """y = γ·(x − running mean)/√(running var + ε) + β, as `batch_norm` computes it at inference."""

    def __init__(self, spec: dict[str, Any], weights: Weights, prefix: str) -> None:
        self.mean = weights[f"{prefix}.running_mean"]
        self.var = weights[f"{prefix}.running_var"]
        self.gamma, self.beta = _affine(spec, weights, prefix)
        self.eps = float(spec["epsilon"])

    def __call__(self, x: Array) -> Array:
        return N.batch_norm(x, self.mean, self.var, self.gamma, self.beta, self.eps)


class LayerNorm:
    """y = γ·(x − μ_row)/√(σ²_row + ε) + β, as `layer_norm` computes it."""

    def __init__(self, spec: dict[str, Any], weights: Weights, prefix: str) -> None:
        self.gamma, self.beta = _affine(spec, weights, prefix)
        self.eps = float(spec["epsilon"])

    def __call__(self, x: Array) -> Array:
        return N.layer_norm(x, self.gamma, self.beta, self.eps)


class ActivationLayer:
    """y = f(x), as the `activation` layer computes it."""

    def __init__(self, spec: dict[str, Any], weights: Weights, prefix: str) -> None:
        name, params = _spec(spec.get("activation", "relu"))
        self.activation = F.activation_function(name, params)

    def __call__(self, x: Array) -> Array:
        return self.activation(x)


class Identity:
    """y = x: what `dropout` and `gaussian_noise` are at inference."""

    def __init__(self, spec: dict[str, Any], weights: Weights, prefix: str) -> None:
        pass

    def __call__(self, x: Array) -> Array:
        return x


LAYERS: dict[str, Callable[[dict[str, Any], Weights, str], Callable[[Array], Array]]] = {
    "dense": Dense,
    "batch_norm": BatchNorm,
    "layer_norm": LayerNorm,
    "dropout": Identity,
    "gaussian_noise": Identity,
    "activation": ActivationLayer,
}
"""The built-in layers this module computes, by their registered names."""


def _affine(spec: dict[str, Any], weights: Weights, prefix: str) -> tuple[Array | None, Array | None]:
    """γ and β of a normalisation layer (its two parameters), or (None, None) without the affine map."""
    if not spec.get("affine", True):
        return None, None
    return weights[f"{prefix}.param0"], weights[f"{prefix}.param1"]


def _spec(spec: Any) -> tuple[str, dict[str, Any]]:
    """A component spec's name and params: "relu", or {"name": "leaky_relu", "negative_slope": 0.1}."""
    if isinstance(spec, dict):
        return str(spec.get("name")), {k: v for k, v in spec.items() if k != "name"}
    return str(spec), {}


class BackpropModel:
    """A saved backprop model: `predict(X)` takes raw features (n, n_features) and returns predictions."""

    def __init__(self, path: Path) -> None:
        description = json.loads((path / "model.json").read_text())
        if description.get("format") != FORMAT or description.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: not a backprop model of format version {FORMAT_VERSION}")
        weights = Weights(path / "weights.npz")
        self.description = description
        self.dtype = np.dtype(description["dtype"])
        self.input_dim = int(description["input_dim"])
        # Cast as `framework.serialize.load_model` casts them: the same operands give the same bits.
        self.mean, self.scale = self._cast(weights.get("preprocess.mean")), self._cast(weights.get("preprocess.scale"))
        self.target_mean = self._cast(weights.get("target.mean"))
        self.target_scale = self._cast(weights.get("target.scale"))
        self.layers = [LAYERS[spec["type"]](spec, weights, f"layer{i}") for i, spec in enumerate(description["layers"])]
        loss = description.get("loss") or {}
        self.link = F.LOSS_LINKS[loss["name"]] if loss else None

    def _cast(self, array: Array | None) -> Array | None:
        return None if array is None else array.astype(self.dtype)

    @staticmethod
    def unsupported(description: dict[str, Any]) -> list[str]:
        """What this module cannot compute itself (components that only backprop's plugins know)."""
        problems = []
        for i, spec in enumerate(description.get("layers", [])):
            if spec.get("type") not in LAYERS:
                problems.append(f"layer {i} of type {spec.get('type')!r}")
            elif "activation" in spec and _spec(spec["activation"])[0] not in F.ACTIVATIONS:
                problems.append(f"activation {_spec(spec.get('activation'))[0]!r} of layer {i}")
        loss = (description.get("loss") or {}).get("name")
        if loss is not None and loss not in F.LOSS_LINKS:
            problems.append(f"loss {loss!r}")
        return problems

    def predict(self, X: Array) -> Array:
        X = np.asarray(X, dtype=self.dtype)
        if X.ndim == 1:
            X = X.reshape(1, -1)
        if X.shape[1] != self.input_dim:
            raise ValueError(f"expected {self.input_dim} features per sample, got {X.shape[1]}")
        if self.mean is not None and self.scale is not None:
            X = ((X - self.mean) / self.scale).astype(X.dtype, copy=False)
        chunks = [self._forward(X[i : i + CHUNK]) for i in range(0, len(X), CHUNK)]
        out = np.concatenate(chunks) if chunks else np.empty((0, 0), dtype=self.dtype)
        predictions = self.link(out) if self.link is not None else out
        if self.target_mean is not None and self.target_scale is not None:  # back to the targets' units
            predictions = (predictions * self.target_scale + self.target_mean).astype(predictions.dtype, copy=False)
        return predictions

    def _forward(self, x: Array) -> Array:
        for layer in self.layers:
            x = layer(x)
        return x


class _PyfuncModel:
    """What `mlflow.pyfunc` wraps: `predict(model_input, params=None)`."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        if hasattr(model_input, "to_numpy"):  # a pandas DataFrame
            model_input = model_input.to_numpy()
        return np.asarray(self.model.predict(model_input))


def load(data_path: str | Path, use_backprop: bool = True) -> Any:
    """The model in `data_path`: through backprop when it is installed, else computed here with numpy."""
    path = Path(data_path)
    if use_backprop:
        try:
            from framework.serialize import load_model
        except ImportError:
            pass
        else:
            return load_model(path)
    description = json.loads((path / "model.json").read_text())
    problems = BackpropModel.unsupported(description)
    if problems:
        raise ValueError(
            f"this backprop model uses {', '.join(problems)}, which only backprop's plugins can compute; "
            "install backprop and the plugins that provide them, then load the model again"
        )
    return BackpropModel(path)


def _load_pyfunc(data_path: str) -> _PyfuncModel:
    """MLflow's entry point for `loader_module` models."""
    return _PyfuncModel(load(data_path))
