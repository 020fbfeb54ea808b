"""Twin MLflow stores: one database written through MLflow's client, its copy written by `LocalStore`, and
their rows dumped so that a test can compare them (uuids, timestamps and the twins' own folders normalised).

The twins start as the same file (an MLflow store with one experiment, copied with SQLite's backup API), so
every difference after the same operations on each comes from the operations. Each twin has its own artifact
folder: the copy's experiment is pointed at it, and `dump` writes both folders as `<artifacts>`.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framework.mlflow_store import open_client
from plugins.tracking.local import LocalStore, open_local
from plugins.tracking.local.store import Experiment

UUID_HEX = re.compile(r"[0-9a-f]{32}")
"""How MLflow writes its ids (runs, datasets, inputs, the hex part of `m-...` model ids): `uuid.uuid4().hex`."""
ARTIFACTS = "<artifacts>"

Row = dict[str, Any]


@dataclass
class Twins:
    """An MLflow-written store (`client`, database `mlflow_db`) and its twin written directly (`local`)."""

    client: Any
    local: LocalStore
    mlflow_db: Path
    local_db: Path
    experiment_id: str
    mlflow_artifacts: Path
    local_artifacts: Path

    @property
    def local_uri(self) -> str:
        return f"sqlite:///{self.local_db}"

    def local_experiment(self) -> Experiment:
        experiment = self.local.experiment_by_name(self.client.get_experiment(self.experiment_id).name)
        assert experiment is not None
        return experiment

    def local_client(self) -> Any:
        """An MLflow client on the directly written twin: MLflow's reading of what `LocalStore` wrote."""
        return open_client(self.local_uri)

    def dumps(self, tables: Iterable[str], ignore: Mapping[str, Iterable[str]] | None = None) -> tuple[Any, Any]:
        """`dump` of each twin: (MLflow's, LocalStore's)."""
        tables = list(tables)
        return (
            dump(self.mlflow_db, tables, ignore, {str(self.mlflow_artifacts): ARTIFACTS}),
            dump(self.local_db, tables, ignore, {str(self.local_artifacts): ARTIFACTS}),
        )

    def close(self) -> None:
        self.local.close()


def make_twins(directory: Path, experiment: str = "twins") -> Twins:
    """Twin stores under `directory` (`mlflow/` and `local/`), each with the experiment `experiment`.

    The caller closes the result (`close()`): it holds a connection to the local twin.
    """
    mlflow_db, local_db = directory / "mlflow" / "mlflow.db", directory / "local" / "mlflow.db"
    mlflow_artifacts, local_artifacts = directory / "mlflow" / "artifacts", directory / "local" / "artifacts"
    for folder in (mlflow_artifacts, local_artifacts):
        folder.mkdir(parents=True)
    client = open_client(f"sqlite:///{mlflow_db}")
    experiment_id = client.create_experiment(experiment, artifact_location=str(mlflow_artifacts))
    with closing(sqlite3.connect(mlflow_db)) as source, closing(sqlite3.connect(local_db)) as target:
        source.backup(target)
        with target:
            target.execute(
                "UPDATE experiments SET artifact_location = replace(artifact_location, ?, ?)",
                (str(mlflow_artifacts), str(local_artifacts)),
            )
    local = open_local(f"sqlite:///{local_db}")
    assert local is not None, "LocalStore refuses the schema of the installed MLflow's store"
    return Twins(client, local, mlflow_db, local_db, experiment_id, mlflow_artifacts, local_artifacts)


def dump(
    database: Path,
    tables: Iterable[str],
    ignore: Mapping[str, Iterable[str]] | None = None,
    replace: Mapping[str, str] | None = None,
) -> dict[str, list[Row]]:
    """Every row of `tables`, in insertion order, as {column: value}, normalised for comparing twins.

    Ids (32 hex digits, alone or inside a value) become `<uuid1>`, `<uuid2>`, ... in order of first
    appearance over the tables in the order given, so that references between rows (an input's `source_id`
    and its dataset's `dataset_uuid`) stay visible; each text of `replace` is replaced; the columns of
    `ignore` (table -> columns, such as timestamps) are left out. Values keep their SQLite type: 0 is not '0'.
    """
    ignore = ignore or {}
    names: dict[str, str] = {}

    def normalise(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        for old, new in (replace or {}).items():
            value = value.replace(old, new)
        return UUID_HEX.sub(lambda m: names.setdefault(m.group(), f"<uuid{len(names) + 1}>"), value)

    with closing(sqlite3.connect(database)) as connection:
        result: dict[str, list[Row]] = {}
        for table in tables:
            cursor = connection.execute(f"SELECT * FROM {table} ORDER BY rowid")
            columns = [column[0] for column in cursor.description]
            skipped = set(ignore.get(table, ()))
            result[table] = [
                {c: normalise(v) for c, v in zip(columns, row, strict=True) if c not in skipped} for row in cursor
            ]
    return result
