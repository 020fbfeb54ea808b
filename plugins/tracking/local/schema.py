"""What `LocalStore` knows of MLflow's SQLite schema: the alembic revisions it was checked against, and the
columns of the tables it writes."""

from __future__ import annotations

import sqlite3

KNOWN_REVISIONS = frozenset({"dc11669786a5", "f4a9b2c7d1e6"})
"""Alembic revisions of MLflow's schema whose tables `LocalStore` writes as MLflow does: MLflow 3.17's head, and
3.18's, whose three new revisions touch only the issue, skill and MCP tables (none that `LocalStore` writes).

A store at another revision (an MLflow upgrade migrates it) is written through MLflow's client; the test suite
checks that the installed MLflow creates stores at a revision listed here, so an upgrade that changes the
schema fails a test instead of making runs silently slower."""

COLUMNS: dict[str, tuple[str, ...]] = {
    "experiments": (
        "experiment_id",
        "name",
        "artifact_location",
        "lifecycle_stage",
        "creation_time",
        "last_update_time",
        "workspace",
    ),
    "runs": (
        "run_uuid",
        "name",
        "source_type",
        "source_name",
        "entry_point_name",
        "user_id",
        "status",
        "start_time",
        "end_time",
        "source_version",
        "lifecycle_stage",
        "artifact_uri",
        "experiment_id",
        "deleted_time",
    ),
    "tags": ("key", "value", "run_uuid"),
    "experiment_tags": ("key", "value", "experiment_id"),
    "params": ("key", "value", "run_uuid"),
    "metrics": ("key", "value", "timestamp", "run_uuid", "step", "is_nan"),
    "latest_metrics": ("key", "value", "timestamp", "step", "is_nan", "run_uuid"),
    "datasets": (
        "dataset_uuid",
        "experiment_id",
        "name",
        "digest",
        "dataset_source_type",
        "dataset_source",
        "dataset_schema",
        "dataset_profile",
    ),
    "inputs": ("input_uuid", "source_type", "source_id", "destination_type", "destination_id", "step"),
    "input_tags": ("input_uuid", "name", "value"),
    "logged_models": (
        "model_id",
        "experiment_id",
        "name",
        "artifact_location",
        "creation_timestamp_ms",
        "last_updated_timestamp_ms",
        "status",
        "lifecycle_stage",
        "model_type",
        "source_run_id",
        "status_message",
    ),
    "logged_model_tags": ("model_id", "experiment_id", "tag_key", "tag_value"),
    "logged_model_params": ("model_id", "experiment_id", "param_key", "param_value"),
    "logged_model_metrics": (
        "model_id",
        "metric_name",
        "metric_timestamp_ms",
        "metric_step",
        "metric_value",
        "experiment_id",
        "run_id",
        "dataset_uuid",
        "dataset_name",
        "dataset_digest",
    ),
}
"""The tables `LocalStore` writes, with their columns in the order of MLflow 3.17's and 3.18's schema."""


def problem(connection: sqlite3.Connection) -> str | None:
    """Why `LocalStore` must not write this database (its revision or a table is not the one it knows), or None."""
    try:
        revisions = {row[0] for row in connection.execute("SELECT version_num FROM alembic_version")}
    except sqlite3.Error as exc:
        return f"no alembic revision ({exc})"
    if len(revisions) != 1 or not revisions <= KNOWN_REVISIONS:
        return f"schema revision {sorted(revisions)} is not one of {sorted(KNOWN_REVISIONS)}"
    for table, columns in COLUMNS.items():
        found = tuple(row[1] for row in connection.execute(f"PRAGMA table_info({table})"))
        if found != columns:
            return f"table {table} has columns {found}, expected {columns}"
    return None
