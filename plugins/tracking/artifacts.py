"""What a run leaves behind besides params and metrics: curves, the model, the dataset, and a local spool.

Each function is called once, when the run ends (or, for the dataset, when it starts), never per epoch.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from framework import History, Trainer
    from plugins.tracking.sender import Point

log = logging.getLogger(__name__)

CURVES_PNG = "training_curves.png"
MODEL_NAME = "model"
LOADER_MODULE = "backprop_pyfunc"  # plugins/tracking/backprop_pyfunc.py, shipped with the model
UNSENT_DIR = "backprop-unsent"
INPUT_EXAMPLE_ROWS = 5


LOG_SCALE_RATIO = 20.0
"""A panel whose positive values span more than this factor is drawn on a log axis: a loss falls by orders of
magnitude, and on a linear axis every curve is flat after the first epochs."""


def curves_png(history: History, path: Path) -> Path | None:
    """Loss and each metric per epoch, train against validation, one panel each; None without epochs.

    Drawn with matplotlib's Agg canvas directly (no pyplot: no global figure state, no GUI backend to pick).
    The loss panel (and any other whose values are positive and span over `LOG_SCALE_RATIO`) has a log axis.
    """
    bases = list(dict.fromkeys(key.split("_", 1)[1] for key in history.metrics if key.startswith(("train_", "val_"))))
    if not history.epochs or not bases:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from framework.diagnostics import TITLE

    epochs = [e + 1 for e in history.epochs]
    width = 4.2 * len(bases)
    fig = Figure(figsize=(width, 3.4), dpi=100)
    FigureCanvasAgg(fig)
    # Fixed margins, not a constrained layout: that measures every text twice and took most of the drawing.
    margins = {"left": 0.75 / width, "right": 1 - 0.15 / width, "bottom": 0.15, "top": 0.91, "wspace": 0.3}
    axes = fig.subplots(1, len(bases), squeeze=False, gridspec_kw=margins)[0]
    for ax, base in zip(axes, bases, strict=True):
        shown: list[float] = []
        for split, style in (("train", "-"), ("val", "--")):
            values = history.metrics.get(f"{split}_{base}")
            if values is not None:
                ax.plot(epochs, values, style, marker="." if len(epochs) < 30 else None, label=split)
                shown += [v for v in values if math.isfinite(v)]
        if shown and min(shown) > 0 and max(shown) / min(shown) > LOG_SCALE_RATIO:
            ax.set_yscale("log")
            base_label = f"{base} (log scale)"
        else:
            base_label = base
        ax.set_title(base, **TITLE)
        ax.set_xlabel("epoch")
        ax.set_ylabel(base_label)
        ax.grid(alpha=0.3, which="both" if ax.get_yscale() == "log" else "major")
        ax.legend()
    fig.savefig(path, pil_kwargs={"compress_level": 1})  # fast to write; the picture is small anyway
    return path


def pip_requirements() -> list[str]:
    """What the logged model needs: numpy and mlflow, at the versions that logged it (explicit: §5).

    Read from the installed distributions' metadata, so that MLflow need not be imported for it.
    """
    from importlib.metadata import version

    return [f"mlflow=={version('mlflow')}", f"numpy=={np.__version__}"]


def model_files(trainer: Trainer, directory: Path, epoch: int | None, stamps: dict[int, int] | None) -> dict[str, Any]:
    """What a logged model is made of, written into `directory`: the saved model and the code MLflow ships
    with it, its signature (dtype, inputs, outputs), an input example (the first rows of the raw features),
    the pip requirements, and the step and metrics of `epoch`, the epoch whose weights it holds.

    The keyword arguments of `plugins.tracking.local.models.log_pyfunc_model`; `log_model` uses them too.
    """
    from framework.serialize import save_model
    from plugins.tracking import backprop_pyfunc

    model = trainer.model
    dtype = np.dtype(model.dtype)
    bundle = getattr(trainer, "dataset", None)  # set by framework.build: the raw features
    features = bundle.X[:INPUT_EXAMPLE_ROWS] if bundle is not None else np.zeros((1, model.input_dim))
    raw = np.asarray(features, dtype=dtype)
    n_out = int(model.predict(raw[:1]).shape[1])
    history = trainer.history
    metrics: list[tuple[str, float, int, int]] = []
    if epoch is not None and epoch in history.epochs:
        row = history.epochs.index(epoch)
        stamp = (stamps or {}).get(epoch, int(time.time() * 1000))
        metrics = [
            (key, float(values[row]), stamp, epoch)
            for key, values in history.metrics.items()
            if math.isfinite(values[row])
        ]
    return {
        "model_dir": save_model(model, directory / "backprop_model"),
        "code_paths": [Path(backprop_pyfunc.__file__), shipped_functional(directory)],
        "signature": (dtype.name, int(model.input_dim), n_out),
        "input_example": raw,
        "pip_requirements": pip_requirements(),
        "step": epoch if epoch is not None else 0,
        "metrics": metrics,
    }


def log_model(
    client: Any, trainer: Trainer, run_id: str, epoch: int | None, stamps: dict[int, int] | None = None
) -> None:
    """Log the trained model as a pyfunc model `model` of the run: npz + JSON, the numpy-only loader.

    The LoggedModel is created here, in the run's experiment: left to `Model.log`, it would land in the
    fluent API's current experiment (the Default one), where `runs:/<run_id>/model` does not find it
    (MLflow finds a run's models by their `source_run_id`).

    `Model.log` is not given the run: with it, MLflow reads the run's whole metric history back from the
    store (every point, to pick those of step 0), which takes seconds after a long run with per-step
    metrics. The model is linked to the run here instead, with the metrics of `epoch`, the epoch whose
    weights it holds (MLflow would have linked those of epoch 0), at the timestamps they were logged with
    (`stamps`), so that they are the run's own points and not copies of them.
    """
    import mlflow.pyfunc
    from mlflow.entities import LoggedModelOutput, Metric
    from mlflow.models import Model, ModelSignature
    from mlflow.types import Schema, TensorSpec

    experiment_id = client.get_run(run_id).info.experiment_id
    logged = client.create_logged_model(experiment_id, name=MODEL_NAME, source_run_id=run_id, model_type="backprop")
    with tempfile.TemporaryDirectory(prefix="backprop-model-") as tmp:
        files = model_files(trainer, Path(tmp), epoch, stamps)
        dtype, n_in, n_out = files["signature"]
        signature = ModelSignature(
            inputs=Schema([TensorSpec(np.dtype(dtype), (-1, n_in))]),
            outputs=Schema([TensorSpec(np.dtype(dtype), (-1, n_out))]),
        )

        class RunModel(Model):  # type: ignore[misc]
            """Writes the run's id into MLmodel, which `Model.log` does only when given the run."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs["run_id"] = kwargs.get("run_id") or run_id
                super().__init__(*args, **kwargs)

        RunModel.log(
            artifact_path=None,  # deprecated in favour of `name`, but still a required argument
            name=MODEL_NAME,
            flavor=mlflow.pyfunc,
            run_id=None,
            model_id=logged.model_id,
            loader_module=LOADER_MODULE,
            data_path=str(files["model_dir"]),
            code_paths=[str(p) for p in files["code_paths"]],
            signature=signature,
            input_example=files["input_example"],
            pip_requirements=files["pip_requirements"],
        )
    client.log_outputs(run_id, models=[LoggedModelOutput(logged.model_id, step=files["step"])])
    metrics = [
        Metric(key, value, stamp, step, model_id=logged.model_id, run_id=run_id)
        for key, value, stamp, step in files["metrics"]
    ]
    if metrics:
        client.log_batch(run_id, metrics=metrics)


FUNCTIONAL_PACKAGE = "backprop_functional"
"""The name under which a logged model ships `framework.functional` (the loader imports it without backprop)."""


def shipped_functional(directory: Path) -> Path:
    """A copy of the `framework.functional` package named `FUNCTIONAL_PACKAGE`, in `directory`."""
    import shutil

    from framework import functional

    target = directory / FUNCTIONAL_PACKAGE
    shutil.copytree(Path(functional.__file__).parent, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def dataset_description(trainer: Trainer) -> tuple[str, Any, Any, dict[str, str]] | None:
    """The data the run trained on as its MLflow input: name, features, targets and the source's tags (the
    backprop dataset and its params), or None when the trainer has no dataset."""
    bundle = getattr(trainer, "dataset", None)
    if bundle is None:
        return None
    experiment = trainer.experiment
    params = {k: v for k, v in experiment.data.model_dump().items() if k != "name"}
    source = {"backprop.dataset": experiment.data.name, "backprop.dataset_params": json.dumps(params, sort_keys=True)}
    return experiment.data.name, np.asarray(bundle.X), np.asarray(bundle.y), source


def log_dataset(client: Any, trainer: Trainer, run_id: str) -> None:
    """Record the data the run trained on (name, digest, shapes) as the run's `training` input.

    The source is a code source naming the backprop dataset and its params: a made-up URI scheme makes
    MLflow raise, and a local path makes it warn (research/mlflow.md §6).
    """
    description = dataset_description(trainer)
    if description is None:
        return
    import mlflow.data
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.entities import DatasetInput, InputTag

    name, features, targets, source_tags = description
    dataset = mlflow.data.from_numpy(features, targets=targets, source=CodeDatasetSource(source_tags), name=name)
    tags = [InputTag("mlflow.data.context", "training")]
    client.log_inputs(run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags=tags)])


