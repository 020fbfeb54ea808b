"""Saving and loading models: the same predictions back, no pickle, nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from framework import Experiment, Model, fit
from framework.errors import UserError
from framework.serialize import atomic_directory, load_arrays
from tests.helpers import digits_config


def test_a_saved_model_predicts_the_same_after_loading(tmp_path: Path) -> None:
    result = fit(Experiment.from_dict(digits_config()))
    X = np.random.default_rng(0).uniform(0, 16, size=(7, 64))
    before = result.model.predict(X)
    result.model.save(tmp_path / "model")
    loaded = Model.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict(X), before)
    # Probabilities: the loss's link (softmax) is restored with the model.
    np.testing.assert_allclose(loaded.predict(X).sum(axis=1), 1.0, rtol=1e-5)
    description = json.loads((tmp_path / "model" / "model.json").read_text())
    assert description["layers"][0]["activation"] == "relu"
    assert description["loss"] == {"name": "cross_entropy", "label_smoothing": 0.0, "class_weight": None}
    assert len(description["target_names"]) == 10


def test_files_hold_no_pickle_and_object_arrays_are_refused(tmp_path: Path) -> None:
    crafted = tmp_path / "weights.npz"
    np.savez(crafted, evil=np.array([object()], dtype=object))  # would need pickle to load
    with pytest.raises(UserError, match="refused to load"):
        load_arrays(crafted)


def test_a_failed_save_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "partial").write_text("x")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_loading_something_else_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"no model\.json"):
        Model.load(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(UserError, match="not a backprop model"):
        Model.load(tmp_path)
