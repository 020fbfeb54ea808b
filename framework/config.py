"""The experiment file: one pydantic `Experiment` model with the canonical keys of DESIGN.md section 6.

Files are TOML, YAML or JSON; they are parsed, never evaluated. Validation happens in two steps:
`Experiment.from_file` checks the structure (sections, types, ranges), and `Experiment.resolve` checks each
component section against that component's own `Params` once the plugins are known, filling in defaults.
The resolved experiment is what a run logs; passed back to `backprop run`, it re-runs the same experiment.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from framework.errors import ConfigError
from framework.validation import format_validation_error

SUFFIXES = (".toml", ".yaml", ".yml", ".json")


class Section(BaseModel):
    """A config section whose keys are fixed: an unknown key is an error."""

    model_config = ConfigDict(extra="forbid")


class ComponentSection(BaseModel):
    """A section naming a component; its other keys are that component's params, checked by `resolve`."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(description="The registered name of the component.")

    def component_params(self) -> dict[str, Any]:
        own = set(type(self).model_fields)
        return {k: v for k, v in self.model_dump().items() if k not in own}


class DataSection(ComponentSection):
    validation_split: float = Field(
        0.2, ge=0.0, lt=1.0, description="Fraction of the samples held out for validation (0 for none)."
    )
    standardize: bool = Field(True, description="Scale features to zero mean, unit variance (train split).")
    standardize_target: bool = Field(
        False,
        description="Regression only: scale the targets to zero mean, unit variance (train split); the loss "
        "sees scaled targets, metrics and predictions are in the original units.",
    )


class OptimizerSection(ComponentSection):
    """`[optimizer]`: the optimiser's name and params, plus the options the core applies for every optimiser."""

    weight_decay: float | None = Field(
        None,
        ge=0,
        description="Weight decay λ: L2 (g + λ·p) for most optimisers, decoupled (p - lr·λ·p) for adamw; "
        "default: the optimiser's own (0, adamw 0.01).",
    )
    clip_norm: float | None = Field(
        None, gt=0, description="Scale the gradients down when their global norm exceeds this (default: off)."
    )
    clip_value: float | None = Field(
        None, gt=0, description="Clip every gradient element to [-clip_value, clip_value] (default: off)."
    )


class LayerSection(BaseModel):
    """One layer: `type` names a registered layer (dense by default); other keys are its params."""

    model_config = ConfigDict(extra="allow")

    type: str = Field("dense", description="The registered name of the layer.")

    def component_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if k != "type"}


class ModelSection(Section):
    layers: list[LayerSection] = Field(min_length=1, description="The layers, input to output.")


class TrainingSection(Section):
    epochs: int = Field(10, ge=1, description="Number of passes over the training data.")
    batch_size: int = Field(32, ge=1, description="Samples per gradient step (the last batch may be smaller).")
    shuffle: bool = Field(True, description="Reshuffle the training data every epoch.")
    metrics: list[str | dict[str, Any]] | None = Field(
        None,
        description='Metrics: names, or tables of a name and params ({name = "top_k_accuracy", k = 3}); by '
        "default accuracy for classification, mae and r2 for regression.",
    )
    checkpoint_every: int = Field(
        0, ge=0, description="Write a checkpoint every N epochs, and at the end (0: never, except on Ctrl-C)."
    )
    checkpoint_on_interrupt: bool = Field(
        True, description="On Ctrl-C or SIGTERM, write a checkpoint of the last completed epoch."
    )
    checkpoint_dir: str = Field(
        "checkpoints", description="Root of the checkpoints: <dir>/<experiment>/<run id>/epoch-NNNN (cwd-relative)."
    )
    checkpoint_keep: int = Field(
        2, ge=0, description="Keep the newest N epoch checkpoints of a run (0: all); 2 leaves one to fall back to."
    )


class TrackingSection(Section):
    enabled: bool = Field(True, description="Log the run to MLflow.")
    experiment: str | None = Field(None, description="MLflow experiment name (default: the experiment's name).")
    run_name: str | None = Field(None, description="MLflow run name (default: generated).")
    log_every_n_steps: int | None = Field(
        None, ge=1, description="Also log the batch loss every N steps (default: per-epoch metrics only)."
    )
    gradient_stats: bool = Field(
        True,
        description="Log each layer's weight norm, gradient norm and update ratio per epoch, and "
        "diagnostics/gradient_flow.png (models of at most 48 layers with parameters).",
    )


class SweepSection(Section):
    """The `[sweep]` section: what `backprop sweep` varies (see framework/sweep.py)."""

    grid: dict[str, list[Any]] = Field(
        default_factory=dict, description="Values to try per key (dotted path); trials are their product."
    )
    params: dict[str, str] = Field(
        default_factory=dict,
        description="Random parameters per key: uniform(a,b), loguniform(a,b), int(a,b) or choice(a,b,...).",
    )
    trials: int = Field(0, ge=0, description="Random draws of `params` (each combined with every grid point).")
    seed: int = Field(0, ge=0, description="Seed of the random draws, so that a random sweep is repeatable.")
    metric: str = Field("val_loss", description="The metric that ranks the trials (its direction is declared).")
    sampler: str | dict[str, Any] | None = Field(
        None,
        description="How trials are chosen: grid, random, tpe, cmaes, qmc or a plugin's sampler, by name or as a "
        "table with its params (default: random when there are random parameters, else grid).",
    )
    prune: str | dict[str, Any] | None = Field(
        None,
        description="Stop hopeless trials early through an Optuna pruner: median, hyperband or "
        "successive_halving, by name or as a table with its params (default: no pruning).",
    )
    study_storage: str | None = Field(
        None,
        description="The Optuna study's RDB storage URL (default: the SQLite file optuna.db beside a local "
        "MLflow store, else in the current directory).",
    )


