"""The MLflow store that `backprop run` logs to, as the other commands (`ui`, `runs`, `predict`) find it.

`MLFLOW_TRACKING_URI` if set, else MLflow's own default: `sqlite:///<cwd>/mlflow.db` (research/mlflow.md §2).
mlflow itself is imported only by the functions that need it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from framework.errors import UserError
from framework.mlflow_store import DEFAULT_DB, tracking_uri

__all__ = ["DEFAULT_DB", "check_store", "client", "get_run", "is_http", "sqlite_path", "tracking_uri"]
PROBE_TIMEOUT_S = 5.0


def is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def check_store(uri: str) -> None:
    """Refuse, in one line, a store that holds nothing yet (an absent sqlite file) or a server that is down."""
    path = sqlite_path(uri)
    if path is not None and not path.exists():
        where = "MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI") else "the current directory"
        raise UserError(
            f"no MLflow store at {path} ({where}); train with `backprop run` first, run this from the "
            "directory you trained in, or set MLFLOW_TRACKING_URI"
        )
    if is_http(uri):
        import urllib.error
        import urllib.request  # here: every command imports this module

        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=PROBE_TIMEOUT_S).close()
        except urllib.error.HTTPError:
            return  # it answered
        except OSError as exc:
            reason = getattr(exc, "reason", exc)
            raise UserError(
                f"MLflow tracking server {uri} is not reachable ({reason}); start it or fix MLFLOW_TRACKING_URI"
            ) from None


def client(uri: str) -> Any:
    """An MlflowClient on `uri`, after `check_store`; MLflow's own INFO chatter silenced."""
    import logging

    check_store(uri)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri)


def get_run(mlflow_client: Any, run_id: str) -> Any:
    """The run `run_id`, or a one-line error."""
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_run(run_id)
    except MlflowException:
        raise UserError(
            f"MLflow run {run_id!r} not found in {mlflow_client.tracking_uri}; `backprop runs list` shows the runs"
        ) from None
