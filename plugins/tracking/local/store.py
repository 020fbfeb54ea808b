"""`LocalStore`: runs, params, tags, status and artifacts of a local SQLite MLflow store, written directly.

Every method does what the MLflow client call named in its docstring does to the database and the artifact
folder (MLflow 3.17: `SqlAlchemyStore` and `LocalArtifactRepository`), checked by
`tests/tracking/test_local_store.py`. The standard library only: opening a store takes milliseconds.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sqlite3
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from plugins.tracking.local import schema

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 20.0
"""MLflow's own (`PRAGMA busy_timeout = 20000`): other processes (sweep trials, the writer) use the store too."""
ACTIVE = "active"
MAX_TAG_VALUE = 8000  # mlflow.utils.validation.MAX_TAG_VAL_LENGTH
MAX_PARAM_VALUE = 6000  # mlflow.utils.validation.MAX_PARAM_VAL_LENGTH
_NAME = re.compile(r"^[/\w.\- :]*$")  # the characters MLflow accepts in a param, tag or metric key


@dataclass(frozen=True)
class Experiment:
    """An experiment's row: id (as text, as MLflow's entities give it), name, artifact location, stage."""

    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str


def local_path(uri: str) -> Path | None:
    """The folder of a local artifact URI (a plain absolute path, or `file://`), else None (s3:, http:, ...)."""
    if uri.startswith("file:"):
        return Path(urllib.parse.unquote(urllib.parse.urlparse(uri).path))
    if "://" in uri or not os.path.isabs(uri):
        return None
    return Path(uri)


def now_ms() -> int:
    return int(time.time() * 1000)


