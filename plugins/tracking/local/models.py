"""The trained model as MLflow's pyfunc model, logged into a local SQLite store without importing MLflow.

`plugins.tracking.artifacts.log_model` logs the model through MLflow 3.17: `client.create_logged_model`, then
`Model.log(flavor=mlflow.pyfunc, model_id=..., loader_module="backprop_pyfunc", data_path=..., code_paths=...,
signature=..., input_example=..., pip_requirements=...)`, then `client.log_outputs` and `client.log_batch` of
the epoch's metrics with the model's id. `log_pyfunc_model` leaves the same rows and the same files:

- `logged_models`: one row, PENDING (1) when created, READY (2) once its folder is written, FAILED (3) if
  writing it fails (MLflow's `_use_logged_model`); no `logged_model_tags` or `logged_model_params` rows;
- `inputs`: the run's output, `RUN_OUTPUT` run -> `MODEL_OUTPUT` model, at `step`;
- `metrics` and `latest_metrics` of the run (a point already stored is not stored twice) and
  `logged_model_metrics`, for `metrics`; no run tag (MLflow 3's `Model.log` no longer writes
  `mlflow.log-model.history`);
- `<experiment artifact location>/models/<model id>/artifacts/`: MLmodel, conda.yaml, python_env.yaml,
  requirements.txt, input_example.json, serving_input_example.json, data/<model_dir's name>/, code/ (and a
  uv project's uv.lock, pyproject.toml, .python-version, copied from the working directory as MLflow does).

What MLflow does besides, and this module does not: it loads the model and predicts the input example with it
to validate it (~0.3 s; backprop's own tests check that logged models load and predict). That validation
imports the loader from code/, and where Python writes bytecode (no PYTHONDONTWRITEBYTECODE) it leaves
`code/__pycache__/backprop_pyfunc.cpython-311.pyc` in MLflow's folder: a cache whose bytes name MLflow's
temporary folder, not reproducible and not needed; it is not written here.

`model_problem` says when the environment would make MLflow write something else (dependency locking, a
Databricks runtime, requirements other than plain `name==version` pins): the caller then logs through MLflow.
`tests/tracking/test_local_model.py` logs the same model both ways on twin stores and compares every row and
file. The standard library, numpy and PyYAML (MLflow's own YAML writer, for the same bytes) only.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import json
import logging
import math
import numbers
import os
import posixpath
import re
import shutil
import sqlite3
import sys
import urllib.parse
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from plugins.tracking.local.store import ACTIVE, LocalStore, check_value, local_path, now_ms
from plugins.tracking.writer import INSERT, INSERT_LATEST, LATEST, UPDATE_LATEST, stored_value

log = logging.getLogger(__name__)

MODEL_NAME = "model"  # plugins.tracking.artifacts.MODEL_NAME: `runs:/<run id>/model`
MODEL_TYPE = "backprop"
LOADER_MODULE = "backprop_pyfunc"  # plugins.tracking.artifacts.LOADER_MODULE
PENDING, READY, FAILED = 1, 2, 3  # LoggedModelStatus.to_int()
FLAVOR = "python_function"
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"  # mlflow.utils
BUILD_PACKAGES = ("pip", "setuptools", "wheel")  # mlflow.utils.environment._PythonEnv.BUILD_PACKAGES
MLFLOW_DISTRIBUTIONS = ("mlflow", "mlflow-skinny", "mlflow-tracing")  # what counts as "an mlflow requirement"
UV_FILES = ("uv.lock", "pyproject.toml", ".python-version")  # mlflow.utils.uv_utils.copy_uv_project_files
DATABRICKS_VERSION_FILE = "/databricks/DBR_VERSION"

PIN = re.compile(r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)==[0-9A-Za-z.!+_-]+")
"""A requirement MLflow writes out as it is given: `name==version`, no spaces, extras, markers or options."""
BAD_NAME_CHARACTERS = ("/", ":", ".", "%", '"', "'")  # mlflow.utils.validation._validate_logged_model_name


def model_problem(pip_requirements: Sequence[str]) -> str | None:
    """Why MLflow would write this model otherwise than `log_pyfunc_model` does, or None.

    That is: MLflow locks the requirements (`MLFLOW_LOCK_MODEL_DEPENDENCIES`), runs on Databricks (MLmodel
    gets a `databricks_runtime`), reads a boolean setting it would refuse, or is given a requirement that it
    would rewrite (anything but distinct `name==version` pins), or it is not installed at all.
    """
    try:
        if env_flag("MLFLOW_LOCK_MODEL_DEPENDENCIES", False):
            return "MLFLOW_LOCK_MODEL_DEPENDENCIES is on: MLflow locks the requirements with uv"
        env_flag("MLFLOW_UV_AUTO_DETECT", True)
        env_flag("MLFLOW_LOG_UV_FILES", True)
    except ValueError as exc:
        return str(exc)
    for variable in ("DATABRICKS_ENV_VERSION", "DATABRICKS_RUNTIME_VERSION"):
        if os.environ.get(variable):
            return f"{variable} is set: MLflow writes Databricks metadata"
    if os.path.exists(DATABRICKS_VERSION_FILE):
        return f"{DATABRICKS_VERSION_FILE} exists: MLflow writes Databricks metadata"
    installed = version("mlflow")
    if installed is None:
        return "MLflow is not installed"
    names = []
    for requirement in pip_requirements:
        match = PIN.fullmatch(requirement)
        if match is None:
            return f"requirement {requirement!r} is not a plain 'name==version' pin"
        names.append(match["name"])
    if len(set(names)) != len(names):
        return f"requirements {list(pip_requirements)} name a package twice"
    if not any(name.lower() in MLFLOW_DISTRIBUTIONS for name in names) and ".dev" in installed:
        return f"MLflow {installed} is a development version: it pins itself otherwise"
    return None


def log_pyfunc_model(
    store: LocalStore,
    run_id: str,
    *,
    model_dir: Path,
    code_paths: list[Path],
    signature: tuple[str, int, int],
    input_example: np.ndarray,
    pip_requirements: list[str],
    step: int,
    metrics: list[tuple[str, float, int, int]],
    name: str = MODEL_NAME,
    model_type: str = MODEL_TYPE,
    loader_module: str = LOADER_MODULE,
) -> str:
    """Log the model saved in `model_dir` as the pyfunc model `name` of run `run_id`; return its id.

    Args:
        store: the run's store.
        run_id: an active run.
        model_dir: the model's data (`framework.serialize.save_model`'s folder), copied to data/.
        code_paths: files and folders copied to code/ (the loader module and what it imports).
        signature: (dtype name, number of features, number of outputs): tensors of shape (-1, n) each.
        input_example: a few rows of raw features, of the signature's dtype and width.
        pip_requirements: `name==version` pins (`model_problem` says when MLflow would write others).
        step: the step of the run output (the epoch whose weights the model holds).
        metrics: (key, value, timestamp ms, step) of that epoch, linked to the model and stored in the run.

    Raises:
        ValueError: bad arguments, an inactive run or experiment, or a `model_problem`; nothing is written.
        OSError: writing the folder failed; the model is then FAILED, as MLflow leaves it.
    """
    problem = model_problem(pip_requirements)
    if problem is not None:
        raise ValueError(f"the model cannot be written without MLflow: {problem}; help: log it through MLflow")
    check_arguments(name, signature, input_example, model_dir, code_paths, step)
    points = check_metrics(metrics)
    try:
        experiment_id, _, _, run_stage = store.run_row(run_id)
    except KeyError:
        raise ValueError(f"no run {run_id!r} in {store.database}") from None
    if run_stage != ACTIVE:
        raise ValueError(f"the run {run_id} must be in the 'active' state; it is {run_stage!r}")
    location, stage = store.connection.execute(
        "SELECT artifact_location, lifecycle_stage FROM experiments WHERE experiment_id = ?", (int(experiment_id),)
    ).fetchone()
    if stage != ACTIVE:
        raise ValueError(f"the experiment {experiment_id} must be in the 'active' state; it is {stage!r}")
    model_id = f"m-{uuid.uuid4().hex}"  # SqlAlchemyStore.create_logged_model
    artifact_location = append_to_uri_path(location, "models", model_id, "artifacts")
    folder = local_path(artifact_location)
    if folder is None:
        raise ValueError(f"the experiment {experiment_id}'s artifacts are not in a local folder: {location}")

    created = now_ms()
    with store.transaction() as db:
        db.execute(
            "INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, creation_timestamp_ms, "
            "last_updated_timestamp_ms, status, lifecycle_stage, model_type, source_run_id, status_message) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, NULL)",
            (model_id, int(experiment_id), name, artifact_location, created, created, PENDING, model_type, run_id),
        )
    mlmodel = {
        "artifact_path": artifact_location,  # Model.log: the LoggedModel's artifact location
        "model_uuid": model_id,
        "run_id": run_id,
        "model_id": model_id,
    }
    try:
        write_model_folder(
            folder,
            mlmodel,
            model_dir=model_dir,
            code_paths=code_paths,
            loader_module=loader_module,
            signature=signature,
            input_example=input_example,
            requirements=resolved_requirements(pip_requirements),
        )
    except BaseException:
        set_status(store, model_id, FAILED)
        raise
    with store.transaction() as db:
        db.execute(
            "UPDATE logged_models SET status = ?, last_updated_timestamp_ms = ? WHERE model_id = ?",
            (READY, now_ms(), model_id),
        )
        db.execute(  # client.log_outputs
            "INSERT INTO inputs (input_uuid, source_type, source_id, destination_type, destination_id, step) "
            "VALUES (?, 'RUN_OUTPUT', ?, 'MODEL_OUTPUT', ?, ?)",
            (uuid.uuid4().hex, run_id, model_id, step),
        )
        store_metrics(db, run_id, int(experiment_id), model_id, points)  # client.log_batch
    return model_id


# -- checks, before anything is written -----------------------------------------------------------------------


def check_arguments(
    name: str, signature: tuple[str, int, int], example: np.ndarray, model_dir: Path, code_paths: list[Path], step: int
) -> None:
    """What MLflow refuses (a model name, an example that does not fit the signature, a missing path, a step
    that is not an integer), as a ValueError."""
    if not name or any(c in name for c in BAD_NAME_CHARACTERS):
        raise ValueError(f"invalid model name {name!r}: it must be non-empty, without any of {BAD_NAME_CHARACTERS}")
    dtype, n_in, n_out = signature
    if dtype not in ("float16", "float32", "float64"):
        raise ValueError(f"signature: dtype {dtype!r} must be 'float16', 'float32' or 'float64'")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in (n_in, n_out)):
        raise ValueError(f"signature: the numbers of features and outputs must be positive integers, not {signature}")
    if not isinstance(example, np.ndarray) or example.ndim != 2 or example.shape[1] != n_in:
        shape = getattr(example, "shape", type(example).__name__)
        raise ValueError(f"input_example: a 2-D array of {n_in} columns (the signature's), not {shape}")
    if example.dtype.name != dtype:  # MLflow: "Input example does not match the model signature"
        raise ValueError(f"input_example: dtype {example.dtype.name} is not the signature's {dtype}")
    for path in (model_dir, *code_paths):
        if not os.path.exists(path):
            raise ValueError(f"{path} does not exist: nothing to copy into the model")
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise ValueError(f"step: {step!r} is not an integer")


def check_metrics(metrics: list[tuple[str, float, int, int]]) -> list[tuple[str, float, int, int]]:
    """The metrics as `log_batch` validates them (mlflow.utils.validation._validate_metric), as floats and ints.

    Two points of one key, timestamp and step with different values are refused too: MLflow would link the
    model and then fail on `logged_model_metrics`' primary key; here nothing is written.
    """
    points: dict[tuple[str, int, int], float] = {}
    checked: list[tuple[str, float, int, int]] = []
    for index, (key, value, timestamp, step) in enumerate(metrics):
        check_value(key, "", 0)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"metrics[{index}] ({key!r}): the value {value!r} is not a number")
        if isinstance(timestamp, bool) or not isinstance(timestamp, numbers.Integral) or timestamp < 0:
            raise ValueError(f"metrics[{index}] ({key!r}): the timestamp {timestamp!r} is not a non-negative integer")
        if isinstance(step, bool) or not isinstance(step, numbers.Integral):
            raise ValueError(f"metrics[{index}] ({key!r}): the step {step!r} is not an integer")
        number, timestamp, step = float(value), int(timestamp), int(step)
        before = points.setdefault((key, timestamp, step), number)
        if before != number and not (math.isnan(before) and math.isnan(number)):
            raise ValueError(
                f"metrics[{index}] ({key!r}): two values ({before} and {number}) at step {step}, timestamp {timestamp}"
            )
        checked.append((key, number, timestamp, step))
    return checked


# -- rows -----------------------------------------------------------------------------------------------------


def set_status(store: LocalStore, model_id: str, status: int) -> None:
    """`client.finalize_logged_model(model_id, status)`."""
    with store.transaction() as db:
        db.execute(
            "UPDATE logged_models SET status = ?, last_updated_timestamp_ms = ? WHERE model_id = ?",
            (status, now_ms(), model_id),
        )


def store_metrics(
    db: sqlite3.Connection, run_id: str, experiment_id: int, model_id: str, points: list[tuple[str, float, int, int]]
) -> None:
    """`client.log_batch(run_id, metrics=[Metric(..., model_id=model_id)])` (SqlAlchemyStore.log_batch).

    The run's `metrics` (a point already stored is not stored again) and `latest_metrics` (per key the point
    of greatest (step, timestamp, value)), as `writer.SqliteWriter` stores them; one `logged_model_metrics` row
    per distinct point, its value stored as MLflow stores it (NaN as 0, ±inf as ±max float).
    """
    best: dict[str, tuple[int, int, float, int]] = {}
    linked: dict[tuple[str, float, int, int], float] = {}  # MLflow's `seen`: the same point linked once
    for key, value, timestamp, step in points:
        stored, is_nan = stored_value(value)
        db.execute(INSERT, (key, stored, timestamp, step, is_nan, run_id))
        candidate = (step, timestamp, stored, is_nan)
        if key not in best or candidate[:3] > best[key][:3]:
            best[key] = candidate
        linked.setdefault((key, value, timestamp, step), stored)
    for key, (step, timestamp, value, is_nan) in best.items():
        row = db.execute(LATEST, (run_id, key)).fetchone()
        if row is None:
            db.execute(INSERT_LATEST, (value, timestamp, step, is_nan, run_id, key))
        elif (step, timestamp, value) > tuple(row):
            db.execute(UPDATE_LATEST, (value, timestamp, step, is_nan, run_id, key))
    db.executemany(
        "INSERT INTO logged_model_metrics (model_id, metric_name, metric_timestamp_ms, metric_step, metric_value, "
        "experiment_id, run_id, dataset_uuid, dataset_name, dataset_digest) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL)",
        [(model_id, k, ts, s, stored, experiment_id, run_id) for (k, _, ts, s), stored in linked.items()],
    )


# -- the model's folder ---------------------------------------------------------------------------------------


def write_model_folder(
    folder: Path,
    mlmodel: dict[str, Any],
    *,
    model_dir: Path,
    code_paths: list[Path],
    loader_module: str,
    signature: tuple[str, int, int],
    input_example: np.ndarray,
    requirements: list[str],
) -> None:
    """The model's files, in the order `mlflow.pyfunc.save_model` writes them (the size MLmodel records is of
    what is there before the code: the examples and the data), built next to `folder` and renamed into place,
    so that no reader sees half a model."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = folder.parent / f".artifacts-{uuid.uuid4().hex}"
    work.mkdir()  # os.mkdir's mode, as MLflow's folders get (not mkdtemp's 0o700)
    try:
        input_json, serving_json = example_texts(input_example)
        (work / "input_example.json").write_text(input_json, encoding="utf-8")
        (work / "serving_input_example.json").write_text(serving_json, encoding="utf-8")
        data = copy_file_or_tree(model_dir, work, "data")
        size = total_size(work)
        for path in code_paths:
            copy_file_or_tree(path, work, "code")
        dtype, n_in, n_out = signature
        model = {
            **mlmodel,
            "flavors": {
                FLAVOR: {
                    "loader_module": loader_module,
                    "python_version": PYTHON_VERSION,
                    "data": data,
                    "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                    "streamable": False,
                    "code": "code",
                }
            },
            "utc_time_created": str(datetime.now(UTC).replace(tzinfo=None)),  # Model.__init__
            "mlflow_version": version("mlflow"),
            "prompts": None,
            "signature": {"inputs": tensor_schema(dtype, n_in), "outputs": tensor_schema(dtype, n_out), "params": None},
            "is_signature_from_type_hint": False,
            "type_hint_from_example": False,
            "saved_input_example_info": {
                "artifact_path": "input_example.json",
                "type": "ndarray",
                "serving_input_path": "serving_input_example.json",
            },
        }
        if size:
            model["model_size_bytes"] = size
        for file, text in (("MLmodel", dump_yaml(model)), *environment_files(requirements)):
            (work / file).write_text(text, encoding="utf-8")
        copy_uv_files(work)
        os.rename(work, folder)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        for empty in (folder.parent, folder.parent.parent):  # models/<id>/ and models/: MLflow makes neither
            with contextlib.suppress(OSError):
                empty.rmdir()
        raise


