"""The MLflow pyfunc loader of backprop models: numpy only, no pickle, no backprop needed.

`plugins.tracking` logs a trained model with `mlflow.pyfunc.log_model(loader_module="backprop_pyfunc",
code_paths=[this file], data_path=<the directory written by framework.serialize.save_model>)`. MLflow copies
this file into the logged model and imports it by its top-level name when the model is loaded, so
`mlflow.pyfunc.load_model(...)` works wherever numpy and mlflow are installed: backprop is not on PyPI and
need not be installed where the model is served.

Where backprop is installed, the model is loaded through backprop itself (`framework.serialize.load_model`),
so predictions are exactly the trainer's, for any plugin component. Elsewhere this file is self-contained (it
imports nothing from backprop) and computes what `framework.model.Model.predict` computes for the built-in
components: standardisation, `dense` layers with the built-in activations, the link of the built-in losses
(probabilities for classification) and the regression targets' scaling, equal to backprop's up to float
rounding; a model with any other component is refused with a message naming it. `tests/tracking` checks
both paths.
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
except ImportError:  # ... else the copy shipped inside the MLflow model, next to this file
    import backprop_functional as F  # type: ignore[import-not-found,no-redef]


class BackpropModel:
    """A saved backprop model: `predict(X)` takes raw features (n, n_features) and returns predictions."""

    def __init__(self, path: Path) -> None:
        description = json.loads((path / "model.json").read_text())
        if description.get("format") != FORMAT or description.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: not a backprop model of format version {FORMAT_VERSION}")
        with np.load(path / "weights.npz", allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        self.description = description
        self.dtype = np.dtype(description["dtype"])
        self.input_dim = int(description["input_dim"])
        self.mean = arrays.get("preprocess.mean")
        self.scale = arrays.get("preprocess.scale")
        self.target_mean = arrays.get("target.mean")
        self.target_scale = arrays.get("target.scale")
        self.layers: list[tuple[Array, Array | None, Callable[[Array], Array] | None]] = []
        for i, spec in enumerate(description["layers"]):
            W = arrays[f"layer{i}.param0"]
            b = arrays[f"layer{i}.param1"] if spec.get("use_bias", True) else None
            name, params = _spec(spec.get("activation", "identity"))
            self.layers.append((W, b, None if name == "identity" else F.activation_function(name, params)))
        loss = description.get("loss") or {}
        self.link = F.LOSS_LINKS[loss["name"]] if loss else None

    @staticmethod
    def unsupported(description: dict[str, Any]) -> list[str]:
        """What this module cannot compute itself (components that only backprop's plugins know)."""
        problems = []
        for i, spec in enumerate(description.get("layers", [])):
            if spec.get("type") != "dense":
                problems.append(f"layer {i} of type {spec.get('type')!r}")
            elif _spec(spec.get("activation", "identity"))[0] not in F.ACTIVATIONS:
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
        for W, b, activation in self.layers:
            z = np.matmul(x, W)
            if b is not None:
                z += b
            x = activation(z) if activation is not None else z
        return x


def _spec(spec: Any) -> tuple[str, dict[str, Any]]:
    """A component spec's name and params: "relu", or {"name": "leaky_relu", "negative_slope": 0.1}."""
    if isinstance(spec, dict):
        return str(spec.get("name")), {k: v for k, v in spec.items() if k != "name"}
    return str(spec), {}


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
