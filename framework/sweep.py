"""Sweeps: what a sweep is (its search space, its trials, its identity), not how it runs.

A sweep is an experiment plus a definition (`SweepDefinition`): grids (`KEY=V1,V2,...`), random parameters
(`KEY=DISTRIBUTION`), the sampler that turns them into trials (`grid`, `random`, or one that Optuna drives:
`tpe`, `cmaes`, `qmc`; see `framework.components.Sampler`), the number of trials, a seed, the metric that
ranks the trials and, optionally, a pruner that stops hopeless trials early.

Each trial is an ordinary experiment with some keys overridden; its identity is the hash of its resolved
config, so that running the same sweep again finds the trials that already finished. The sweep's identity
is the hash of its base config and its definition (`definition_hash`): the same file, overrides, space,
sampler, trials and seed are the same sweep, whatever metric ranks it, except that a sweep run through an
Optuna study (an Optuna sampler, or pruning) also counts its metric, which the study optimises, and that for
a sampler Optuna drives the number of trials is a budget: raising it continues the same sweep.

This module only describes; `framework.sweep_run` runs a sweep.
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
from pydantic import Field

from framework.components import ComponentSpec, spec_name, spec_params
from framework.config import SweepSection, apply_overrides, parse_value
from framework.errors import ConfigError

__all__ = [
    "Distribution",
    "SearchSpace",
    "SweepDefinition",
    "SweepSection",
    "Trial",
    "config_hash",
    "definition_hash",
    "make_trials",
]

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


class SweepDefinition(SweepSection):
    """A sweep's whole definition: the `[sweep]` section's keys and the ones `backprop sweep` adds."""

    trials: int = Field(
        0,
        ge=0,
        description="Number of trials: random draws for every grid point (random), at most this many grid points "
        "(grid), or trials in all (the samplers Optuna drives).",
    )


def default_sampler(sweep: SweepSection) -> str:
    """The sampler of a definition that names none: random draws when it has random parameters, else the grid."""
    return "random" if sweep.params else "grid"


def sampler_of(sweep: SweepSection) -> ComponentSpec:
    """The definition's sampler spec, its default filled in."""
    spec: ComponentSpec | None = getattr(sweep, "sampler", None)
    return spec if spec is not None else default_sampler(sweep)


@dataclass(frozen=True)
class SearchSpace:
    """What a sweep varies: `grid` (key -> the values to try) and `params` (key -> a `Distribution`)."""

    grid: dict[str, list[Any]]
    params: dict[str, Distribution]

    @classmethod
    def of(cls, sweep: SweepSection) -> SearchSpace:
        if not sweep.grid and not sweep.params:
            raise ConfigError(
                "the sweep varies nothing: give --grid KEY=V1,V2,... or --param KEY=DISTRIBUTION (with --trials N)"
            )
        for key, values in sweep.grid.items():
            if not values:
                raise ConfigError(f"sweep grid {key}: no values")
        both = sorted(set(sweep.grid) & set(sweep.params))
        if both:
            raise ConfigError(f"sweep key {both[0]} is both a --grid and a --param; give it once")
        return cls(dict(sweep.grid), {key: Distribution.parse(key, text) for key, text in sweep.params.items()})

    @property
    def keys(self) -> list[str]:
        """The swept keys: the grid's, then the random parameters'."""
        return [*self.grid, *self.params]

    def is_log(self, key: str) -> bool:
        """Whether values of `key` spread over decades (a loguniform parameter): plots use a log axis."""
        distribution = self.params.get(key)
        return distribution is not None and distribution.kind == "loguniform"


def grid_points(space: SearchSpace) -> list[dict[str, Any]]:
    """The product of the grids, in order (the last key varies fastest); [{}] without grids."""
    return [dict(zip(space.grid, combo, strict=True)) for combo in itertools.product(*space.grid.values())]


def plan_grid(space: SearchSpace, trials: int, seed: int) -> list[dict[str, Any]]:
    """Every grid point in order; with `trials` = N below their number, N of them drawn under `seed`."""
    if space.params:
        raise ConfigError(
            "the grid sampler tries the --grid values only; random parameters (--param) need "
            "--sampler random, tpe, cmaes or qmc"
        )
    points = grid_points(space)
    if 0 < trials < len(points):
        chosen = np.random.default_rng(seed).choice(len(points), size=trials, replace=False)
        points = [points[i] for i in sorted(int(i) for i in chosen)]
    return points


