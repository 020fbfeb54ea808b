"""Property-based tests (issue 7): any valid small config trains; no invalid config or `--set` ends in a traceback."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from framework import Experiment, fit
from framework.cli import app
from tests.helpers import xor_config

ACTIVATIONS = ["identity", "leaky_relu", "relu", "sigmoid", "tanh"]
OPTIMIZERS = ["sgd", "momentum", "adam", "adamw", "rmsprop", "adagrad"]
DATASETS = {  # name: (loss, output units, validation split)
    "xor": ("binary_cross_entropy", 1, 0.0),
    "iris": ("cross_entropy", 3, 0.2),
    "digits": ("cross_entropy", 10, 0.2),
}


@st.composite
def valid_configs(draw: st.DrawFn) -> dict[str, Any]:
    dataset = draw(st.sampled_from(sorted(DATASETS)))
    loss, outputs, split = DATASETS[dataset]
    hidden = draw(
        st.lists(
            st.one_of(
                st.builds(
                    lambda units, activation: {"units": units, "activation": activation},
                    st.integers(1, 24),
                    st.sampled_from(ACTIVATIONS),
                ),
                st.builds(lambda rate: {"type": "dropout", "rate": rate}, st.floats(0.0, 0.9)),
            ),
            max_size=3,
        )
    )
    return {
        "name": "property",
        "seed": draw(st.integers(0, 2**31)),
        "dtype": draw(st.sampled_from(["float32", "float64"])),
        "data": {"name": dataset, "validation_split": split, "standardize": draw(st.booleans())},
        "model": {"layers": [*hidden, {"units": outputs}]},
        "loss": {"name": loss},
        "optimizer": {
            "name": draw(st.sampled_from(OPTIMIZERS)),
            "lr": draw(st.floats(1e-5, 10.0).map(lambda x: float(f"{x:.3g}"))),
        },
        "training": {"epochs": 1, "batch_size": draw(st.integers(1, 256)), "shuffle": draw(st.booleans())},
        "tracking": {"enabled": False},
    }


@settings(max_examples=25, deadline=None, database=None)
@given(valid_configs())
def test_a_valid_config_trains_one_epoch(config: dict[str, Any]) -> None:
    result = fit(Experiment.from_dict(config), track=False)
    assert len(result.history) == 1
    loss = result.history.metrics["train_loss"][0]
    # A huge rate may diverge: that is a stop reason, with the initial weights kept, never an exception.
    assert result.stop_reason == "completed 1 epochs" or not math.isfinite(loss), result.stop_reason


KEYS = [
    "name", "seed", "dtype", "plugins", "disabled_plugins",
    "data.name", "data.validation_split", "data.standardize", "data.standardize_target", "data.path",
    "model.layers", "model.layers.0", "model.layers.0.units", "model.layers.0.activation", "model.layers.0.type",
    "model.layers.1.units", "model.layers.0.rate", "model.layers.0.init",
    "loss.name", "optimizer.name", "optimizer.lr", "optimizer.momentum", "optimizer.clip_norm",
    "optimizer.weight_decay", "training.epochs", "training.batch_size", "training.shuffle", "training.metrics",
    "training.checkpoint_every", "callbacks.early_stopping.patience", "callbacks.early_stopping.monitor",
    "callbacks.step_lr.step_size", "callbacks.cosine_lr.warmup_epochs", "tracking.enabled", "sweep.trials",
]  # fmt: skip
SEGMENTS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_019.", min_size=1, max_size=8)
SCALARS = st.one_of(
    st.integers(-3, 3).map(str),
    st.sampled_from(["0.5", "-0.5", "1e-3", "1e30", "nan", "inf", "-inf", "true", "false", "0", "1"]),
    st.sampled_from(ACTIVATIONS + OPTIMIZERS + sorted(DATASETS) + ["mse", "accuracy", "val_loss", "csv"]).map(
        lambda s: f'"{s}"'
    ),
    st.text(max_size=12),  # anything at all, unquoted: read as text, or refused
    st.sampled_from(["[1,", "{", '"open', "[]", "{}", "[1, 2]", '["accuracy"]', "{units = 2}", "[{units = 1}]"]),
)


@st.composite
def overrides(draw: st.DrawFn) -> list[str]:
    chosen = []
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.one_of(st.sampled_from(KEYS), st.lists(SEGMENTS, min_size=1, max_size=3).map(".".join)))
        chosen.append(f"{key}={draw(SCALARS)}")
    return chosen


@pytest.fixture(scope="module")
def xor_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import json

    path = tmp_path_factory.mktemp("properties") / "xor.json"
    path.write_text(json.dumps(xor_config(training={"epochs": 1, "batch_size": 4})))
    return path


@settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sets=overrides())
def test_no_override_ends_in_a_traceback(sets: list[str], xor_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(xor_file.parent)
    args = ["run", str(xor_file), "--no-track", "-q"] + [a for s in sets for a in ("--set", s)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code in {0, 2}, (sets, result.output)
    assert "Traceback" not in result.output
    if result.exit_code == 2:  # one line per problem, the first one says "error:"
        assert result.output.lstrip().startswith("error: "), result.output


DOCUMENTS = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
        lambda children: st.one_of(
            st.lists(children, max_size=3), st.dictionaries(st.sampled_from([*KEYS, "x"]), children, max_size=4)
        ),
        max_leaves=10,
    ).map(lambda value: __import__("json").dumps(value)),
)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=DOCUMENTS, suffix=st.sampled_from([".toml", ".yaml", ".json"]))
def test_no_config_file_ends_in_a_traceback(
    text: str, suffix: str, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    where = tmp_path_factory.mktemp("documents")
    monkeypatch.chdir(where)
    path = where / f"exp{suffix}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    result = CliRunner().invoke(app, ["run", str(path), "--no-track", "-q"])
    assert result.exit_code == 2, (text, result.output)  # no generated document is a whole valid experiment
    assert "Traceback" not in result.output
    assert result.output.lstrip().startswith("error: "), result.output
