"""Opening an MLflow store safely from several processes at once.

MLflow creates and migrates a SQLite store's schema on the first connection of each process. Two processes
doing that at the same moment race in alembic ("table _alembic_tmp_experiments already exists",
"database is locked"), which is exactly what parallel sweeps and concurrent runs do. So the first touch of a
SQLite store is serialised with a file lock next to the database; after that SQLite's own locking suffices.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_DB = "mlflow.db"


UI_BASE = "http://127.0.0.1:5000"
"""Where `backprop ui` serves a local store by default: the address a run's printed link uses."""


def experiment_url(base: str, experiment_id: str) -> str:
    """The experiment's runs in the UI's model-training view, as charts (MLflow 3 opens on GenAI otherwise)."""
    return f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning&compareRunsMode=CHART"


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    """A run's page in the UI (its Overview shows the run's description)."""
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"


def run_link(uri: str, experiment_id: str, run_id: str) -> str:
    """Where to see a run: on the tracking server of `uri`, or in `backprop ui` for a local store."""
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else UI_BASE
    return run_url(base, experiment_id, run_id)


def tracking_uri() -> str:
    """The store a run logs to: MLflow's tracking URI, found without importing MLflow (1-2 s).

    `MLFLOW_TRACKING_URI` if set, else MLflow's default, `sqlite:///mlflow.db` in the current directory; a
    relative SQLite path is made absolute (a server started elsewhere finds the same file). When the program
    has imported MLflow itself, its own answer counts (a notebook's `mlflow.set_tracking_uri(...)`).
    """
    mlflow = sys.modules.get("mlflow")
    uri = str(mlflow.get_tracking_uri()) if mlflow is not None else os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if not uri:
        return f"sqlite:///{Path.cwd() / DEFAULT_DB}"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{(Path.cwd() / uri.removeprefix('sqlite:///')).resolve()}"
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///...` URI, or None for other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///"))


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock on `<database>.lock` (no-op for stores that are not SQLite files)."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_client(uri: str | None = None) -> Any:
    """An `MlflowClient` whose store is initialised (schema created or migrated) under the store lock."""
    import mlflow

    uri = uri or mlflow.get_tracking_uri()
    with store_lock(uri):
        # The client resolves its store on construction, which creates (or migrates) the tables.
        client = mlflow.MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)
    return client