def best_epoch(trainer: Trainer, restored_epoch: int | None) -> int | None:
    """The epoch whose weights the model holds if restored, else the one with the lowest val (or train) loss."""
    if restored_epoch is not None:
        return restored_epoch
    history = trainer.history
    for key in ("val_loss", "train_loss"):
        values = history.metrics.get(key)
        if values:
            finite = [(v, e) for v, e in zip(values, history.epochs, strict=True) if math.isfinite(v)]
            if finite:
                return min(finite)[1]
    return None


def spool(
    run_id: str,
    trainer: Trainer,
    points: list[Point],
    tags: dict[str, str],
    status: str,
    error: BaseException | None,
) -> Path:
    """Save what could not reach the tracking server under ./backprop-unsent/<run_id>/ and return the path.

    metrics.csv (key, value, timestamp_ms, step: what `log_batch` takes), tags.json, status.json, config.json,
    history.csv, and the trained model (model/, as written by `framework.serialize.save_model`).
    """
    import io

    from framework.checkpoint import sanitize
    from framework.durable import write_atomic
    from framework.serialize import save_model

    where = Path.cwd() / UNSENT_DIR / sanitize(run_id)  # a resumed run's id comes from a checkpoint file
    where.mkdir(parents=True, exist_ok=True)
    # Each file whole or absent (framework.durable); status.json last: `backprop runs sync` sends a folder
    # only once it is there. Points already spooled by an earlier attempt of this run are kept.
    rows = [[key, repr(value), str(ts), str(step)] for key, value, ts, step in points]
    if (where / "metrics.csv").exists():  # a resumed run that lost its server again: keep the first points
        with open(where / "metrics.csv", newline="", encoding="utf-8") as fh:
            rows = [*list(csv.reader(fh))[1:], *rows]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["key", "value", "timestamp_ms", "step"])
    writer.writerows(dict.fromkeys(map(tuple, rows)))
    write_atomic(where / "metrics.csv", text.getvalue())
    write_atomic(where / "tags.json", json.dumps(tags, indent=2) + "\n")
    write_atomic(where / "config.json", json.dumps(trainer.experiment.to_dict(), indent=2) + "\n")
    write_atomic(where / "history.csv", trainer.history.to_csv())
    save_model(trainer.model, where / "model")
    reason = f"{type(error).__name__}: {error}" if error is not None else None
    write_atomic(where / "status.json", json.dumps({"status": status, "error": reason}, indent=2) + "\n")
    return where
