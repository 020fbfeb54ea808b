"""Shared fixtures: a private MLflow store per test, and small experiments."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# MLflow must neither phone home nor print URLs during tests.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

from tests.helpers import EXPERIMENTS, ROOT  # noqa: F401  (re-exported for fixtures)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite MLflow store in a temporary directory, used by everything in the test."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri
