"""Sweep definitions: grids, random draws, hashes."""

from __future__ import annotations

import math

import pytest

from framework.config import SweepSection
from framework.errors import ConfigError
from framework.sweep import Distribution, config_hash, definition_hash, make_trials, parse_grid, parse_params
from tests.helpers import digits_config


def test_a_grid_is_the_product_of_its_keys_in_order() -> None:
    sweep = SweepSection(grid=parse_grid(["optimizer.lr=0.01,0.1", "model.layers.0.units=16,32"]))
    trials = make_trials(digits_config(), sweep)
    assert [t.overrides for t in trials] == [
        {"optimizer.lr": 0.01, "model.layers.0.units": 16},
        {"optimizer.lr": 0.01, "model.layers.0.units": 32},
        {"optimizer.lr": 0.1, "model.layers.0.units": 16},
        {"optimizer.lr": 0.1, "model.layers.0.units": 32},
    ]
    assert trials[3].config["optimizer"]["lr"] == 0.1
    assert trials[3].config["model"]["layers"][0]["units"] == 32
    assert trials[0].config["optimizer"]["momentum"] == 0.9  # the rest of the base config is kept


def test_random_draws_are_repeatable_under_a_seed_and_stay_in_range() -> None:
    params = parse_params(
        [
            "optimizer.lr=loguniform(1e-4, 1e-1)",
            "training.batch_size=int(8, 64)",
            "optimizer.name=choice(sgd, momentum)",
        ]
    )
    first = make_trials(digits_config(), SweepSection(params=params, trials=20, seed=7))
    again = make_trials(digits_config(), SweepSection(params=params, trials=20, seed=7))
    other = make_trials(digits_config(), SweepSection(params=params, trials=20, seed=8))
    assert [t.overrides for t in first] == [t.overrides for t in again]
    assert [t.overrides for t in first] != [t.overrides for t in other]
    for trial in first:
        assert 1e-4 <= trial.overrides["optimizer.lr"] <= 1e-1
        assert isinstance(trial.overrides["training.batch_size"], int)
        assert 8 <= trial.overrides["training.batch_size"] <= 64
        assert trial.overrides["optimizer.name"] in {"sgd", "momentum"}
    # loguniform spreads over the decades: about half the draws below the geometric middle.
    below = sum(t.overrides["optimizer.lr"] < math.sqrt(1e-4 * 1e-1) for t in first)
    assert 4 <= below <= 16


def test_grid_and_random_combine() -> None:
    sweep = SweepSection(
        grid={"optimizer.name": ["sgd", "momentum"]}, params={"optimizer.lr": "uniform(0.01, 0.1)"}, trials=3
    )
    trials = make_trials(digits_config(), sweep)
    assert len(trials) == 6
    assert {t.overrides["optimizer.name"] for t in trials} == {"sgd", "momentum"}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("normal(0, 1)", "is not a distribution"),
        ("uniform(1)", "takes two numbers"),
        ("uniform(2, 1)", "needs a < b"),
        ("loguniform(0, 1)", "needs a > 0"),
        ("int(1.5, 3)", "two integers"),
    ],
)
def test_bad_distributions_are_named(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=r"sweep param optimizer\.lr") as info:
        Distribution.parse("optimizer.lr", text)
    assert fragment in str(info.value)


def test_a_sweep_that_varies_nothing_or_lacks_trials_is_an_error() -> None:
    with pytest.raises(ConfigError, match="varies nothing"):
        make_trials(digits_config(), SweepSection())
    with pytest.raises(ConfigError, match="need a number of trials"):
        make_trials(digits_config(), SweepSection(params={"optimizer.lr": "uniform(0.1, 1)"}))
    with pytest.raises(ConfigError, match="expected KEY=V1,V2"):
        parse_grid(["optimizer.lr"])


def test_hashes_ignore_the_run_name_but_not_the_values() -> None:
    a = digits_config()
    b = digits_config()
    b["tracking"] = {**b["tracking"], "run_name": "another"}
    c = digits_config(optimizer={"name": "momentum", "lr": 0.06, "momentum": 0.9})
    assert config_hash(a) == config_hash(b) != config_hash(c)
    sweep = SweepSection(grid={"optimizer.lr": [0.1, 0.2]})
    assert definition_hash(a, sweep) == definition_hash(b, sweep)
    assert definition_hash(a, sweep) != definition_hash(a, SweepSection(grid={"optimizer.lr": [0.1, 0.3]}))
    assert definition_hash(a, sweep) == definition_hash(a, sweep.model_copy(update={"metric": "val_accuracy"}))
