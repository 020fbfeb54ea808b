"""The pyfunc loader: exact through backprop, and equal up to rounding with numpy alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from framework import Experiment, fit
from plugins.tracking import backprop_pyfunc
from tests.helpers import digits_config, xor_config


def trained(config: dict[str, Any], tmp_path: Path) -> tuple[Any, Path]:
    result = fit(Experiment.from_dict(config))
    path = tmp_path / "model"
    result.model.save(path)
    return result.model, path


@pytest.mark.parametrize(
    "config",
    [
        digits_config(),
        xor_config(),
        {
            **digits_config(),
            "data": {"name": "diabetes", "validation_split": 0.2, "standardize_target": True},
            "model": {"layers": [{"units": 16, "activation": "tanh"}, {"units": 1}]},
            "loss": {"name": "mse"},
        },
    ],
    ids=["softmax", "sigmoid", "regression-with-target-scaling"],
)
def test_both_paths_predict_what_the_trainer_predicts(config: dict[str, Any], tmp_path: Path) -> None:
    model, path = trained(config, tmp_path)
    X = np.random.default_rng(0).normal(size=(50, model.input_dim)) * 3
    expected = model.predict(X)
    np.testing.assert_array_equal(backprop_pyfunc.load(path).predict(X), expected)
    numpy_only = backprop_pyfunc.load(path, use_backprop=False)
    assert isinstance(numpy_only, backprop_pyfunc.BackpropModel)
    np.testing.assert_allclose(numpy_only.predict(X), expected, rtol=2e-5, atol=1e-6)


def test_numpy_alone_refuses_components_only_plugins_know(tmp_path: Path) -> None:
    config = digits_config()
    config["model"]["layers"].insert(1, {"type": "dropout", "rate": 0.1})
    _, path = trained(config, tmp_path)
    with pytest.raises(ValueError, match="layer 1 of type 'dropout'"):
        backprop_pyfunc.load(path, use_backprop=False)
