"""Where a tracked run is written: MLflow's client, or a local SQLite store written directly (no MLflow import).

`open_store(uri, experiment)` picks: `LocalTrackingStore` when the store is a SQLite file that `plugins.tracking.
local` knows how to write (its schema revision, the experiment exists, its artifacts are in a local folder),
else `MlflowStore`, MLflow's client as before (servers, other databases, a new store or experiment). Both offer
the operations the tracking callback needs, with the same effect on the store (`tests/tracking/
test_local_store.py` compares them on twin stores).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from framework.errors import UserError

if TYPE_CHECKING:
    from framework import Trainer
    from plugins.tracking.local import LocalStore
    from plugins.tracking.writer import Item, Point

log = logging.getLogger(__name__)
T = TypeVar("T")

CREATED_BY = "backprop.created_by"
"""The tag of an experiment that backprop created (it keeps that experiment's description up to date)."""
MAX_PARAMS_PER_BATCH = 100  # a server's limit per log_batch request (mlflow/utils/validation.py)
LOCK_RETRIES = 6
"""Attempts at a store operation that SQLite refuses with "database is locked" (backoff 0.25 s, doubling)."""


class PointWriter(Protocol):
    """Stores a run's metric points (from the sender thread), one batch at a time."""

    database: str | None
    """The SQLite file that the light writer process may write the points into (`writer.py`), else None."""

    def register(self, items: list[Item]) -> None:
        """Check (and create, where the store needs it) each key not seen before; raises as the store would.
        Called before the items go to the writer process, which checks nothing."""

    def write(self, points: list[Point]) -> None:
        """Store `points`, all or none; raises as the store would."""


class TrackingStore(Protocol):
    """What the tracking callback does to a store; every method may raise as MLflow's client would."""

    tracking_uri: str

    def create_run(self, run_name: str, tags: dict[str, str]) -> str: ...

    def reopen_run(self, run_id: str) -> dict[str, str]: ...

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None: ...

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None: ...

    def log_dict(self, run_id: str, data: object, artifact_file: str) -> None: ...

    def log_artifact(self, run_id: str, local_file: Path, artifact_path: str | None = None) -> None: ...

    def artifact_uri(self, run_id: str) -> str: ...

    def log_dataset(self, run_id: str, trainer: Trainer) -> None: ...

    def log_model(self, run_id: str, trainer: Trainer, epoch: int | None, stamps: dict[int, int]) -> None: ...

    def point_writer(self, run_id: str) -> PointWriter: ...

    def end_run(self, run_id: str, status: str) -> None: ...

    def experiment_id(self) -> str: ...

    def experiment_tags(self) -> dict[str, str]: ...

    def set_experiment_tags(self, tags: Mapping[str, str]) -> None: ...


def with_retries(action: Callable[[], T], what: str) -> T:
    """`action()`, retried with exponential backoff while a SQLite store says "database is locked"."""
    delay = 0.25
    for attempt in range(LOCK_RETRIES):
        try:
            return action()
        except Exception as exc:
            if "database is locked" not in str(exc) or attempt == LOCK_RETRIES - 1:
                raise
            log.info("MLflow: %s: the database is locked; retrying in %.2f s", what, delay)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def deleted_experiment(name: str, experiment_id: str) -> UserError:
    return UserError(
        f"tracking.experiment: MLflow experiment {name!r} is deleted; restore it "
        f"(mlflow experiments restore --experiment-id {experiment_id}) or choose another name"
    )


# -- MLflow's client ------------------------------------------------------------------------------------------


class LogBatchPoints:
    """Points through MLflow's `log_batch`, in requests of at most 1000."""

    database: str | None = None

    def __init__(self, client: Any, run_id: str) -> None:
        from plugins.tracking.sender import send_points

        self.write = functools.partial(send_points, client, run_id)

    def register(self, items: list[Item]) -> None:
        return None  # `log_batch` checks every point itself


class MlflowStore:
    """Any store, through `mlflow.MlflowClient` (imports MLflow: about 2 s with its SQLAlchemy store)."""

    def __init__(self, uri: str, experiment: str) -> None:
        from framework.mlflow_store import open_client

        self.client = with_retries(lambda: open_client(uri), "opening the store")
        self.tracking_uri = str(self.client.tracking_uri)
        self.experiment = experiment
        self._experiment_id: str | None = None

    def experiment_id(self) -> str:
        """The id of the experiment, created if it does not exist yet."""
        if self._experiment_id is None:
            self._experiment_id = with_retries(self._find_or_create, "finding the experiment")
        return self._experiment_id

    def _find_or_create(self) -> str:
        from mlflow.exceptions import MlflowException

        client, name = self.client, self.experiment
        found = client.get_experiment_by_name(name)
        if found is None:
            try:
                return str(client.create_experiment(name, tags={CREATED_BY: "backprop"}))
            except MlflowException:
                found = client.get_experiment_by_name(name)  # created meanwhile by a parallel run
                if found is None:
                    raise
        if found.lifecycle_stage == "deleted":
            raise deleted_experiment(name, found.experiment_id)
        return str(found.experiment_id)

    def create_run(self, run_name: str, tags: dict[str, str]) -> str:
        experiment_id = self.experiment_id()
        run = with_retries(
            lambda: self.client.create_run(experiment_id, run_name=run_name, tags=tags), "creating the run"
        )
        return str(run.info.run_id)

    def reopen_run(self, run_id: str) -> dict[str, str]:
        from mlflow.exceptions import MlflowException

        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            raise UserError(f"--resume: MLflow run {run_id!r} not found in {self.tracking_uri}") from None
        self.client.update_run(run_id, status="RUNNING")
        return dict(run.data.params)

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        entities = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(entities), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=entities[i : i + MAX_PARAMS_PER_BATCH])

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        from plugins.tracking.context import url_printing_suppressed

        with url_printing_suppressed():
            self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    def log_dict(self, run_id: str, data: object, artifact_file: str) -> None:
        self.client.log_dict(run_id, data, artifact_file)

    def log_artifact(self, run_id: str, local_file: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(local_file), artifact_path)

    def artifact_uri(self, run_id: str) -> str:
        return str(self.client.get_run(run_id).info.artifact_uri)

    def log_dataset(self, run_id: str, trainer: Trainer) -> None:
        from plugins.tracking import artifacts

        artifacts.log_dataset(self.client, trainer, run_id)

    def log_model(self, run_id: str, trainer: Trainer, epoch: int | None, stamps: dict[int, int]) -> None:
        from plugins.tracking import artifacts

        artifacts.log_model(self.client, trainer, run_id, epoch, stamps)

    def point_writer(self, run_id: str) -> PointWriter:
        from plugins.tracking.sqlite_points import open_points

        direct = open_points(self.client, run_id)  # a SQLite store of the layout it knows: its tables directly
        return direct if direct is not None else LogBatchPoints(self.client, run_id)

    def end_run(self, run_id: str, status: str) -> None:
        from plugins.tracking.context import url_printing_suppressed

        with url_printing_suppressed():
            self.client.set_terminated(run_id, status)

    def experiment_tags(self) -> dict[str, str]:
        return dict(self.client.get_experiment(self.experiment_id()).tags)

    def set_experiment_tags(self, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_experiment_tag(self.experiment_id(), key, value)


# -- the local SQLite store, written directly -------------------------------------------------------------------


class LocalPoints:
    """Points straight into a SQLite store's metric tables (`writer.SqliteWriter`), each key's name checked
    as MLflow checks it (at its first point)."""

    def __init__(self, database: str, run_id: str) -> None:
        from plugins.tracking.writer import SqliteWriter

        self.database: str | None = database
        self._writer = SqliteWriter(database, run_id)
        self._keys: set[str] = set()

    def register(self, items: list[Item]) -> None:
        from plugins.tracking.local.store import check_value
        from plugins.tracking.writer import BATCH_LOSS, StepSeries

        for item in items:
            key = BATCH_LOSS if isinstance(item, StepSeries) else item[0]
            if key not in self._keys:
                check_value(key, "", 0)
                self._keys.add(key)

    def write(self, points: list[Point]) -> None:
        self.register(list(points))
        self._writer.write(points)


class LocalTrackingStore:
    """A local SQLite store of a known schema, written with sqlite3 (`plugins.tracking.local`): milliseconds."""

    def __init__(self, store: LocalStore, experiment: Any) -> None:
        self.store = store
        self.experiment = experiment
        self.tracking_uri = store.tracking_uri

    def create_run(self, run_name: str, tags: dict[str, str]) -> str:
        run_id, _ = with_retries(lambda: self.store.create_run(self.experiment, run_name, tags), "creating the run")
        return run_id

    def reopen_run(self, run_id: str) -> dict[str, str]:
        try:
            experiment_id, _, _, _ = self.store.run_row(run_id)
        except KeyError:
            raise UserError(f"--resume: MLflow run {run_id!r} not found in {self.tracking_uri}") from None
        if experiment_id != self.experiment.experiment_id:
            raise UserError(
                f"--resume: MLflow run {run_id!r} belongs to experiment {experiment_id}, not to "
                f"{self.experiment.name!r} ({self.experiment.experiment_id})"
            )
        self.store.set_status(run_id, "RUNNING")
        return self.store.params(run_id)

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        with_retries(lambda: self.store.log_params(run_id, params), "logging the params")

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        with_retries(lambda: self.store.set_tags(run_id, tags), "setting tags")

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.store.log_text(run_id, text, artifact_file)

    def log_dict(self, run_id: str, data: object, artifact_file: str) -> None:
        self.store.log_dict(run_id, data, artifact_file)

    def log_artifact(self, run_id: str, local_file: Path, artifact_path: str | None = None) -> None:
        self.store.log_artifact(run_id, local_file, artifact_path)

    def artifact_uri(self, run_id: str) -> str:
        return self.store.run_row(run_id)[1]

    def log_dataset(self, run_id: str, trainer: Trainer) -> None:
        from plugins.tracking.artifacts import dataset_description
        from plugins.tracking.local.datasets import log_numpy_dataset

        description = dataset_description(trainer)
        if description is not None:
            name, features, targets, source_tags = description
            log_numpy_dataset(
                self.store, run_id, name=name, features=features, targets=targets, source_tags=source_tags
            )

    def log_model(self, run_id: str, trainer: Trainer, epoch: int | None, stamps: dict[int, int]) -> None:
        import tempfile

        from plugins.tracking.artifacts import model_files
        from plugins.tracking.local.models import log_pyfunc_model

        with tempfile.TemporaryDirectory(prefix="backprop-model-") as tmp:
            log_pyfunc_model(self.store, run_id, **model_files(trainer, Path(tmp), epoch, stamps))

    def point_writer(self, run_id: str) -> PointWriter:
        return LocalPoints(str(self.store.database), run_id)

    def end_run(self, run_id: str, status: str) -> None:
        with_retries(lambda: self.store.set_status(run_id, status, end_time=int(time.time() * 1000)), "ending the run")

    def experiment_id(self) -> str:
        return str(self.experiment.experiment_id)

    def experiment_tags(self) -> dict[str, str]:
        return self.store.experiment_tags(self.experiment.experiment_id)

    def set_experiment_tags(self, tags: Mapping[str, str]) -> None:
        with_retries(
            lambda: self.store.set_experiment_tags(self.experiment.experiment_id, tags), "tagging the experiment"
        )


FORCE_MLFLOW = "BACKPROP_TRACKING_CLIENT"
"""Set to "mlflow" to write every run through MLflow's client, the local SQLite store included (a way out,
should the direct path ever misbehave; `tests/tracking` compare the two)."""


def open_store(uri: str, experiment: str) -> TrackingStore:
    """The store a run of `experiment` is written to at `uri`: directly when it can be, else through MLflow."""
    import os

    from plugins.tracking.local import open_local

    local = None if os.environ.get(FORCE_MLFLOW, "").lower() == "mlflow" else open_local(uri)
    if local is not None:
        found = local.experiment_by_name(experiment)
        if found is not None and found.lifecycle_stage == "deleted":
            local.close()
            raise deleted_experiment(experiment, found.experiment_id)
        from plugins.tracking.local.store import local_path

        if found is not None and local_path(found.artifact_location) is not None:
            return LocalTrackingStore(local, found)
        local.close()  # a new experiment (MLflow creates it, and its folder), or artifacts elsewhere
    return MlflowStore(uri, experiment)
