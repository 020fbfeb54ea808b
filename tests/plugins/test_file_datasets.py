"""CSV and numpy file datasets: targets by name, labels encoded, paths relative to the experiment file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from framework import Experiment, fit
from framework.build import prepare_run
from framework.errors import DataError

CSV = """area,rooms,kind,price
50,2,flat,1.5
80,3,house,2.5
65,2,flat,2.0
120,5,house,4.0
70;,3,flat,2.1
"""


def experiment(tmp_path: Path, data: dict[str, Any], **overrides: Any) -> Experiment:
    layers = overrides.pop("layers", [{"units": 4, "activation": "tanh"}, {"units": 1}])
    config = {
        "name": "files",
        "data": {"validation_split": 0, **data},
        "model": {"layers": layers},
        "loss": {"name": overrides.pop("loss", "mse")},
        "optimizer": {"name": "sgd", "lr": 0.01},
        "training": {"epochs": 2, "batch_size": 4},
        "tracking": {"enabled": False},
        **overrides,
    }
    path = tmp_path / "exp.json"
    import json

    path.write_text(json.dumps(config))
    return Experiment.from_file(path)


def write(tmp_path: Path, text: str, name: str = "data.csv") -> None:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / name).write_text(text)


def test_csv_regression_target_by_name_relative_to_the_experiment(tmp_path: Path) -> None:
    write(tmp_path, "area,rooms,price\n50,2,1.5\n80,3,2.5\n65,2,2.0\n120,5,4.0\n")
    run = prepare_run(experiment(tmp_path, {"name": "csv", "path": "data/data.csv", "target": "price"}), track=False)
    bundle = run.trainer.dataset  # type: ignore[attr-defined]
    assert bundle.task == "regression" and bundle.feature_names == ["area", "rooms"]
    np.testing.assert_array_equal(bundle.y, [1.5, 2.5, 2.0, 4.0])


def test_csv_text_labels_are_encoded_and_kept_as_target_names(tmp_path: Path) -> None:
    write(tmp_path, "area;rooms;kind\n50;2;flat\n80;3;house\n65;2;flat\n120;5;house\n90;4;villa\n")
    data = {"name": "csv", "path": "data/data.csv", "target": "kind", "delimiter": ";"}
    layers = [{"units": 4, "activation": "tanh"}, {"units": 3}]
    run = prepare_run(experiment(tmp_path, data, layers=layers, loss="cross_entropy"), track=False)
    bundle = run.trainer.dataset  # type: ignore[attr-defined]
    assert bundle.task == "multiclass" and bundle.target_names == ["flat", "house", "villa"]
    np.testing.assert_array_equal(bundle.y, [0, 1, 0, 1, 2])
    assert run.trainer.model.target_names == ["flat", "house", "villa"]


def test_csv_errors_name_the_column(tmp_path: Path) -> None:
    write(tmp_path, CSV)
    with pytest.raises(DataError, match=r"column 'area' is not numeric \('70;' in data row 5\)"):
        fit(experiment(tmp_path, {"name": "csv", "path": "data/data.csv", "target": "price", "features": ["area"]}))
    with pytest.raises(DataError, match=r"no column 'prise'.*Did you mean 'price'\?"):
        fit(experiment(tmp_path, {"name": "csv", "path": "data/data.csv", "target": "prise"}))
    with pytest.raises(DataError, match=r"file .*missing\.csv' not found"):
        fit(experiment(tmp_path, {"name": "csv", "path": "missing.csv"}))
    write(tmp_path, "a,b,y\n1,,0.5\n2,3,0.7\n")  # an empty cell is a missing value: refused, column named
    with pytest.raises(DataError, match="feature 'b' has NaN or infinite values"):
        fit(experiment(tmp_path, {"name": "csv", "path": "data/data.csv"}))


def test_npz_and_npy(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    X = np.arange(12.0).reshape(6, 2)
    np.savez(tmp_path / "data" / "d.npz", X=X, y=np.array([3, 5, 3, 5, 3, 5]))
    layers = [{"units": 4, "activation": "tanh"}, {"units": 1}]
    exp = experiment(tmp_path, {"name": "npz", "path": "data/d.npz"}, layers=layers, loss="binary_cross_entropy")
    bundle = prepare_run(exp, track=False).trainer.dataset  # type: ignore[attr-defined]
    assert bundle.task == "binary" and bundle.target_names == ["3", "5"]
    np.testing.assert_array_equal(bundle.y, [0, 1, 0, 1, 0, 1])
    np.save(tmp_path / "data" / "d.npy", np.column_stack([X, X.sum(axis=1)]))
    bundle = prepare_run(experiment(tmp_path, {"name": "npz", "path": "data/d.npy"}), track=False).trainer.dataset  # type: ignore[attr-defined]
    assert bundle.task == "regression" and bundle.X.shape == (6, 2)
    np.save(tmp_path / "data" / "objects.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match="refused to load"):
        fit(experiment(tmp_path, {"name": "npz", "path": "data/objects.npy"}))


def test_guard_rails_before_training(tmp_path: Path) -> None:
    # Targets that do not fit the loss are reported before training, in one line.
    write(tmp_path, "a,b,y\n1,2,0\n2,3,1\n3,4,2\n4,5,1\n")
    data = {"name": "csv", "path": "data/data.csv", "task": "multiclass"}
    with pytest.raises(DataError, match="the last layer has 1 units, but cross_entropy needs one output per class"):
        fit(experiment(tmp_path, data, loss="cross_entropy"))
    with pytest.raises(Exception, match=r"loss 'binary_cross_entropy' is for binary tasks"):
        fit(experiment(tmp_path, data, loss="binary_cross_entropy"))


def test_standardised_regression_targets_are_stored_with_the_model(tmp_path: Path) -> None:
    rows = "\n".join(f"{x},{100 + 50 * x}" for x in range(20))
    write(tmp_path, "x,y\n" + rows + "\n")
    exp = experiment(tmp_path, {"name": "csv", "path": "data/data.csv", "standardize_target": True})
    result = fit(exp)
    scaler = result.model.target_scaler
    assert scaler is not None
    assert scaler.mean[0] == pytest.approx(100 + 50 * 9.5)
    # Predictions come back in the targets' units, also after saving and loading.
    model_dir = result.model.save(tmp_path / "model")
    from framework.model import Model

    loaded = Model.load(model_dir)
    x = np.array([[3.0], [10.0]])
    np.testing.assert_allclose(loaded.predict(x), result.model.predict(x), rtol=1e-6)
    assert np.all(np.abs(result.model.predict(x)) > 10)  # not standardised units
