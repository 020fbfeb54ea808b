"""Saving and loading models without pickle: `.npz` arrays plus a JSON description.

A saved model is a directory:

    model.json     format version, input width, dtype, the layers' configs, the loss (for the link that
                   predictions apply), feature and target names
    weights.npz    every parameter array, the standardisation's mean and scale, and (when the regression
                   targets were standardised) the targets' mean and scale

Arrays are read with `allow_pickle=False` and the JSON is parsed, never evaluated, so loading an untrusted
model cannot run code. Directories are written to a temporary sibling and renamed into place, so a failure
never leaves a half-written model behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from framework.components import Array, Layer, Loss
from framework.errors import UserError
from framework.model import Model, Standardizer

FORMAT = "backprop-model"
FORMAT_VERSION = 1
MODEL_JSON = "model.json"
WEIGHTS = "weights.npz"


@contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces `path` only if the block completes.

    Crash-consistent (`framework.durable`): every file in it is fsynced before the rename, the parent folder
    after it, so a kill or a power cut leaves either the old directory or the complete new one.
    """
    from framework.durable import fsync_path, fsync_tree, raise_if_full

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        fsync_tree(tmp)
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
        fsync_path(path.parent)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise_if_full(exc, path)  # the disk is full: DiskFull names the path (the old directory is untouched)
        raise


def save_arrays(path: Path, arrays: Mapping[str, Array]) -> None:
    """Write arrays to an `.npz` file (numeric arrays only: object arrays would need pickle)."""
    for name, array in arrays.items():
        if np.asarray(array).dtype.hasobject:
            raise TypeError(f"array {name!r} holds Python objects; only numeric arrays are saved")
    named: dict[str, Any] = {k: np.asarray(v) for k, v in arrays.items()}
    with open(path, "wb") as fh:
        np.savez(fh, **named)