def example_texts(example: np.ndarray) -> tuple[str, str]:
    """input_example.json and serving_input_example.json of an ndarray example (mlflow.models.utils._Example):
    the rows as JSON lists, NaN as null (`_handle_ndarray_nans`), and `{"inputs": rows}` indented by 2."""
    rows = np.where(np.isnan(example), None, example).tolist()  # type: ignore[call-overload]  # MLflow's call
    return json.dumps(rows, default=numpy_value), json.dumps({"inputs": rows}, indent=2, default=numpy_value)


def numpy_value(value: object) -> object:
    """What MLflow's `NumpyEncoder` makes of a numpy scalar left in the rows (`.item()`); else json's error."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def tensor_schema(dtype: str, width: int) -> str:
    """`Schema([TensorSpec(dtype, (-1, width))]).to_json()`."""
    return json.dumps([{"type": "tensor", "tensor-spec": {"dtype": dtype, "shape": [-1, width]}}])


def resolved_requirements(pip_requirements: Sequence[str]) -> list[str]:
    """The requirements MLflow writes for these pins: as given, `mlflow==<installed>` first if none names it."""
    requirements = list(pip_requirements)
    names = [match["name"].lower() for r in requirements if (match := PIN.fullmatch(r))]
    if not any(name in MLFLOW_DISTRIBUTIONS for name in names):
        requirements.insert(0, f"mlflow=={version('mlflow')}")
    return requirements


def environment_files(requirements: list[str]) -> list[tuple[str, str]]:
    """conda.yaml, requirements.txt and python_env.yaml, as mlflow.utils.environment writes them."""
    pip = version("pip")
    conda = {
        "name": "mlflow-env",
        "channels": ["conda-forge"],
        # `pip<=`: conda-forge lags behind PyPI, so MLflow lets conda take an older pip (_mlflow_conda_env).
        "dependencies": [f"python={PYTHON_VERSION}", f"pip<={pip}" if pip else "pip", {"pip": requirements}],
    }
    builds = [f"{package}=={found}" if (found := version(package)) else package for package in BUILD_PACKAGES]
    python_env = {"python": PYTHON_VERSION, "build_dependencies": builds, "dependencies": ["-r requirements.txt"]}
    return [
        ("conda.yaml", dump_yaml(conda)),
        ("requirements.txt", "\n".join(requirements)),
        ("python_env.yaml", dump_yaml(python_env, sort_keys=False)),
    ]


def dump_yaml(data: dict[str, Any], sort_keys: bool = True) -> str:
    """`yaml.safe_dump(data, default_flow_style=False)`: MLflow's own call, so the same bytes (its key order,
    quoting and folding of long lines)."""
    import yaml  # ~10 ms, only when a model is logged

    return yaml.safe_dump(data, default_flow_style=False, sort_keys=sort_keys)


def copy_file_or_tree(source: Path, folder: Path, subfolder: str) -> str:
    """Copy `source` to `folder/subfolder/<its name>` (mlflow.utils.file_utils._copy_file_or_tree): a file
    with its mode, a tree without `__pycache__`; return the copy's path relative to `folder`."""
    relative = os.path.join(subfolder, os.path.basename(os.path.abspath(source)))
    target = folder / relative
    if os.path.isfile(source):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        # followlinks: shutil.copytree (symlinks=False) copies what a link to a folder points to.
        for directory, subdirectories, files in os.walk(source, followlinks=True):
            subdirectories[:] = [d for d in subdirectories if d != "__pycache__"]
            here = target / os.path.relpath(directory, source)
            here.mkdir()  # os.mkdir's mode, as MLflow's folders get (it makes them so when it copies its own)
            for file in files:
                shutil.copy2(os.path.join(directory, file), here / file)
    return relative


