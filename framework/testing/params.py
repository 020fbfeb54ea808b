"""The checks every component class must pass, whatever its kind: name, docstring, strict `Params`."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from framework.components import KINDS, Component, Params
from framework.registry import NAME_PATTERN


def check_params(cls: type[Component]) -> None:
    """A component class follows the conventions every registry relies on.

    Its `name` is a valid registry name, its docstring states its rule, its `Params` is a
    `framework.Params` with unknown keys forbidden and a description on every field (descriptions feed
    `backprop schema` and editors), and the JSON Schema of its params can be generated.

    Raises:
        AssertionError: naming the component and what is wrong.
    """
    if not (isinstance(cls, type) and issubclass(cls, Component)):
        raise AssertionError(f"{cls!r} is not a component class (a subclass of a framework component)")
    label = f"{cls.kind or 'component'} {cls.name!r} ({cls.__module__}.{cls.__qualname__})"
    if cls.kind not in KINDS or not issubclass(cls, KINDS[cls.kind]):
        raise AssertionError(
            f"{label}: subclass one of framework.{', framework.'.join(c.__name__ for c in KINDS.values())}"
        )
    if not isinstance(cls.name, str) or not NAME_PATTERN.match(cls.name):
        raise AssertionError(f"{label}: `name` must be lower case letters, digits, '_' and '-', starting with a letter")
    if not (cls.__doc__ or "").strip():
        raise AssertionError(f"{label}: give the class a docstring that states its rule")
    params = cls.Params
    if not (isinstance(params, type) and issubclass(params, Params)):
        raise AssertionError(f"{label}: `Params` must subclass framework.Params")
    if params.model_config.get("extra") != "forbid":
        raise AssertionError(f"{label}: `Params` must forbid unknown keys (model_config extra='forbid')")
    for field_name, info in params.model_fields.items():
        if not (info.description or "").strip():
            raise AssertionError(f"{label}: param {field_name!r} has no description; add Field(description=...)")
    try:
        params.model_json_schema()
    except Exception as exc:
        raise AssertionError(f"{label}: the JSON Schema of its params cannot be generated: {exc}") from exc
    if not any(info.is_required() for info in params.model_fields.values()):
        try:
            params(**{"no_such_key_xyz": 1})
        except ValidationError:
            pass
        else:
            raise AssertionError(f"{label}: `Params` accepted an unknown key")


def instantiate(cls: type[Component], params: dict[str, Any]) -> Any:
    """`cls(**params)`, or an AssertionError saying which params the check needs."""
    try:
        return cls(**params)
    except ValidationError as exc:
        raise AssertionError(
            f"{cls.kind} {cls.name!r} cannot be built from params {params}: {exc.errors()[0]['msg']} "
            f"at {'.'.join(str(p) for p in exc.errors()[0]['loc'])}; help: pass the params the check should use"
        ) from exc