def load_arrays(path: Path) -> dict[str, Array]:
    """Read an `.npz` file without ever unpickling."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except ValueError as exc:  # "Object arrays cannot be loaded when allow_pickle=False"
        raise UserError(f"{path}: refused to load ({exc})") from None
    except (OSError, EOFError) as exc:
        raise UserError(f"{path}: not a readable .npz file ({exc})") from None


def read_described(path: Path, name: str, fmt: str, version: int, what: str) -> dict[str, Any]:
    """Parse `path/name`, a JSON description whose `format` and `format_version` must match."""
    try:
        description: dict[str, Any] = json.loads((path / name).read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no {name}; is this a {what} written by backprop?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path / name}: invalid JSON ({exc})") from None
    if not isinstance(description, dict):
        raise UserError(f"{path / name}: not a backprop {what} description")
    if description.get("format") != fmt or description.get("format_version") != version:
        raise UserError(
            f"{path}: not a backprop {what} of format version {version} "
            f"(found {description.get('format')!r} {description.get('format_version')!r})"
        )
    return description


def model_description(model: Model) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "input_dim": model.input_dim,
        "dtype": str(model.dtype),
        "layers": [layer.config() for layer in model.layers],
        "loss": model.loss_spec,
        "feature_names": list(model.feature_names),
        "target_names": list(model.target_names),
        "task": model.task,
    }


def save_model(model: Model, path: Path) -> Path:
    """Save `model` as a directory at `path` (replaced atomically if it exists)."""
    path = Path(path)
    with atomic_directory(path) as tmp:
        write_model(tmp, model)
    return path


def write_model(directory: Path, model: Model, weights: list[Array] | None = None) -> None:
    """Write `model.json` and `weights.npz` into an existing directory (no atomicity: the caller's job).

    Args:
        weights: the arrays to save, in `Model.weights()` order (parameters, then buffers); by default the
            model's current ones (a checkpoint passes the copies taken at the end of its epoch).
    """
    values = list(weights) if weights is not None else model.weights()
    arrays: dict[str, Array] = {}
    for (key, _), value in zip(weight_names(model), values, strict=True):
        arrays[key] = value
    if model.preprocess is not None:
        arrays["preprocess.mean"] = model.preprocess.mean
        arrays["preprocess.scale"] = model.preprocess.scale
    if model.target_scaler is not None:
        arrays["target.mean"] = model.target_scaler.mean
        arrays["target.scale"] = model.target_scaler.scale
    (directory / MODEL_JSON).write_text(json.dumps(model_description(model), indent=2) + "\n")
    save_arrays(directory / WEIGHTS, arrays)


def weight_names(model: Model) -> list[tuple[str, Array]]:
    """The key in `weights.npz` of each of `model.weights()`, with the live array.

    Parameters are `layer<i>.param<j>` (in `Layer.parameters()` order), buffers `layer<i>.<name>`
    (batch_norm's `layer1.running_mean`).
    """
    params = [
        (f"layer{i}.param{j}", p) for i, layer in enumerate(model.layers) for j, p in enumerate(layer.parameters())
    ]
    buffers = [(f"layer{i}.{name}", b) for i, layer in enumerate(model.layers) for name, b in layer.buffers().items()]
    return [*params, *buffers]


def load_weights(model: Model, arrays: Mapping[str, Array], where: Path, exact_dtype: bool = False) -> None:
    """Copy the saved arrays into `model`'s weights, or a UserError naming the layer that does not match."""
    for key, live in weight_names(model):
        saved = arrays.get(key)
        if saved is None or saved.shape != live.shape or (exact_dtype and saved.dtype != live.dtype):
            layer = key.split(".", 1)[0].removeprefix("layer")
            raise UserError(f"{where}: the weights of layer {layer} ({key}) do not match the model's description")
        live[...] = saved


def load_model(path: Path, registry: Any = None) -> Model:
    """Rebuild a saved model; layers, activations and the loss come from the registries of the plugins.

    Args:
        path: the directory written by `save_model`.
        registry: a `framework.registry.Registry`; by default one is built from the installed plugins.
    """
    path = Path(path)
    description = read_described(path, MODEL_JSON, FORMAT, FORMAT_VERSION, "model")
    arrays = load_arrays(path / WEIGHTS)
    if registry is None:
        from framework.pluginmanager import create_plugin_manager
        from framework.registry import Registry

        registry = Registry.from_host(create_plugin_manager())
    dtype = np.dtype(description["dtype"])
    layers: list[Layer] = []
    width = int(description["input_dim"])
    rng = np.random.default_rng(0)  # the initial values are overwritten below
    for i, spec in enumerate(description["layers"]):
        spec = dict(spec)
        kind_name = spec.pop("type")
        layer = registry.create("layer", kind_name, spec, where=f"layers.{i}", expect=Layer)
        registry.attach_components(layer, where=f"layers.{i}")
        layer.needs_input_grad = i > 0
        width = layer.build(width, dtype, rng)
        layers.append(layer)
    preprocess = None
    if "preprocess.mean" in arrays:
        preprocess = Standardizer(arrays["preprocess.mean"].astype(dtype), arrays["preprocess.scale"].astype(dtype))
    model = Model(layers, int(description["input_dim"]), dtype, preprocess=preprocess)
    load_weights(model, arrays, path)
    if "target.mean" in arrays:
        model.target_scaler = Standardizer(arrays["target.mean"].astype(dtype), arrays["target.scale"].astype(dtype))
    loss_spec = description.get("loss")
    if loss_spec:
        values = {k: v for k, v in loss_spec.items() if k != "name"}
        loss = registry.create("loss", loss_spec["name"], values, where="loss", expect=Loss)
        model.link = loss.link
        model.loss_spec = dict(loss_spec)
    model.feature_names = list(description.get("feature_names", []))
    model.target_names = list(description.get("target_names", []))
    model.task = description.get("task")
    return model
