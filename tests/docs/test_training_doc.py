"""docs/training.md: its python blocks run, and it documents every option the code declares."""

from __future__ import annotations

from pathlib import Path

import pytest

from framework.config import DataSection, OptimizerSection, TrainingSection
from framework.pluginmanager import create_plugin_manager
from framework.registry import Registry
from tests.docs.markdown import run_markdown_python
from tests.helpers import ROOT

PAGE = ROOT / "docs" / "training.md"


def test_training_page_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    namespace = run_markdown_python(PAGE)
    assert namespace["resumed"].history.metrics == namespace["whole"].history.metrics
    assert not (tmp_path / "mlflow.db").exists()


def test_every_option_is_documented() -> None:
    # The page, with the generated reference of every component (docs/components/) that it links to.
    text = PAGE.read_text() + "".join(p.read_text() for p in sorted((ROOT / "docs" / "components").glob("*.md")))
    keys = [*OptimizerSection.model_fields, *TrainingSection.model_fields, *DataSection.model_fields]
    registry = Registry.from_host(create_plugin_manager())
    for kind in ("optimizer", "callback", "layer", "metric"):
        for name, entry in registry.entries(kind).items():
            if entry.plugin in {"tracking", "progress"}:
                continue
            assert f"`{name}`" in text, f"{kind} {name}"
            keys += list(entry.cls.Params.model_fields)
    for dataset in ("csv", "npz"):
        keys += list(registry.get("dataset", dataset).Params.model_fields)
    missing = sorted(
        {k for k in keys if f"`{k}`" not in text and k not in {"name", "metrics", "epochs", "batch_size", "shuffle"}}
    )
    assert not missing, f"undocumented options: {missing}"