class Experiment(Section):
    """A whole experiment: data, model, loss, optimiser, training, callbacks and tracking."""

    name: str = Field(min_length=1, description="Name of the experiment.")
    seed: int = Field(0, ge=0, description="Seed of every random choice of the run.")
    dtype: Literal["float32", "float64"] = Field("float32", description="Floating point precision.")
    plugins: list[str] = Field(
        default_factory=list, description="Extra plugins: module names, or .py files relative to this file."
    )
    disabled_plugins: list[str] = Field(
        default_factory=list, description="Plugins to leave out of this experiment; they are never imported."
    )
    data: DataSection
    model: ModelSection
    loss: ComponentSection
    optimizer: OptimizerSection
    training: TrainingSection = Field(default_factory=TrainingSection)
    callbacks: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="One section per enabled callback, keyed by its name."
    )
    tracking: TrackingSection = Field(default_factory=TrackingSection)
    sweep: SweepSection | None = Field(None, description="What `backprop sweep` varies (ignored by `run`).")

    _source: Path | None = PrivateAttr(default=None)

    @property
    def source(self) -> Path | None:
        """The file this experiment was read from, if any."""
        return self._source

    @property
    def base_dir(self) -> Path | None:
        return self._source.parent if self._source is not None else None

    # -- reading ------------------------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | Path, overrides: Sequence[str] = ()) -> Experiment:
        """Read and validate an experiment file, applying `key.path=value` overrides first."""
        path = Path(path)
        data = read_config_file(path)
        apply_overrides(data, overrides)
        return cls.from_dict(data, source=path)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: Path | None = None) -> Experiment:
        try:
            experiment = cls.model_validate(dict(data))
        except ValidationError as exc:
            where = f"{source}: " if source is not None else ""
            lines = format_validation_error(exc, model=cls).splitlines()
            raise ConfigError("\n".join(where + line for line in lines)) from None
        from framework.limits import check_finite, check_names

        check_finite(dict(data), source)  # after validation: its messages (NaN lr: "greater than 0") come first
        check_names(data, source)
        experiment._source = source
        return experiment

    def to_dict(self) -> dict[str, Any]:
        """The experiment as plain data (JSON-compatible), with every key written out."""
        return self.model_dump(mode="json")

    def flat(self) -> dict[str, Any]:
        """The experiment as dotted keys, for MLflow params."""
        return flatten(self.to_dict())

    def with_source(self, source: Path | None) -> Experiment:
        self._source = source
        return self


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a TOML, YAML or JSON file into a dict; errors name the file and the position."""
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} not found")
    if path.is_dir():
        raise ConfigError(f"config path {str(path)!r} is a directory, not a file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ConfigError(f"{path}: unsupported config format {suffix!r}; use one of {', '.join(SUFFIXES)}")
    from framework.limits import check_file_size, check_value_count

    check_file_size(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            import yaml  # YAML is parsed with the safe loader: no object construction

            data = yaml.safe_load(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except Exception as exc:  # yaml.YAMLError, without importing yaml at module level
        raise ConfigError(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a table of keys, got {type(data).__name__}")
    check_value_count(data, path)
    return data


def parse_value(text: str) -> Any:
    """Parse an override's value as a TOML value (`0.1`, `true`, `"x"`, `[1, 2]`), else keep the string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _override_value(key: str, text: str) -> Any:
    """An override's value; one that starts like a TOML list, table or string must parse as one."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError as exc:
        if text and text[0] in "[{\"'":
            raise ConfigError(
                f"--set {key}: cannot read {text!r} as a TOML value ({exc}); "
                'help: write lists as [1, 2], tables as {a = 1} and strings as "text" (quoted for the shell)'
            ) from None
        return text


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> None:
    """Apply `key.path=value` overrides in place; a path through a non-table is an error."""
    for override in overrides:
        key, sep, raw = override.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {override!r}: expected KEY=VALUE, for example optimizer.lr=0.1")
        parts = key.split(".")
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            if i > 0 and isinstance(node, dict) and isinstance(node.get(part), str):
                # Below the top level, a component given by name (`activation = "leaky_relu"`) becomes a table
                # to set its params (`--set model.layers.0.activation.negative_slope=0.1`).
                node[part] = {"name": node[part]}
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"--set {key}: {'.'.join(parts[: i + 1])} is not an index of the list")
                node = node[int(part)]
                continue
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {'.'.join(parts[:i])} is not a table")
            node = node.setdefault(part, {})
        last = parts[-1]
        value = _override_value(key, raw.strip())
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise ConfigError(f"--set {key}: {last!r} is not an index of the list")
            node[int(last)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise ConfigError(f"--set {key}: {'.'.join(parts[:-1])} is not a table")


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts (and lists) as dotted keys: ``{"a": {"b": 1}, "l": [{"u": 2}]}`` -> ``a.b``, ``l.0.u``."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, path + "."))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for i, item in enumerate(value):
                flat.update(flatten(item, f"{path}.{i}."))
        else:
            flat[path] = value
    return flat
