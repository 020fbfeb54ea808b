"""`backprop predict RUN_ID_OR_MODEL_DIR --input FILE`: predictions of a trained model for new samples."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from framework.cli.common import user_errors


def predict(
    source: Annotated[
        str,
        typer.Argument(
            help="The MLflow run whose model predicts, or a saved model directory (Model.save, a checkpoint's model/)."
        ),
    ],
    input_: Annotated[
        Path, typer.Option("--input", "-i", help="Raw features: a .csv file (a header row is allowed) or a .npy file.")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this .csv or .npy file (default: CSV on stdout).")
    ] = None,
) -> None:
    """Print (or save) a trained model's predictions for the samples: a run's model through mlflow.pyfunc, or a
    saved model directory through backprop."""
    with user_errors():
        import numpy as np

        from framework.errors import UserError

        X = read_features(input_)
        directory = _model_directory(Path(source))
        if directory is not None:
            predictions, names = _predict_saved(directory, X, input_)
        else:
            predictions, names = _predict_run(source, X, input_)
        predictions = np.asarray(predictions)
        if predictions.ndim == 1:
            predictions = predictions.reshape(-1, 1)
        if output is not None and output.suffix.lower() == ".npy":
            np.save(output, predictions)
            return
        if output is not None and not output.parent.is_dir():
            raise UserError(f"--output: folder {str(output.parent)!r} does not exist")
        header = _header(names, predictions.shape[1])
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([repr(float(v)) for v in row] for row in predictions)
        if output is None:
            sys.stdout.write(text.getvalue())
        else:
            output.write_text(text.getvalue(), encoding="utf-8")


def _model_directory(path: Path) -> Path | None:
    """The saved model directory that `path` names (itself, or its `model/`), or None: then it is a run id."""
    for candidate in (path, path / "model"):
        if (candidate / "model.json").is_file():
            return candidate
    return None


def _check_width(width: int, X: Any, input_: Path) -> None:
    from framework.errors import UserError

    if X.shape[1] != width:
        raise UserError(f"--input: the model takes {width} features per sample, {input_} has {X.shape[1]}")


def _predict_saved(directory: Path, X: Any, input_: Path) -> tuple[Any, list[str]]:
    """A saved model's predictions, through backprop itself (exactly what `Model.predict` gives)."""
    from framework.serialize import load_model

    model = load_model(directory)
    _check_width(model.input_dim, X, input_)
    return model.predict(X.astype(model.dtype, copy=False)), list(model.target_names)


def _predict_run(run_id: str, X: Any, input_: Path) -> tuple[Any, list[str]]:
    """A tracked run's predictions, through its logged MLflow model (`mlflow.pyfunc`)."""
    import tempfile

    from framework.cli import store
    from framework.errors import UserError

    client = store.client(store.tracking_uri())
    store.get_run(client, run_id)
    import mlflow.artifacts
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="backprop-predict-") as tmp:
        try:  # download first: load_model("runs:/...") leaves a temporary directory behind (§5)
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"runs:/{run_id}/model", dst_path=tmp, tracking_uri=client.tracking_uri
            )
        except (MlflowException, OSError):
            raise UserError(
                f"run {run_id!r} has no model (only runs that finished log one); see `backprop runs show {run_id}`"
            ) from None
        model = mlflow.pyfunc.load_model(local)
        names = _target_names(Path(local))
    schema = model.metadata.get_input_schema()
    spec = schema.inputs[0] if schema is not None else None
    if spec is not None:
        _check_width(spec.shape[-1], X, input_)
        X = X.astype(spec.type, copy=False)
    return model.predict(X), names


def read_features(path: Path) -> Any:
    """A 2-d float array from a .npy file (no pickle) or a numeric CSV file with an optional header row."""
    import numpy as np

    from framework.errors import UserError

    if not path.is_file():
        raise UserError(f"--input: file {str(path)!r} not found")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            X = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise UserError(f"--input: {path}: not a numeric .npy file ({exc})") from None
    elif suffix == ".csv":
        rows = [row for row in csv.reader(path.read_text(encoding="utf-8").splitlines()) if row]
        if rows and not _numeric(rows[0]):
            rows = rows[1:]  # a header
        values = []
        for i, row in enumerate(rows):
            if not _numeric(row):
                raise UserError(f"--input: {path}: row {i + 1} is not all numbers: {','.join(row)[:80]}")
            values.append([float(v) for v in row])
        if len({len(row) for row in values}) > 1:
            raise UserError(f"--input: {path}: the rows have different numbers of columns")
        X = np.asarray(values, dtype=np.float64)
    else:
        raise UserError(f"--input: {path}: use a .csv or .npy file, not {suffix or 'no suffix'!r}")
    if X.ndim == 1:
        X = X.reshape(1, -1)
    if X.ndim != 2 or X.shape[0] == 0:
        raise UserError(f"--input: {path}: expected a table of samples (rows) by features, got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number):
        raise UserError(f"--input: {path}: the features must be numbers, got dtype {X.dtype}")
    return X


def _numeric(row: list[str]) -> bool:
    try:
        [float(v) for v in row]
    except ValueError:
        return False
    return True


def _target_names(model_dir: Path) -> list[str]:
    import json

    for found in model_dir.rglob("model.json"):
        try:
            return [str(n) for n in json.loads(found.read_text()).get("target_names", [])]
        except (OSError, ValueError):
            return []
    return []


def _header(names: list[str], width: int) -> list[str]:
    if len(names) == width and width > 1:
        return [f"p_{n}" for n in names]  # class probabilities
    if width == 1 and len(names) == 2:
        return [f"p_{names[1]}"]  # binary: the probability of the second class
    if len(names) == width:
        return names
    return [f"output_{i}" for i in range(width)]