class LocalStore:
    """One connection to an MLflow SQLite database, with MLflow's settings (foreign keys on, 20 s busy wait).

    Opened by `open_local`, which first checks that the schema is one this module knows.
    """

    def __init__(self, database: Path) -> None:
        self.database = database
        # check_same_thread=False: the callback opens it, the metric sender thread writes through it too (one
        # at a time: each use is one transaction under `_lock`'s discipline of the caller).
        self.connection = sqlite3.connect(database, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        self.connection.execute("PRAGMA foreign_keys = ON")

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.database}"

    def close(self) -> None:
        self.connection.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction: committed at the end of the block, rolled back on an error."""
        with self.connection:
            yield self.connection

    # -- experiments and runs ---------------------------------------------------------------------------------

    def experiment_by_name(self, name: str) -> Experiment | None:
        """`client.get_experiment_by_name(name)` (the default workspace's)."""
        row = self.connection.execute(
            "SELECT experiment_id, name, artifact_location, lifecycle_stage FROM experiments "
            "WHERE name = ? AND workspace = 'default'",
            (name,),
        ).fetchone()
        return None if row is None else Experiment(str(row[0]), row[1], row[2] or "", row[3])

    def create_run(self, experiment: Experiment, run_name: str, tags: Mapping[str, str]) -> tuple[str, str]:
        """`client.create_run(experiment_id, tags=tags, run_name=run_name)`: the run's id and artifact URI.

        As MLflow: a random uuid4 hex id, status RUNNING, the `mlflow.runName` tag, `user_id` from the
        `mlflow.user` tag ("unknown" without), artifact URI `<experiment location>/<run id>/artifacts`.
        """
        if experiment.lifecycle_stage != ACTIVE:
            raise ValueError(f"the experiment {experiment.experiment_id} must be in the 'active' state")
        run_id = uuid.uuid4().hex
        artifact_uri = f"{experiment.artifact_location.rstrip('/')}/{run_id}/artifacts"
        all_tags = {**tags}
        all_tags.setdefault("mlflow.runName", run_name)
        checked = [check_tag(k, v) for k, v in all_tags.items()]
        with self.transaction() as db:
            db.execute(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
                "start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id, deleted_time) "
                "VALUES (?, ?, 'UNKNOWN', '', '', ?, 'RUNNING', ?, NULL, '', 'active', ?, ?, NULL)",
                (
                    run_id,
                    run_name,
                    tags.get("mlflow.user", "unknown"),
                    now_ms(),
                    artifact_uri,
                    int(experiment.experiment_id),
                ),
            )
            db.executemany(
                "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", [(k, v, run_id) for k, v in checked]
            )
        return run_id, artifact_uri

    def run_row(self, run_id: str) -> tuple[str, str, str, str]:
        """(experiment id, artifact URI, status, lifecycle stage) of a run; KeyError if there is none."""
        row = self.connection.execute(
            "SELECT experiment_id, artifact_uri, status, lifecycle_stage FROM runs WHERE run_uuid = ?", (run_id,)
        ).fetchone()
        if row is None:
            raise KeyError(run_id)
        return str(row[0]), row[1], row[2], row[3]

    def params(self, run_id: str) -> dict[str, str]:
        """The run's params (`client.get_run(run_id).data.params`)."""
        rows = self.connection.execute("SELECT key, value FROM params WHERE run_uuid = ?", (run_id,))
        return dict(rows.fetchall())

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        """`client.log_batch(run_id, params=[...])`: new keys are stored; a key logged before with the same
        value is skipped, with another value refused (params are immutable), and then nothing is stored."""
        self._check_active(run_id)
        existing = self.params(run_id)
        changed = {k: (existing[k], v) for k, v in params.items() if k in existing and existing[k] != v}
        if changed:
            raise ValueError(f"changing param values is not allowed; run {run_id} already has {changed}")
        rows = [(k, check_value(k, v, MAX_PARAM_VALUE), run_id) for k, v in params.items() if k not in existing]
        with self.transaction() as db:
            db.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)", rows)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """`client.log_batch(run_id, tags=[...])`: each tag set, replacing a value it had (`mlflow.runName`
        renames the run too)."""
        self._check_active(run_id)
        checked = [check_tag(k, v) for k, v in tags.items()]
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?) "
                "ON CONFLICT (key, run_uuid) DO UPDATE SET value = excluded.value",
                [(k, v, run_id) for k, v in checked],
            )
            if "mlflow.runName" in tags:
                db.execute("UPDATE runs SET name = ? WHERE run_uuid = ?", (tags["mlflow.runName"], run_id))

    def set_status(self, run_id: str, status: str, end_time: int | None = None) -> None:
        """`client.set_terminated(run_id, status)` (with an end time) or `client.update_run(run_id, status)`."""
        self._check_active(run_id)
        with self.transaction() as db:
            if end_time is None:
                db.execute("UPDATE runs SET status = ? WHERE run_uuid = ?", (status, run_id))
            else:
                db.execute("UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?", (status, end_time, run_id))

    def experiment_tags(self, experiment_id: str) -> dict[str, str]:
        """`client.get_experiment(experiment_id).tags`."""
        rows = self.connection.execute(
            "SELECT key, value FROM experiment_tags WHERE experiment_id = ?", (int(experiment_id),)
        )
        return dict(rows.fetchall())

    def set_experiment_tags(self, experiment_id: str, tags: Mapping[str, str]) -> None:
        """`client.set_experiment_tag(experiment_id, key, value)` for each tag (a value replaces the old one)."""
        checked = [check_tag(k, v) for k, v in tags.items()]
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO experiment_tags (key, value, experiment_id) VALUES (?, ?, ?) "
                "ON CONFLICT (key, experiment_id) DO UPDATE SET value = excluded.value",
                [(k, v, int(experiment_id)) for k, v in checked],
            )

    def _check_active(self, run_id: str) -> None:
        _, _, _, stage = self.run_row(run_id)
        if stage != ACTIVE:
            raise ValueError(f"the run {run_id} must be in the 'active' state; it is {stage!r}")

    # -- artifacts --------------------------------------------------------------------------------------------

    def artifact_dir(self, run_id: str) -> Path:
        """The run's artifact folder (a local path: `open_local` and the callback check the location)."""
        path = local_path(self.run_row(run_id)[1])
        if path is None:
            raise ValueError(f"run {run_id}'s artifacts are not in a local folder")
        return path

    def log_bytes(self, run_id: str, data: bytes, artifact_file: str) -> Path:
        """Write `data` as the artifact `artifact_file` (`client.log_text`, `log_dict`, `log_artifact`), through a
        temporary file in the same folder renamed into place, so that no reader sees half a file."""
        target = self.artifact_dir(run_id) / artifact_file
        target.parent.mkdir(parents=True, exist_ok=True)
        from framework.durable import write_atomic

        write_atomic(target, data)  # fsynced: a kill or a power cut leaves the old file or the new one
        return target

    def log_text(self, run_id: str, text: str, artifact_file: str) -> Path:
        """`client.log_text(run_id, text, artifact_file)` (UTF-8)."""
        return self.log_bytes(run_id, text.encode("utf-8"), artifact_file)

    def log_dict(self, run_id: str, data: object, artifact_file: str) -> Path:
        """`client.log_dict(run_id, data, artifact_file)` for a .json file: `json.dump(data, indent=2, default=str)`."""
        return self.log_text(run_id, json.dumps(data, indent=2, default=str), artifact_file)

    def log_artifact(self, run_id: str, local_file: Path, artifact_path: str | None = None) -> Path:
        """`client.log_artifact(run_id, local_file, artifact_path)`: a copy, with the file's times and mode."""
        name = f"{artifact_path}/{local_file.name}" if artifact_path else local_file.name
        target = self.log_bytes(run_id, local_file.read_bytes(), name)
        shutil.copystat(local_file, target)
        return target


def check_value(key: str, value: str, limit: int) -> str:
    """A key MLflow accepts, and a value within its length `limit` (ValueError otherwise, as MLflow refuses)."""
    if not key or len(key) > 250 or not _NAME.match(key) or key.startswith("/") or ".." in key.split("/"):
        raise ValueError(f"invalid key {key!r}: names may be letters, digits, '_', '-', '.', ' ', ':' and '/'")
    if len(value) > limit:
        raise ValueError(f"the value of {key!r} is {len(value)} characters long, over MLflow's {limit}")
    return value


def check_tag(key: str, value: str) -> tuple[str, str]:
    return key, check_value(key, str(value), MAX_TAG_VALUE)


def open_local(uri: str) -> LocalStore | None:
    """A `LocalStore` on the database of `uri` when it can be written directly, else None (use MLflow).

    That is: a `sqlite:///` URI of an existing file whose schema `schema.problem` accepts.
    """
    if not uri.startswith("sqlite:///"):
        return None
    path = Path(uri.removeprefix("sqlite:///"))
    if not path.is_file():
        return None  # MLflow creates the schema of a new store (framework.mlflow_store)
    try:
        store = LocalStore(path)
        reason = schema.problem(store.connection)
    except sqlite3.Error as exc:
        reason = f"{type(exc).__name__}: {exc}"
        store = None
    if reason is None and store is not None:
        return store
    if store is not None:
        store.close()
    log.info("MLflow: %s is written through MLflow (%s)", path, reason)
    return None
