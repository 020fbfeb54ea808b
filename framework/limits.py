"""Bounds on what an experiment file may hold (issue 19: hostile inputs are refused before training).

- A config file is at most MAX_CONFIG_BYTES; once parsed, at most MAX_CONFIG_VALUES values, counted as they
  expand (a YAML alias bomb, "billion laughs", is a few hundred bytes that expand to billions of values).
- No number is infinite: `lr = 1e400` parses as infinity in TOML and YAML, and is refused by name.
- Names (the experiment's, the MLflow run's and experiment's) hold no NUL or other control characters.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from framework.errors import ConfigError

MAX_CONFIG_BYTES = 1_000_000
MAX_CONFIG_VALUES = 100_000
NAME_KEYS = (("name",), ("tracking", "run_name"), ("tracking", "experiment"))


def check_file_size(path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: the config file is {size} bytes, more than the {MAX_CONFIG_BYTES} allowed; "
            "help: an experiment file holds settings, not data (put data in a .csv or .npz file)"
        )


def check_value_count(data: Any, path: Path) -> None:
    """Refuse data that expands to more than MAX_CONFIG_VALUES values (shared YAML aliases counted each time)."""
    budget = MAX_CONFIG_VALUES
    stack = [data]
    while stack:
        value = stack.pop()
        budget -= 1
        if budget < 0:
            raise ConfigError(
                f"{path}: the config expands to more than {MAX_CONFIG_VALUES} values (YAML aliases expanding "
                "into each other?); help: write the values out, without nested aliases"
            )
        if isinstance(value, Mapping):
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)


def _where(source: Path | None, key: str) -> str:
    return f"{source}: {key}" if source is not None else key


def check_finite(data: Any, source: Path | None, prefix: str = "") -> None:
    """Refuse an infinite number anywhere, naming its key. (NaN is left to each field's bounds, which refuse it
    with their own message: `lr = nan` is "Input should be greater than 0".)"""
    if isinstance(data, float) and math.isinf(data):
        raise ConfigError(
            f"{_where(source, prefix or '(top level)')}: not a finite number (got {data}); a value such as 1e400 "
            "overflows to infinity: numbers must be finite"
        )
    if isinstance(data, Mapping):
        for key, value in data.items():
            check_finite(value, source, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, list | tuple):
        for i, value in enumerate(data):
            check_finite(value, source, f"{prefix}.{i}" if prefix else str(i))


def check_names(data: Mapping[str, Any], source: Path | None) -> None:
    """Refuse names holding NUL or other control characters (a name is only ever a label, or a sanitised
    file name: `framework.checkpoint.sanitize`)."""
    for path in NAME_KEYS:
        value: Any = data
        for part in path:
            value = value.get(part) if isinstance(value, Mapping) else None
        if not isinstance(value, str):
            continue
        bad = next((ch for ch in value if unicodedata.category(ch) == "Cc"), None)
        if bad is not None:
            raise ConfigError(
                f"{_where(source, '.'.join(path))}: holds the control character {bad!r}; "
                "names may hold letters, digits, spaces and punctuation, no NUL, newline or other control character"
            )