def total_size(folder: Path) -> int:
    """The bytes of every file under `folder` (mlflow.utils.file_utils.get_total_file_size)."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files)


def copy_uv_files(folder: Path) -> None:
    """A uv project's files, when the working directory is one (both uv.lock and pyproject.toml): MLflow copies
    them into the model (`MLFLOW_UV_AUTO_DETECT`, `MLFLOW_LOG_UV_FILES`); a failure is only a warning there."""
    cwd = Path.cwd()
    if not (env_flag("MLFLOW_UV_AUTO_DETECT", True) and env_flag("MLFLOW_LOG_UV_FILES", True)):
        return
    if not ((cwd / UV_FILES[0]).exists() and (cwd / UV_FILES[1]).exists()):
        return
    try:
        for file in UV_FILES:
            if (cwd / file).exists():
                shutil.copy2(cwd / file, folder / file)
    except OSError as exc:
        log.warning("Failed to copy uv project files: %s", exc)


# -- what MLflow reads of its environment ---------------------------------------------------------------------


@functools.cache
def version(distribution: str) -> str | None:
    """The installed version of `distribution`, or None (as MLflow's `_get_package_version`); read once."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def env_flag(name: str, default: bool) -> bool:
    """A boolean setting as MLflow reads it: true/false/1/0 in any case, else a ValueError naming it."""
    value = os.environ.get(name)
    if value is None:
        return default
    if value.lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"{name} value must be one of ['true', 'false', '1', '0'] (case-insensitive), not {value!r}")
    return value.lower() in ("true", "1")


def append_to_uri_path(uri: str, *parts: str) -> str:
    """`mlflow.utils.uri.append_to_uri_path` for the local locations LocalStore writes (a path, a file: URI)."""
    suffix = "/".join(parts)
    parsed = urllib.parse.urlparse(uri)
    if not parsed.scheme:
        return posixpath.join(uri, suffix)
    prefix = ""
    if not parsed.path.startswith("/"):  # as MLflow: urlunparse would make a relative path absolute
        prefix, parsed = f"{parsed.scheme}:", parsed._replace(scheme="")
    return prefix + urllib.parse.urlunparse(parsed._replace(path=posixpath.join(parsed.path, suffix)))
