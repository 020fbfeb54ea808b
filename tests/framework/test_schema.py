"""`framework.schema`: component specs (a layer's activation and initialisers, the metrics) as names or tables."""

from __future__ import annotations

from typing import Any

import pytest

from framework.pluginmanager import create_plugin_manager
from framework.registry import Registry
from framework.schema import experiment_schema

REGISTRY = Registry.from_host(create_plugin_manager(strict=True))
SCHEMA = experiment_schema(REGISTRY)


def dense() -> dict[str, Any]:
    layers = SCHEMA["properties"]["model"]["properties"]["layers"]["items"]["oneOf"]
    return next(v for v in layers if v["properties"]["type"]["const"] == "dense")


def forms(prop: dict[str, Any]) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The names a spec may be, and its table variants by component name."""
    names, *tables = prop["oneOf"]
    assert names["type"] == "string"
    return names["enum"], {t["properties"]["name"]["const"]: t for t in tables}


@pytest.mark.parametrize(
    ("field", "kind"), [("activation", "activation"), ("init", "initializer"), ("bias_init", "initializer")]
)
def test_a_component_param_is_a_name_or_a_table_of_any_registered_component(field: str, kind: str) -> None:
    prop = dense()["properties"][field]
    names, tables = forms(prop)
    assert set(REGISTRY.names(kind)) <= set(names) and set(tables) == set(REGISTRY.names(kind))
    assert prop["description"] and "default" in prop
    for table in tables.values():
        assert table["required"][0] == "name" and table["additionalProperties"] is False


def test_auto_is_a_name_for_initializers_only() -> None:
    assert "auto" in forms(dense()["properties"]["init"])[0]
    assert "auto" not in forms(dense()["properties"]["activation"])[0]


def test_component_tables_list_their_params_with_bounds() -> None:
    _, activations = forms(dense()["properties"]["activation"])
    assert "negative_slope" in activations["leaky_relu"]["properties"]
    _, initializers = forms(dense()["properties"]["init"])
    assert initializers["orthogonal"]["properties"]["gain"]["exclusiveMinimum"] == 0
    assert {"low", "high"} <= set(initializers["uniform"]["properties"])
    assert initializers["constant"]["properties"]["value"]["description"]


def test_metrics_are_names_or_tables_with_params() -> None:
    metrics = SCHEMA["properties"]["training"]["properties"]["metrics"]
    items = metrics["anyOf"][0]["items"]
    names, tables = forms(items)
    assert {"accuracy", "roc_auc", "top_k_accuracy", "mape", "explained_variance"} <= set(names)
    k = tables["top_k_accuracy"]["properties"]["k"]
    assert k["minimum"] == 1 and k["default"] == 5 and k["description"]
    assert tables["accuracy"]["properties"].keys() == {"name"}  # a metric without params, as a table
