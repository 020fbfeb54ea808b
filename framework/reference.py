"""The reference of components: every registered component with its rule (the docstring) and its params.

`docs/components.md` is this module's output for the built-in plugins (a test keeps it current), and
`backprop plugins reference` prints it for whatever is installed, so a plugin's own components get the same
page (`--plugin NAME`).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from framework.registry import Registry

KIND_TITLES = {
    "activation": ("Activations", 'A layer\'s `activation = "name"`, or `{name = "...", param = value}`.'),
    "loss": ("Losses", '`[loss] name = "..."`, with its params beside the name.'),
    "layer": ("Layers", '`[[model.layers]]` entries: `{type = "...", ...}` (`dense` when `type` is left out).'),
    "initializer": ("Initializers", 'A dense layer\'s `init = "..."` and `bias_init = "..."`, or tables with params.'),
    "optimizer": ("Optimizers", '`[optimizer] name = "..."`; `weight_decay`, `clip_norm`, `clip_value` for every one.'),
    "metric": ("Metrics", '`[training] metrics = ["...", {name = "...", param = value}]`.'),
    "dataset": ("Datasets", '`[data] name = "..."`; `validation_split`, `standardize` for every one.'),
    "callback": ("Callbacks", "`[callbacks.<name>]` sections."),
}
"""The kinds in the order of the page, with a title and how an experiment names a component of the kind."""


def _bounds(info: FieldInfo) -> str:
    parts = []
    for item in info.metadata:
        for attr, symbol in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(f"{symbol} {value}")
    return ", ".join(parts)


def _type_name(annotation: Any) -> str:
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return text.replace("typing.", "").replace("NoneType", "None")


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "(required)"
    value = info.get_default(call_default_factory=True)
    return f"`{value!r}`" if not isinstance(value, str) else f'`"{value}"`'


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def params_table(params: type[BaseModel]) -> list[str]:
    """A markdown table of a `Params` model's fields: name, type, default, bounds, description."""
    fields = params.model_fields
    if not fields:
        return ["No params."]
    rows = ["| param | type | default | bounds | description |", "|---|---|---|---|---|"]
    for name, info in fields.items():
        kind = (info.json_schema_extra or {}).get("x-component") if isinstance(info.json_schema_extra, dict) else None
        type_name = f"{kind} (name or table)" if kind else _type_name(info.annotation)
        rows.append(
            f"| `{name}` | {_cell(type_name)} | {_cell(_default(info))} | {_cell(_bounds(info))} | "
            f"{_cell(info.description or '')} |"
        )
    return rows


def _entries(registry: Registry, kind: str, wanted: set[str] | None) -> list[tuple[str, Any]]:
    return [(name, entry) for name, entry in registry.entries(kind).items() if wanted is None or entry.plugin in wanted]


def kind_page(registry: Registry, kind: str, plugins: Iterable[str] | None = None) -> str:
    """The reference page of one kind: every component of `plugins` (all when None) with its rule and params."""
    wanted = None if plugins is None else set(plugins)
    heading, usage = KIND_TITLES[kind]
    entries = _entries(registry, kind, wanted)
    lines = [f"# {heading}", "", usage, ""]
    lines += [", ".join(f"[`{name}`](#{name})" for name, _ in entries), ""]
    for name, entry in entries:
        cls = entry.cls
        lines += [f"## `{name}`", ""]
        doc = inspect.cleandoc(cls.__doc__ or "").strip()
        lines += [doc, ""] if doc else []
        lines += [*params_table(cls.Params), "", f"Plugin `{entry.plugin}` ({cls.__module__}.{cls.__qualname__}).", ""]
    return "\n".join(lines).rstrip() + "\n"


def reference_pages(
    registry: Registry, plugins: Iterable[str] | None = None, title: str = "Components"
) -> dict[str, str]:
    """The reference as Markdown pages by file name: `README.md` (an index) and one page per kind that has any
    component of `plugins` (all plugins when None): `activations.md`, `losses.md`, ..."""
    wanted = None if plugins is None else set(plugins)
    pages: dict[str, str] = {}
    index = [f"# {title}", "", "Each component's rule (its docstring) and params, by kind:", ""]
    for kind, (heading, _) in KIND_TITLES.items():
        entries = _entries(registry, kind, wanted)
        if not entries:
            continue
        page = f"{heading.lower()}.md"
        pages[page] = kind_page(registry, kind, wanted)
        names = ", ".join(f"[`{name}`]({page}#{name})" for name, _ in entries)
        index += [f"- [{heading}]({page}): {names}", ""]
    return {"README.md": "\n".join(index).rstrip() + "\n", **pages}
