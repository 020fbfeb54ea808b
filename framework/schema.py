"""The JSON Schema of experiment files, with every registered component's params.

The structure comes from the pydantic `Experiment` model; each component section (`data`, `loss`,
`optimizer`, a layer, a callback) becomes a `oneOf` over the registered components, each variant naming
the component (`"name": {"const": ...}`) and listing its params with their descriptions and bounds, so
editors can complete and check a file. A param that names a component (a layer's `activation`, `init`,
`bias_init`) and each entry of `training.metrics` is either a name (an enum of the registered ones; "auto"
too for an initializer) or a table of a name and that component's params (one variant per component).
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from framework.components import KINDS
from framework.config import Experiment
from framework.registry import AUTO, Registry

SCHEMA_URI = "https://json-schema.org/draft/2020-12/schema"
RESERVED_CALLBACKS = {"mlflow", "progress"}  # configured by [tracking] and --quiet, not [callbacks.*]


def _rename_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            key: (renames.get(value, value) if key == "$ref" else _rename_refs(value, renames))
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rename_refs(item, renames) for item in node]
    return node


def _params_schema(model: type[BaseModel], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    """`model`'s schema, with its nested definitions moved into `defs` under names unique to `prefix`."""
    schema = model.model_json_schema()
    own = schema.pop("$defs", {})
    renames = {f"#/$defs/{name}": f"#/$defs/{prefix}{name}" for name in own}
    for name, definition in own.items():
        defs[f"{prefix}{name}"] = _rename_refs(definition, renames)
    return _rename_refs(schema, renames)  # type: ignore[no-any-return]


def _core_fields(section: str) -> tuple[dict[str, Any], list[str]]:
    """The properties that a section's own model (not the component) defines, besides `name`/`type`."""
    annotation = Experiment.model_fields[section].annotation
    if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return {}, []
    schema = annotation.model_json_schema()
    properties = {k: v for k, v in schema.get("properties", {}).items() if k not in {"name", "type"}}
    return properties, [k for k in schema.get("required", []) if k in properties]


def _variants(
    registry: Registry,
    kind: str,
    key: str,
    defs: dict[str, Any],
    core: tuple[dict[str, Any], list[str]] = ({}, []),
    optional_for: str | None = None,
) -> list[dict[str, Any]]:
    variants = []
    for name, entry in registry.entries(kind).items():
        params = _params_schema(entry.cls.Params, f"{kind}_{name}_", defs)
        properties = {
            key: {"const": name, "description": entry.cls.summary() or f"the {kind} {name!r}"},
            **core[0],
            **params.get("properties", {}),
        }
        required = [*core[1], *params.get("required", [])]
        if name != optional_for:
            required.insert(0, key)
        variants.append(
            {
                "title": f"{kind} {name}",
                "description": f"{entry.cls.summary()} (plugin {entry.plugin!r})".strip(),
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            }
        )
    return variants


def _spec_schema(registry: Registry, kind: str, defs: dict[str, Any]) -> list[dict[str, Any]]:
    """The forms of a component spec: a registered name, or a table of its name and params (any component,
    with or without params, may be written as a table)."""
    names = registry.names(kind)
    if kind == "initializer":
        names = [AUTO, *names]  # the layer's activation chooses (its default_init)
    return [{"type": "string", "enum": names}, *_variants(registry, kind, "name", defs)]


def _component_params(registry: Registry, variants: list[dict[str, Any]], defs: dict[str, Any]) -> None:
    """Give every param of `variants` that names a component (marked `x-component`) its spec's forms."""
    forms: dict[str, list[dict[str, Any]]] = {}
    for variant in variants:
        for key, prop in variant["properties"].items():
            component = prop.get("x-component") if isinstance(prop, dict) else None
            if not isinstance(component, str) or component not in KINDS:
                continue
            if component not in forms:
                forms[component] = _spec_schema(registry, component, defs)
            kept = {k: v for k, v in prop.items() if k in ("title", "description", "default", "x-component")}
            variant["properties"][key] = {**kept, "oneOf": forms[component]}


def experiment_schema(registry: Registry) -> dict[str, Any]:
    """The JSON Schema of an experiment file, given the components that `registry` holds."""
    schema = copy.deepcopy(Experiment.model_json_schema())
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    properties = schema["properties"]
    for section, kind in (("data", "dataset"), ("loss", "loss"), ("optimizer", "optimizer")):
        description = Experiment.model_fields[section].description or f"The {kind} and its params."
        variants = _variants(registry, kind, "name", defs, _core_fields(section))
        properties[section] = {"description": description, "oneOf": variants}
    layers = _variants(registry, "layer", "type", defs, optional_for="dense")
    _component_params(registry, layers, defs)
    model = properties["model"] = copy.deepcopy(defs.pop("ModelSection", {}))
    model["properties"]["layers"]["items"] = {"oneOf": layers}
    training = properties["training"] = copy.deepcopy(defs.pop("TrainingSection", {}))
    training["properties"]["metrics"] = {
        "description": training["properties"]["metrics"].get("description", ""),
        "anyOf": [{"type": "array", "items": {"oneOf": _spec_schema(registry, "metric", defs)}}, {"type": "null"}],
    }
    callbacks: dict[str, Any] = {}
    for name, entry in registry.entries("callback").items():
        if name not in RESERVED_CALLBACKS:
            callbacks[name] = _params_schema(entry.cls.Params, f"callback_{name}_", defs)
            callbacks[name]["description"] = f"{entry.cls.summary()} (plugin {entry.plugin!r})"
    properties["callbacks"] = {
        "description": properties["callbacks"].get("description", ""),
        "type": "object",
        "properties": callbacks,
        "additionalProperties": False,
    }
    for unused in ("DataSection", "ComponentSection", "OptimizerSection", "LayerSection"):
        defs.pop(unused, None)
    return {"$schema": SCHEMA_URI, **schema}
