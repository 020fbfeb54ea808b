"""`backprop evaluate CHECKPOINT_OR_RUN_ID [--data ...]`: the metrics of a trained model on data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from framework.cli.common import user_errors

if TYPE_CHECKING:
    from framework.model import Model


def evaluate(
    spec: Annotated[
        str,
        typer.Argument(
            metavar="CHECKPOINT_OR_RUN_ID",
            help="A checkpoint directory, a run's checkpoint directory, a saved model, or a run id.",
        ),
    ],
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            "-d",
            help="A .csv, .npz or .npy file, or a registered dataset name (default: the run's own training "
            "and validation splits).",
        ),
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="The target column of a .csv file (default: as in training).")
    ] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            "-m",
            help="A metric to report, by name or as a TOML table with params "
            "('{name = \"top_k_accuracy\", k = 3}'); repeatable; default: all that fit the task.",
        ),
    ] = None,
    checkpoint_dir: Annotated[
        str, typer.Option("--checkpoint-dir", help="Where run ids are looked up.")
    ] = "checkpoints",
    plots: Annotated[
        Path | None,
        typer.Option(
            "--plots",
            help="Write the evaluation pictures (confusion matrix, ROC, residuals, ...) into this directory.",
        ),
    ] = None,
) -> None:
    """Print the loss and metrics of a trained model on data, with its confusion matrix or error summary."""
    with user_errors():
        from rich.console import Console
        from rich.table import Table

        from framework.build import prepare_run
        from framework.errors import UserError
        from framework.evaluation import bundle_from, evaluate_arrays, evaluate_bundle, locate
        from framework.pluginmanager import create_plugin_manager
        from framework.registry import Registry

        if plots is not None:
            writable_directory(plots)
        registry = Registry.from_host(create_plugin_manager())
        trained = locate(spec, registry, checkpoint_dir)
        results: dict[str, dict[str, float]] = {}
        shown: tuple[str, Any, Any] | None = None  # the data the table and pictures are of: the last one
        if data is None:
            if trained.experiment is None:
                raise UserError(f"{spec}: the run's config is unknown; name the data with --data")
            run = prepare_run(trained.experiment, track=False)
            splits = {"train": run.trainer.train, "validation": run.trainer.val}
            for name, split in splits.items():
                if split is not None and len(split):
                    results[name] = evaluate_arrays(trained.model, split.X, split.y, run.registry, metric)
                    shown = (name, split.X, split.y)
        else:
            bundle = bundle_from(data, trained, registry, target)
            results[data] = evaluate_bundle(trained, bundle, registry, metric)
            shown = (data, preprocessed(trained.model, bundle.X), bundle.y)
        console = Console()
        console.print(f"model: {trained.where}")
        table = Table("metric", *results)
        for key in next(iter(results.values())):
            table.add_row(key, *(f"{values[key]:.6g}" for values in results.values()))
        console.print(table)
        if shown is not None:
            report(console, trained.model, *shown)
            if plots is not None:
                from framework.diagnostics import render_model

                which, X, y = shown
                written = render_model(trained.model, task_of(trained.model), X, y, which, plots)
                console.print(f"pictures of the {which} data: " + ", ".join(str(p) for p in written))


def writable_directory(path: Path) -> None:
    """Create `path` (and its parents) or refuse it, before any work is done."""
    from framework.errors import UserError

    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".backprop-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserError(f"--plots {path}: cannot write pictures there ({reason}); give a writable directory") from None


def preprocessed(model: Model, X: Any) -> Any:
    import numpy as np

    X = np.asarray(X, dtype=model.dtype)
    return model.preprocess.transform(X) if model.preprocess is not None else X


def task_of(model: Model) -> str:
    return model.task if model.task in ("regression", "binary", "multiclass") else "regression"


def report(console: Any, model: Model, which: str, X: Any, y: Any) -> None:
    """The confusion matrix and per-class scores (classification) or the error summary (regression)."""
    import numpy as np
    from rich.table import Table

    from framework import diagnostics

    predicted = diagnostics.predictions(model, X)
    if task_of(model) == "regression":
        actual = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        residual = actual - predicted.reshape(actual.shape)
        total = ((actual - actual.mean(axis=0)) ** 2).sum()
        table = Table("error (target units)", which, title=f"regression errors, {which} data")
        rows = {
            "mean absolute error": np.abs(residual).mean(),
            "root mean squared error": np.sqrt((residual**2).mean()),
            "median absolute error": np.median(np.abs(residual)),
            "largest absolute error": np.abs(residual).max(),
            "mean residual (actual - predicted)": residual.mean(),
            "R² (1 - SSE/SST)": 1 - (residual**2).sum() / total if total > 0 else float("nan"),
        }
        for name, value in rows.items():
            table.add_row(name, f"{float(value):.6g}")
        console.print(table)
        return
    scores = np.asarray(predicted, dtype=np.float64)
    classes = 2 if scores.shape[1] == 1 else scores.shape[1]
    if scores.shape[1] == 1:  # binary: the probability of class 1, as the pictures read it
        scores = np.c_[1 - scores[:, 0], scores[:, 0]]
    guess = scores.argmax(axis=1)
    counts = diagnostics.confusion_matrix(np.asarray(y, dtype=np.int64), guess, classes)
    if classes <= 20:
        matrix = Table("true \\ predicted", *(str(c) for c in range(classes)), title=f"confusion matrix, {which} data")
        for c in range(classes):
            matrix.add_row(
                str(c), *(f"[bold]{n}[/]" if c == j else (str(n) if n else "·") for j, n in enumerate(counts[c]))
            )
        console.print(matrix)
    stats = diagnostics.per_class(counts)
    table = Table("class", "precision", "recall", "f1", "support", title=f"per class, {which} data")
    for c in range(classes):
        table.add_row(str(c), *(f"{stats[k][c]:.4f}" for k in ("precision", "recall", "f1")), str(stats["support"][c]))
    console.print(table)