def plan_random(space: SearchSpace, trials: int, seed: int) -> list[dict[str, Any]]:
    """`trials` draws of the random parameters from a generator seeded by `seed`, each with every grid point."""
    if not space.params:
        raise ConfigError("random search needs at least one --param KEY=DISTRIBUTION")
    if trials < 1:
        raise ConfigError(
            "random parameters need a number of trials: --trials N (or --random N, or trials = N in [sweep])"
        )
    rng = np.random.default_rng(seed)
    draws = [{key: d.draw(rng) for key, d in space.params.items()} for _ in range(trials)]
    return [{**point, **draw} for point in grid_points(space) for draw in draws]


@dataclass
class Trial:
    """One trial: its number, the keys it sets, the full config it runs, and how it went."""

    index: int
    overrides: dict[str, Any]
    config: dict[str, Any]
    hash: str = ""
    status: str = "queued"
    """queued, running, finished, pruned (finished early by the pruner), failed or killed."""
    run_id: str | None = None
    metric: float | None = None
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    number: int | None = None
    """The trial's number in the Optuna study, for a sweep that has one."""
    epochs: int | None = None
    """Epochs trained, when known."""
    seconds: float | None = None
    """Wall time of its epochs (set-up and logging left out), when known."""
    pruned_epoch: int | None = None
    """The last epoch (from 0) that a pruned trial trained."""

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={_short(v)}" for k, v in self.overrides.items()) or "(base config)"

    @property
    def done(self) -> bool:
        """Finished, pruned included: a re-run of the sweep does not run it again."""
        return self.status in {"finished", "pruned"}


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


def definition_hash(base: Mapping[str, Any], sweep: SweepSection, *, study: bool = False, budget: bool = False) -> str:
    """Identifies a sweep: the base config and the definition, without what does not change its trials.

    Left out: the metric that ranks the trials (unless `study`: an Optuna study optimises it, so it steers
    the trials), where the study is stored, a sampler that is the default one (so that the sweeps of earlier
    versions, which named none, keep their identity and resume), and, when `budget` (a sampler that Optuna
    drives, for which the number of trials is how long to go on, not which trials), the number of trials:
    the same sweep with a larger `--trials` continues its study.
    """
    definition = sweep.model_dump(exclude={"metric", "sampler", "prune", "study_storage"})
    if budget:
        definition.pop("trials", None)
    sampler = getattr(sweep, "sampler", None)
    if sampler is not None and not (spec_name(sampler) == default_sampler(sweep) and not spec_params(sampler)):
        definition["sampler"] = sampler
    prune = getattr(sweep, "prune", None)
    if prune is not None:
        definition["prune"] = prune
    if study:
        definition["metric"] = sweep.metric
    return _digest({"base": _canonical(base), "sweep": definition})


def trial_config(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The base config with the trial's keys set (as `--set KEY=VALUE` would), without the sweep section."""
    config: dict[str, Any] = json.loads(json.dumps(dict(base)))
    config.pop("sweep", None)
    apply_overrides(config, [f"{k}={json.dumps(v)}" for k, v in overrides.items()])
    return config


def build_trials(base: Mapping[str, Any], planned: Sequence[Mapping[str, Any]], start: int = 0) -> list[Trial]:
    """Trials numbered from `start` for the given overrides."""
    return [
        Trial(index=start + i, overrides=dict(overrides), config=trial_config(base, overrides))
        for i, overrides in enumerate(planned)
    ]


def make_trials(base: Mapping[str, Any], sweep: SweepSection) -> list[Trial]:
    """Every trial of a sweep with the default sampler, in a fixed order: grid points, random draws from `seed`."""
    space = SearchSpace.of(sweep)
    planned = (
        plan_random(space, sweep.trials, sweep.seed) if space.params else plan_grid(space, sweep.trials, sweep.seed)
    )
    return build_trials(base, planned)
