"""Evaluating a trained model on data: what `backprop evaluate` does, usable from Python too.

A trained model is found from a checkpoint directory, a run's checkpoint directory (its final `model/`, or
its latest checkpoint), a saved model directory, or a run id (its checkpoints under `checkpoints/`, else the
model that MLflow tracking logged for it). The data is the run's own (its training and validation splits,
rebuilt from the config and seed exactly as in training), a registered dataset by name, or a `.csv`,
`.npz` or `.npy` file.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from framework.components import Array, DataBundle, Dataset, Loss, Metric, Task, spec_name, spec_params
from framework.config import Experiment, parse_value
from framework.data import check_bundle
from framework.errors import DataError, UserError
from framework.model import Model
from framework.registry import Registry
from framework.serialize import MODEL_JSON

EVALUATION_METRICS: dict[Task, list[str]] = {
    "regression": ["mae", "rmse", "r2"],
    "binary": ["accuracy", "precision", "recall", "f1", "log_loss"],
    "multiclass": ["accuracy", "precision", "recall", "f1", "log_loss"],
}
"""What `evaluate` reports when no metric is named."""


@dataclass
class Trained:
    """A trained model, the experiment it was trained with (if known), and where it was found."""

    model: Model
    experiment: Experiment | None
    where: str


def locate(spec: str, registry: Registry, root: str | Path = "checkpoints") -> Trained:
    """The trained model that `spec` names (see the module docstring)."""
    from framework.checkpoint import STATE_JSON, experiment_of, latest_in, sanitize

    path = Path(spec)
    if not path.is_dir():
        runs = sorted(Path(root).glob(f"*/{sanitize(spec)}")) if Path(root).is_dir() else []
        if runs:
            path = runs[0]
        else:
            return _from_mlflow(spec, registry)
    if (path / MODEL_JSON).exists():  # a saved model (maybe the model/ of a checkpoint or of a run)
        parent = path.parent
        checkpoint = parent if (parent / STATE_JSON).exists() else latest_in(parent)
        experiment = experiment_of(checkpoint) if checkpoint is not None else None
        return Trained(Model.load(path, registry), experiment, str(path))
    if (path / STATE_JSON).exists():
        return Trained(Model.load(path / "model", registry), experiment_of(path), str(path))
    latest = latest_in(path)
    if latest is None:
        raise UserError(f"{spec}: neither a checkpoint, a saved model, nor a run directory with checkpoints")
    final = path / "model"
    model_dir = final if (final / MODEL_JSON).exists() else latest / "model"
    return Trained(Model.load(model_dir, registry), experiment_of(latest), str(model_dir))


def _from_mlflow(run_id: str, registry: Registry) -> Trained:
    try:
        import mlflow
        from mlflow.exceptions import MlflowException
    except ImportError:  # pragma: no cover - mlflow is a dependency
        raise UserError(f"no checkpoint, model or run {run_id!r}") from None
    with tempfile.TemporaryDirectory(prefix="backprop-evaluate-") as tmp:
        try:
            client = mlflow.MlflowClient()
            client.get_run(run_id)
            local = Path(client.download_artifacts(run_id, "model", tmp))
            config = json.loads(Path(client.download_artifacts(run_id, "config.json", tmp)).read_text())
        except (MlflowException, OSError) as exc:
            raise UserError(
                f"no checkpoint, model or run {run_id!r}: not a directory, no checkpoints/*/{run_id}, "
                f"and MLflow has no such run with a model ({type(exc).__name__})"
            ) from None
        found = sorted(p.parent for p in local.rglob(MODEL_JSON))
        if not found:
            raise UserError(f"run {run_id!r}: its model artifact holds no {MODEL_JSON}")
        model = Model.load(found[0], registry)
    return Trained(model, Experiment.from_dict(config), f"run {run_id}")


def bundle_from(data: str, trained: Trained, registry: Registry, target: str | None = None) -> DataBundle:
    """The data named by `--data`: a .csv/.npz/.npy file or a registered dataset, labelled as the model's."""
    model = trained.model
    task = model.task or "regression"
    classes = list(model.target_names) if task != "regression" and model.target_names else None
    suffix = Path(data).suffix.lower()
    experiment_data = trained.experiment.data if trained.experiment is not None else None
    if suffix == ".csv":
        if target is None and experiment_data is not None and experiment_data.name == "csv":
            target = experiment_data.component_params().get("target")
        params: dict[str, Any] = {"path": data, "target": target, "task": task, "classes": classes}
        dataset = registry.create("dataset", "csv", params, where="--data", expect=Dataset)
    elif suffix in {".npz", ".npy"}:
        params = {"path": data, "task": task, "classes": classes}
        dataset = registry.create("dataset", "npz", params, where="--data", expect=Dataset)
    else:
        same = experiment_data is not None and experiment_data.name == data
        params = experiment_data.component_params() if same and experiment_data is not None else {}
        dataset = registry.create("dataset", data, params, where="--data", expect=Dataset)
    seed = trained.experiment.seed if trained.experiment is not None else 0
    bundle = dataset.load(np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[0]))
    check_bundle(bundle, data)
    return bundle


