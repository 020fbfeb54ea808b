"""Sweeps: the trials of a grid or random search over an experiment's keys.

A sweep is an experiment plus a definition: grids (`KEY=V1,V2,...`, the product of all of them) and random
parameters (`KEY=DISTRIBUTION`, drawn `trials` times from a generator seeded by the sweep's seed). Each
trial is an ordinary experiment with some keys overridden; its identity is the hash of its resolved
config, so that running the same sweep again finds the trials that already finished.

This module only describes trials; `framework.sweep_run` runs them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from framework.config import SweepSection, apply_overrides, parse_value
from framework.errors import ConfigError

__all__ = ["Distribution", "SweepSection", "Trial", "config_hash", "definition_hash", "make_trials"]

DISTRIBUTION = re.compile(r"^\s*(uniform|loguniform|int|choice)\s*\((.*)\)\s*$")


@dataclass(frozen=True)
class Distribution:
    """One random parameter: `uniform(a,b)`, `loguniform(a,b)`, `int(a,b)` (inclusive) or `choice(...)`."""

    kind: str
    args: tuple[Any, ...]

    @classmethod
    def parse(cls, key: str, text: str) -> Distribution:
        match = DISTRIBUTION.match(text)
        if not match:
            raise ConfigError(
                f"sweep param {key}: {text!r} is not a distribution; use uniform(a,b), loguniform(a,b), "
                "int(a,b) or choice(a,b,...)"
            )
        kind, raw = match.groups()
        args = tuple(parse_value(part.strip()) for part in _split_args(raw))
        if kind == "choice":
            if not args:
                raise ConfigError(f"sweep param {key}: choice() needs at least one value")
            return cls(kind, args)
        if len(args) != 2 or not all(isinstance(a, int | float) and not isinstance(a, bool) for a in args):
            raise ConfigError(f"sweep param {key}: {kind}(a, b) takes two numbers, got {text!r}")
        low, high = args
        if not low < high:
            raise ConfigError(f"sweep param {key}: {kind}(a, b) needs a < b, got {text!r}")
        if kind == "loguniform" and low <= 0:
            raise ConfigError(f"sweep param {key}: loguniform(a, b) needs a > 0, got {text!r}")
        if kind == "int" and not (isinstance(low, int) and isinstance(high, int)):
            raise ConfigError(f"sweep param {key}: int(a, b) takes two integers, got {text!r}")
        return cls(kind, (low, high))

    def draw(self, rng: np.random.Generator) -> Any:
        if self.kind == "choice":
            return self.args[int(rng.integers(len(self.args)))]
        low, high = self.args
        if self.kind == "uniform":
            return float(rng.uniform(low, high))
        if self.kind == "loguniform":
            return float(math.exp(rng.uniform(math.log(low), math.log(high))))
        return int(rng.integers(low, high, endpoint=True))


def _split_args(raw: str) -> list[str]:
    """Split on commas outside quotes and brackets."""
    parts, depth, quote, current = [], 0, "", ""
    for ch in raw:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += ch
    if current.strip():
        parts.append(current)
    return parts


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """`--grid KEY=V1,V2,...` options into a dict of value lists."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip() or not raw.strip():
            raise ConfigError(f"--grid {item!r}: expected KEY=V1,V2,..., for example optimizer.lr=0.01,0.1")
        grid[key.strip()] = [parse_value(v.strip()) for v in _split_args(raw)]
    return grid


def parse_params(items: Sequence[str]) -> dict[str, str]:
    """`--param KEY=DISTRIBUTION` options into a dict (checked when the sweep is built)."""
    params: dict[str, str] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"--param {item!r}: expected KEY=DISTRIBUTION, for example optimizer.lr=loguniform(1e-3,1e-1)"
            )
        params[key.strip()] = raw.strip()
    return params


@dataclass
class Trial:
    """One trial: its number, the keys it sets, and the full config it runs."""

    index: int
    overrides: dict[str, Any]
    config: dict[str, Any]
    hash: str = ""
    status: str = "queued"
    run_id: str | None = None
    metric: float | None = None
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={_short(v)}" for k, v in self.overrides.items()) or "(base config)"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _canonical(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config as plain JSON data without what does not change a run (sweep section, run name)."""
    data: dict[str, Any] = json.loads(json.dumps(config, sort_keys=True, default=str))
    data.pop("sweep", None)
    if isinstance(data.get("tracking"), dict):
        data["tracking"].pop("run_name", None)
    return data


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def config_hash(config: Mapping[str, Any]) -> str:
    """A stable hash of a (resolved) config: canonical JSON with sorted keys."""
    return _digest(_canonical(config))


def definition_hash(base: Mapping[str, Any], sweep: SweepSection) -> str:
    """Identifies a sweep: the base config and the definition (not the metric that ranks the trials)."""
    return _digest({"base": _canonical(base), "sweep": sweep.model_dump(exclude={"metric"})})


def make_trials(base: Mapping[str, Any], sweep: SweepSection) -> list[Trial]:
    """Every trial of the sweep, in a fixed order: grid points in order, random draws from `sweep.seed`."""
    if not sweep.grid and not sweep.params:
        raise ConfigError("the sweep varies nothing: give --grid KEY=V1,V2 or --random N with --param KEY=DIST")
    if sweep.params and sweep.trials < 1:
        raise ConfigError("random parameters need a number of trials: --random N (or trials = N in [sweep])")
    if sweep.trials and not sweep.params:
        raise ConfigError("--random N needs at least one --param KEY=DISTRIBUTION")
    for key, values in sweep.grid.items():
        if not values:
            raise ConfigError(f"sweep grid {key}: no values")
    distributions = {key: Distribution.parse(key, text) for key, text in sweep.params.items()}
    grid_points = [dict(zip(sweep.grid, combo, strict=True)) for combo in itertools.product(*sweep.grid.values())]
    rng = np.random.default_rng(sweep.seed)
    draws = [{k: d.draw(rng) for k, d in distributions.items()} for _ in range(sweep.trials)] or [{}]
    trials: list[Trial] = []
    for point in grid_points:
        for draw in draws:
            overrides = {**point, **draw}
            config = json.loads(json.dumps(dict(base)))
            config.pop("sweep", None)
            apply_overrides(config, [f"{k}={json.dumps(v)}" for k, v in overrides.items()])
            trials.append(Trial(index=len(trials), overrides=overrides, config=config))
    return trials
