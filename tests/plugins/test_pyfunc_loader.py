"""The pyfunc loader: through backprop and with numpy alone, a saved model predicts the trainer's bits.

The last test follows one model with batch_norm everywhere it can be served from: `Model.load`, the loader both
ways, `backprop predict`, and `mlflow.pyfunc.load_model` of the model a tracked run logged, in this process
and in one where backprop cannot be imported at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from framework import Experiment, Layer, fit, hookimpl
from framework.components import Array
from framework.model import Model
from plugins.layers.normalization import BatchNorm
from plugins.tracking import backprop_pyfunc
from tests.helpers import digits_config, xor_config

pytestmark = [
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"),
    # mlflow.pyfunc asks loader modules for type hints; ours is numpy-only on purpose.
    pytest.mark.filterwarnings("ignore:.*type hint.*:UserWarning"),
]

NORMALISED = [
    {"units": 32, "activation": {"name": "leaky_relu", "negative_slope": 0.2}},
    {"type": "batch_norm"},
    {"type": "gaussian_noise", "stddev": 0.1},
    {"units": 16, "activation": "tanh"},
    {"type": "layer_norm"},
    {"type": "dropout", "rate": 0.2},
    {"type": "batch_norm", "affine": False, "momentum": 0.9},
    {"units": 10},
]
"""Every layer the numpy-only loader computes, batch_norm with and without its affine map."""


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
            "model": {"layers": [{"units": 16, "activation": "tanh"}, {"type": "batch_norm"}, {"units": 1}]},
            "loss": {"name": "mse"},
        },
        digits_config(model={"layers": NORMALISED}, training={"epochs": 3, "batch_size": 32}),
    ],
    ids=["softmax", "sigmoid", "regression-with-batch-norm-and-target-scaling", "every-layer"],
)
def test_both_paths_predict_what_the_trainer_predicts_bit_for_bit(config: dict[str, Any], tmp_path: Path) -> None:
    model, path = trained(config, tmp_path)
    X = np.random.default_rng(0).normal(size=(50, model.input_dim)) * 3
    expected = model.predict(X)
    np.testing.assert_array_equal(backprop_pyfunc.load(path).predict(X), expected)
    numpy_only = backprop_pyfunc.load(path, use_backprop=False)
    assert isinstance(numpy_only, backprop_pyfunc.BackpropModel)
    np.testing.assert_array_equal(numpy_only.predict(X), expected)


def test_numpy_alone_refuses_components_only_plugins_know(tmp_path: Path) -> None:
    class Doubling(Layer):
        """y = 2x (a plugin's layer, which the numpy-only loader cannot know)."""

        name: ClassVar[str] = "doubling"

        def build(self, input_dim: int, dtype: np.dtype[Any], rng: np.random.Generator) -> int:
            return input_dim

        def forward(self, x: Array, training: bool) -> Array:
            return 2 * x

        def backward(self, grad: Array) -> Array | None:
            return 2 * grad

    class Plugin:
        @hookimpl
        def register_layers(self) -> list[type[Layer]]:
            return [Doubling]

    config = digits_config()
    config["model"]["layers"].insert(1, {"type": "doubling"})
    result = fit(Experiment.from_dict(config), plugins=[Plugin()])
    result.model.save(tmp_path / "model")
    with pytest.raises(ValueError, match="layer 1 of type 'doubling', which only backprop's plugins can compute"):
        backprop_pyfunc.load(tmp_path / "model", use_backprop=False)


def test_a_missing_weight_is_named(tmp_path: Path) -> None:
    _, path = trained(digits_config(model={"layers": [{"units": 8}, {"type": "batch_norm"}, {"units": 10}]}), tmp_path)
    with np.load(path / "weights.npz") as data:
        arrays = {k: data[k] for k in data.files if k != "layer1.running_var"}
    np.savez(path / "weights.npz", **arrays)
    with pytest.raises(ValueError, match=r"no array 'layer1\.running_var' \(a weight of layer 1\)"):
        backprop_pyfunc.load(path, use_backprop=False)


SERVE_WITHOUT_BACKPROP = """\
import json
import sys


class BlockBackprop:
    \"\"\"`framework` and `plugins` cannot be imported: a machine where backprop is not installed.\"\"\"

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"framework", "plugins"}:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None


sys.meta_path.insert(0, BlockBackprop())

import mlflow.pyfunc
import numpy as np

model = mlflow.pyfunc.load_model(sys.argv[1])
np.save(sys.argv[3], model.predict(np.load(sys.argv[2])))
print(json.dumps({
    "backprop_modules": sorted(m for m in sys.modules if m.partition(".")[0] in {"framework", "plugins"}),
    "formulas_from": sys.modules["backprop_pyfunc"].F.__name__,
}))
"""


@pytest.mark.slow
def test_a_model_with_batch_norm_predicts_the_same_bits_wherever_it_is_served(store: str, tmp_path: Path) -> None:
    import mlflow.artifacts
    import mlflow.pyfunc
    from sklearn.datasets import load_digits

    config = digits_config(
        name="bits", model={"layers": NORMALISED}, training={"epochs": 3, "batch_size": 32}, tracking={"enabled": True}
    )
    result = fit(Experiment.from_dict(config), track=True)
    assert result.run_id is not None
    X = np.concatenate([load_digits().data[:40], np.random.default_rng(1).uniform(-4, 20, size=(10, 64))])
    expected = result.model.predict(X)
    assert expected.dtype == np.float32
    bn = result.model.layers[1]
    assert isinstance(bn, BatchNorm)
    assert not np.array_equal(bn.running_var, np.ones_like(bn.running_var))  # trained statistics, not the initial

    result.model.save(tmp_path / "saved")
    np.testing.assert_array_equal(Model.load(tmp_path / "saved").predict(X), expected)
    np.testing.assert_array_equal(backprop_pyfunc.load(tmp_path / "saved").predict(X), expected)
    np.testing.assert_array_equal(backprop_pyfunc.load(tmp_path / "saved", use_backprop=False).predict(X), expected)

    # `backprop predict` takes the run's id (the model it logged) and a CSV file with a header.
    csv = tmp_path / "x.csv"
    rows = [",".join(f"f{i}" for i in range(64))] + [",".join(repr(float(v)) for v in row) for row in X]
    csv.write_text("\n".join(rows) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "framework.cli", "predict", result.run_id, "--input", str(csv)],
        cwd=tmp_path,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    header, *lines = done.stdout.strip().splitlines()
    assert header.split(",") == [f"p_{c}" for c in range(10)]
    printed = np.array([[float(v) for v in line.split(",")] for line in lines])  # repr of float32 values: exact
    np.testing.assert_array_equal(printed.astype(np.float32), expected)

    local = mlflow.artifacts.download_artifacts(artifact_uri=f"runs:/{result.run_id}/model", dst_path=str(tmp_path))
    X32 = X.astype(np.float32)  # the model's input schema
    np.testing.assert_array_equal(mlflow.pyfunc.load_model(local).predict(X32), expected)

    np.save(tmp_path / "X.npy", X32)
    (tmp_path / "serve.py").write_text(SERVE_WITHOUT_BACKPROP)
    served = subprocess.run(
        [sys.executable, str(tmp_path / "serve.py"), local, str(tmp_path / "X.npy"), str(tmp_path / "y.npy")],
        cwd=tmp_path,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert served.returncode == 0, served.stderr
    report = json.loads(served.stdout.strip().splitlines()[-1])
    assert report == {"backprop_modules": [], "formulas_from": "backprop_functional"}  # numpy alone, shipped formulas
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)