def evaluate_bundle(
    trained: Trained, bundle: DataBundle, registry: Registry, metric_names: list[str] | None = None
) -> dict[str, float]:
    """Loss and metrics of the model on raw data (the model's own standardisation applied)."""
    model = trained.model
    if bundle.X.shape[1] != model.input_dim:
        raise DataError(
            f"--data: the model takes {model.input_dim} features per sample, the data has {bundle.X.shape[1]}"
        )
    X = np.asarray(bundle.X, dtype=model.dtype)
    if model.preprocess is not None:
        X = model.preprocess.transform(X)
    return evaluate_arrays(model, X, bundle.y, registry, metric_names)


def evaluate_arrays(
    model: Model, X: Array, y: Array, registry: Registry, metric_names: list[str] | None = None
) -> dict[str, float]:
    """Loss and metrics of the model on preprocessed features `X` and raw targets `y`."""
    if not model.loss_spec:
        raise UserError("the model has no loss recorded; it cannot be evaluated")
    spec = dict(model.loss_spec)
    loss = registry.create("loss", spec.pop("name"), spec, where="loss", expect=Loss)
    task: Task = model.task if model.task in ("regression", "binary", "multiclass") else "regression"  # type: ignore[assignment]
    names = metric_names if metric_names is not None else EVALUATION_METRICS[task]
    outputs = model.outputs(X)
    y_loss: Array = np.asarray(y)
    if model.target_scaler is not None:
        y_loss = model.target_scaler.transform(np.asarray(y, dtype=model.dtype).reshape(len(y), -1))
    try:
        targets = loss.prepare_targets(y_loss, outputs.shape[1], model.dtype)
    except ValueError as exc:
        raise DataError(f"--data: {exc}") from None
    results = {"loss": float(loss.value(outputs, targets)) + model.penalty()}  # as the run's val_loss
    predictions = loss.link(outputs)
    if model.target_scaler is not None:
        predictions = model.target_scaler.inverse_transform(predictions)
    for i, text in enumerate(names):
        # A name, or a TOML inline table with params: --metric '{name = "top_k_accuracy", k = 3}'.
        metric_spec = registry.resolve_spec(
            "metric", parse_value(text) if text.lstrip().startswith("{") else text, f"--metric {i}"
        )
        name = spec_name(metric_spec)
        metric = registry.create("metric", name, spec_params(metric_spec), where=f"--metric {i}", expect=Metric)
        if task not in metric.tasks:
            raise UserError(f"--metric: {name!r} is for {', '.join(metric.tasks)} tasks, the model is {task}")
        results[name] = float(metric(y, predictions))
    return results
