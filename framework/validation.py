"""Turning pydantic's validation errors into messages for people.

One line per problem: the dotted key path, what is wrong, and what is allowed (for an unknown key, the
allowed keys and the closest one).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from framework.errors import did_you_mean


def _model_in(annotation: Any) -> Any:
    """The pydantic model of an annotation, looking through `X | None` (e.g. the optional `[sweep]`)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        return models[0] if len(models) == 1 else None
    return annotation


def _fields_at(model: type[BaseModel] | None, loc: tuple[int | str, ...]) -> list[str] | None:
    """The field names of the (nested) model that `loc` points into, if it can be followed."""
    current: Any = model
    for part in loc:
        current = _model_in(current)
        if current is None or not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = field.annotation
    current = _model_in(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return None


def format_validation_error(
    exc: ValidationError, prefix: str = "", model: type[BaseModel] | None = None, also: Sequence[str] = ()
) -> str:
    """One line per error: ``key.path: problem``.

    `also`: keys allowed beside the model's own fields at the top level (the core keys of a component's
    section, such as `name` and `validation_split` next to a dataset's params), listed as allowed too.
    """
    lines = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        path = ".".join(str(p) for p in (prefix.split(".") if prefix else []) + list(loc))
        if error["type"] == "extra_forbidden":
            allowed = _fields_at(model, loc[:-1]) if model is not None else None
            if allowed is not None and len(loc) == 1:
                allowed = [*also, *(a for a in allowed if a not in also)]
            message = f"{path}: unknown key {str(loc[-1])!r}"
            if allowed is not None:
                message += f". Allowed: {', '.join(allowed) or '(none)'}"
                hint = did_you_mean(str(loc[-1]), allowed)
                if hint:
                    message += f". Did you mean {hint!r}?"
            lines.append(message)
            continue
        message = error["msg"]
        if error["type"] == "missing":
            lines.append(f"{path}: required key is missing")
            continue
        value = error.get("input")
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        lines.append(f"{path or '(top level)'}: {message} (got {shown})")
    return "\n".join(lines)
