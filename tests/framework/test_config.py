"""Reading, overriding and validating experiment files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from framework.config import Experiment, apply_overrides, flatten, parse_value
from framework.errors import ConfigError
from tests.helpers import EXPERIMENTS, xor_config


def test_the_same_experiment_reads_the_same_from_toml_yaml_and_json(tmp_path: Path) -> None:
    from_toml = Experiment.from_file(EXPERIMENTS / "digits.toml")
    data = from_toml.to_dict()
    (tmp_path / "d.json").write_text(json.dumps(data))
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(data))
    assert Experiment.from_file(tmp_path / "d.json").to_dict() == data
    assert Experiment.from_file(tmp_path / "d.yaml").to_dict() == data
    assert data["optimizer"] == {
        "name": "momentum",
        "lr": 0.05,
        "momentum": 0.9,
        # The options the core applies for every optimiser, unset until the config is resolved.
        "weight_decay": None,
        "clip_norm": None,
        "clip_value": None,
    }
    assert data["model"]["layers"][0] == {"type": "dense", "units": 64, "activation": "relu"}


def test_overrides_set_nested_keys_with_typed_values() -> None:
    data = xor_config()
    apply_overrides(data, ["optimizer.lr=0.25", "optimizer.name=momentum", "model.layers.0.units=8"])
    assert data["optimizer"] == {"name": "momentum", "lr": 0.25}
    assert data["model"]["layers"][0]["units"] == 8
    assert parse_value("true") is True
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value("adam") == "adam"


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("optimizer", "expected KEY=VALUE"),
        ("model.layers.7.units=3", "model.layers.7"),
        ("name.sub=1", "name is not a table"),
    ],
)
def test_bad_overrides_say_what_is_wrong(override: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match="--set") as info:
        apply_overrides(xor_config(), [override])
    assert fragment in str(info.value)


def test_unknown_key_names_the_path_and_suggests_the_closest(tmp_path: Path) -> None:
    config = xor_config()
    config["training"]["epoch"] = 3
    with pytest.raises(ConfigError) as info:
        Experiment.from_dict(config)
    message = str(info.value)
    assert "training.epoch: unknown key 'epoch'" in message
    assert "Did you mean 'epochs'?" in message


def test_unknown_top_level_section_is_rejected() -> None:
    config = xor_config()
    config["optimzer"] = {"name": "sgd"}
    with pytest.raises(ConfigError, match="Did you mean 'optimizer'"):
        Experiment.from_dict(config)


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (("training", "epochs"), "many", "training.epochs"),
        (("training", "batch_size"), 0, "greater than or equal to 1"),
        (("data", "validation_split"), 1.0, "data.validation_split"),
        (("dtype",), "float16", "float32"),
    ],
)
def test_wrong_types_and_ranges_name_the_key(path: tuple[str, ...], value: object, fragment: str) -> None:
    config = xor_config()
    node = config
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    with pytest.raises(ConfigError) as info:
        Experiment.from_dict(config)
    assert fragment in str(info.value)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        Experiment.from_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ConfigError, match=r"bad\.toml: invalid TOML"):
        Experiment.from_file(bad)
    (tmp_path / "x.ini").write_text("")
    with pytest.raises(ConfigError, match="unsupported config format"):
        Experiment.from_file(tmp_path / "x.ini")


def test_yaml_is_parsed_safely(tmp_path: Path) -> None:
    # A YAML tag that would construct a Python object must not run: safe_load refuses it.
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        Experiment.from_file(evil)


def test_flatten_gives_dotted_keys() -> None:
    assert flatten({"a": {"b": 1}, "l": [{"u": 2}], "e": []}) == {"a.b": 1, "l.0.u": 2, "e": []}


def test_an_activation_named_by_a_string_takes_params_from_set() -> None:
    data = xor_config()
    apply_overrides(data, ["model.layers.0.activation=leaky_relu", "model.layers.0.activation.negative_slope=0.2"])
    assert data["model"]["layers"][0]["activation"] == {"name": "leaky_relu", "negative_slope": 0.2}
    apply_overrides(data, ["model.layers.0.activation=tanh"])  # a name replaces the whole table
    assert data["model"]["layers"][0]["activation"] == "tanh"


def test_a_resolved_activation_is_written_out_logged_flat_and_runs_again() -> None:
    from framework import fit
    from framework.build import resolve
    from framework.pluginmanager import create_plugin_manager
    from framework.registry import Registry

    registry = Registry.from_host(create_plugin_manager(strict=True))
    data = xor_config()
    data["model"]["layers"][0]["activation"] = "leaky_relu"
    data["model"]["layers"][1]["init"] = {"name": "orthogonal"}
    resolved = resolve(Experiment.from_dict(data), registry)
    layers = resolved.to_dict()["model"]["layers"]
    # Defaults written out: the table of an activation with params, the bare name of one without.
    assert layers[0]["activation"] == {"name": "leaky_relu", "negative_slope": 0.01}
    assert layers[1]["activation"] == "sigmoid" and layers[1]["init"] == {"name": "orthogonal", "gain": 1.0}
    assert layers[0]["init"] == "auto" and layers[0]["bias_init"] == "zeros"
    flat = resolved.flat()
    assert flat["model.layers.0.activation.name"] == "leaky_relu"
    assert flat["model.layers.0.activation.negative_slope"] == 0.01
    assert flat["model.layers.1.activation"] == "sigmoid"
    # The resolved config runs again as it is, to the same numbers.
    first = fit(Experiment.from_dict(resolved.to_dict()), track=False)
    second = fit(Experiment.from_dict(data), track=False)
    assert first.history.metrics == second.history.metrics
