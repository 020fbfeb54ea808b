"""How a component's params name another component (a spec), and the helpers that read specs.

Kept apart from `framework.components` (which re-exports every name) so that the base classes stay short.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

ComponentSpec = str | dict[str, Any]
"""How a component's params name another component: its name (`"relu"`), or a table of its name and params
(`{name = "leaky_relu", negative_slope = 0.1}`)."""


def component_field(kind: str, default: ComponentSpec, description: str) -> Any:
    """A `Params` field that names a component of `kind` (an activation, an initializer), with its params.

    The core validates the named component's params (errors name the key path, such as
    `model.layers.0.activation.negative_slope`), writes its defaults out in the resolved config, builds it,
    and hands it to the layer's `attach` before `build`.
    """
    return Field(default, description=description, json_schema_extra={"x-component": kind})


def component_fields(params: type[BaseModel]) -> dict[str, str]:
    """The fields of a `Params` model that name components, with their kinds: ``{"activation": "activation"}``."""
    found = {}
    for name, info in params.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and isinstance(extra.get("x-component"), str):
            found[name] = str(extra["x-component"])
    return found


def spec_name(spec: ComponentSpec) -> str:
    """The component name of a spec (`"relu"` or `{name = "relu", ...}`)."""
    return spec if isinstance(spec, str) else str(spec.get("name", ""))


def spec_text(spec: ComponentSpec) -> str:
    """A spec as people read it: `relu`, or `leaky_relu(negative_slope=0.1)`."""
    params = spec_params(spec)
    return spec_name(spec) + (f"({', '.join(f'{k}={v}' for k, v in params.items())})" if params else "")


def spec_params(spec: ComponentSpec) -> dict[str, Any]:
    """The params of a spec (empty for a bare name)."""
    return {} if isinstance(spec, str) else {k: v for k, v in spec.items() if k != "name"}


__all__ = ["ComponentSpec", "component_field", "component_fields", "spec_name", "spec_params", "spec_text"]
