"""The Optuna side of a sweep: its study beside the MLflow store, its pruners, its space in Optuna's terms.

A sweep goes through an Optuna study when its sampler is one that Optuna drives (`tpe`, `cmaes`, `qmc`) or
when it prunes (`--prune median`). The study is named after the sweep's identity, `backprop-<definition
hash>`, and kept in an RDB storage (a SQLite file beside a local MLflow store by default, or
`--study-storage URL`), so rerunning the sweep continues it and `optuna-dashboard URL` shows it.

The sweep's process asks the study for trials and tells it their results. Only pruning makes the trials
themselves open the storage: each reports its metric after every epoch and asks whether to stop
(`framework.sweep_trial`). Optuna is optional: nothing here imports it until a sweep needs it.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, ValidationError

from framework.components import ComponentSpec, Params, spec_name, spec_params
from framework.errors import ConfigError, UserError, did_you_mean
from framework.mlflow_store import sqlite_path
from framework.sweep import SearchSpace
from framework.validation import format_validation_error

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

OPTUNA_EXTRA = "pip install 'backprop[optuna]'"
STUDY_FILE = "optuna.db"
SQLITE_TIMEOUT_S = 60  # trials report every epoch from several processes: wait for the lock, never fail on it


def require_optuna(what: str) -> None:
    """Refuse a sweep that needs Optuna when it is not installed, saying how to install it."""
    if importlib.util.find_spec("optuna") is None:
        raise UserError(f"{what} needs Optuna, which is not installed: {OPTUNA_EXTRA}")


def quiet_optuna() -> None:
    """Optuna's INFO lines ("Trial 3 finished ...") go to logging like ours, not straight to stderr."""
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    optuna.logging.set_verbosity(optuna.logging.WARNING)


# -- pruners ---------------------------------------------------------------------------------------------


class Pruning(Params):
    """A pruner's params; `rule` says when it stops a trial, `build` makes the Optuna pruner."""

    rule: ClassVar[str] = ""

    def build(self, epochs: int | None) -> Any:
        raise NotImplementedError


class MedianPruning(Pruning):
    rule: ClassVar[str] = (
        "stop a trial after epoch t when its best metric so far is worse than the median of the earlier trials' "
        "metrics at epoch t"
    )
    n_startup_trials: int = Field(5, ge=0, description="Trials that finish before any is pruned.")
    n_warmup_steps: int = Field(0, ge=0, description="Epochs every trial trains before it can be pruned.")
    interval_steps: int = Field(1, ge=1, description="Epochs between two pruning checks.")
    n_min_trials: int = Field(1, ge=1, description="Earlier trials that must have reached epoch t to compare with.")

    def build(self, epochs: int | None) -> Any:
        import optuna

        return optuna.pruners.MedianPruner(
            n_startup_trials=self.n_startup_trials,
            n_warmup_steps=self.n_warmup_steps,
            interval_steps=self.interval_steps,
            n_min_trials=self.n_min_trials,
        )


class SuccessiveHalvingPruning(Pruning):
    rule: ClassVar[str] = (
        "at epochs r·η^k (rungs), keep a trial only if its metric is in the best 1/η of the trials that reached "
        "that rung"
    )
    min_resource: int | None = Field(
        None, ge=1, description="Epochs before the first rung, r (default: estimated by Optuna from the first trial)."
    )
    reduction_factor: int = Field(4, ge=2, description="η: each rung keeps the best 1/η of the trials.")
    min_early_stopping_rate: int = Field(0, ge=0, description="s: the first rung is at r·η^s epochs.")
    bootstrap_count: int = Field(0, ge=0, description="Trials that must reach a rung before it prunes.")

    def build(self, epochs: int | None) -> Any:
        import optuna

        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=self.min_resource if self.min_resource is not None else "auto",
            reduction_factor=self.reduction_factor,
            min_early_stopping_rate=self.min_early_stopping_rate,
            bootstrap_count=self.bootstrap_count,
        )


class HyperbandPruning(Pruning):
    rule: ClassVar[str] = (
        "successive halving in several brackets that start pruning at different rungs, so trials that learn "
        "slowly get a chance in some bracket"
    )
    min_resource: int = Field(1, ge=1, description="Epochs a trial trains before its first rung.")
    max_resource: int | None = Field(
        None, ge=1, description="Epochs of a whole trial (default: the base config's training.epochs)."
    )
    reduction_factor: int = Field(3, ge=2, description="η: each rung keeps the best 1/η of its trials.")
    bootstrap_count: int = Field(0, ge=0, description="Trials that must reach a rung before it prunes.")

    def build(self, epochs: int | None) -> Any:
        import optuna

        maximum = self.max_resource if self.max_resource is not None else epochs
        return optuna.pruners.HyperbandPruner(
            min_resource=self.min_resource,
            max_resource=maximum if maximum is not None else "auto",
            reduction_factor=self.reduction_factor,
            bootstrap_count=self.bootstrap_count,
        )


PRUNERS: dict[str, type[Pruning]] = {
    "median": MedianPruning,
    "successive_halving": SuccessiveHalvingPruning,
    "hyperband": HyperbandPruning,
}


def resolve_pruner(spec: ComponentSpec) -> dict[str, Any]:
    """A pruner spec checked, with its defaults written out (`{"name": "median", "n_startup_trials": 5, ...}`)."""
    name = spec_name(spec)
    if name not in PRUNERS:
        hint = did_you_mean(name, list(PRUNERS))
        raise ConfigError(
            f"sweep.prune: unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}"
            + (f". Did you mean {hint!r}?" if hint else "")
        )
    try:
        params = PRUNERS[name](**spec_params(spec))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, prefix="sweep.prune", model=PRUNERS[name])) from None
    return {"name": name, **params.model_dump(mode="json")}


def make_pruner(spec: Mapping[str, Any], epochs: int | None) -> Any:
    """The Optuna pruner of a resolved spec; `epochs` is a whole trial's length, if every trial has the same."""
    return PRUNERS[str(spec["name"])](**{k: v for k, v in spec.items() if k != "name"}).build(epochs)


# -- storage ---------------------------------------------------------------------------------------------


def default_storage(tracking_uri: str) -> str:
    """`optuna.db` beside a local MLflow store's database, else in the current directory."""
    database = sqlite_path(tracking_uri)
    folder = database.parent if database is not None else Path.cwd()
    return f"sqlite:///{(folder / STUDY_FILE).resolve()}"


def absolute_storage(url: str) -> str:
    """A relative SQLite path made absolute: trials may run in another directory."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return f"sqlite:///{Path(url.removeprefix('sqlite:///')).resolve()}"
    return url


def redacted(url: str) -> str:
    """A storage URL fit to be logged: `postgresql://user:***@host/db`."""
    return re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", url)


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """The RDB storage at `url` (tables created when missing); an unusable URL is one clear message."""
    import optuna

    kwargs: dict[str, Any] = {}
    database = sqlite_path(url)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
        kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except Exception as exc:  # a bad URL, a missing driver, a server that does not answer
        raise UserError(
            f"--study-storage {redacted(url)}: Optuna cannot open this storage ({type(exc).__name__}: {exc}); "
            "help: give an RDB URL such as sqlite:///path/optuna.db or postgresql://user@host/db"
        ) from None


# -- the search space in Optuna's terms ------------------------------------------------------------------


def _primitive(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


class OptunaSpace:
    """The sweep's space as Optuna distributions: grid keys and choice() are categorical, the rest numeric.

    Optuna's categorical choices must be None, bool, int, float or str; other values (lists, tables) are
    stored as their JSON text and turned back into the value by position, so no string is ever mistaken
    for one.
    """

    def __init__(self, space: SearchSpace) -> None:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        self.keys = space.keys
        self.choices: dict[str, list[Any]] = {}
        self.distributions: dict[str, Any] = {}
        for key, values in space.grid.items():
            self.choices[key] = list(values)
        for key, distribution in space.params.items():
            if distribution.kind == "choice":
                self.choices[key] = list(distribution.args)
            elif distribution.kind == "int":
                self.distributions[key] = IntDistribution(*distribution.args)
            else:
                low, high = distribution.args
                self.distributions[key] = FloatDistribution(low, high, log=distribution.kind == "loguniform")
        for key, values in self.choices.items():
            self.distributions[key] = CategoricalDistribution([self._encode(v) for v in values])
        self.distributions = {key: self.distributions[key] for key in self.keys}

    @staticmethod
    def _encode(value: Any) -> Any:
        return value if _primitive(value) else json.dumps(value, sort_keys=True)

    def encode(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """A trial's overrides as Optuna params (for `enqueue_trial`)."""
        return {key: self._encode(value) if key in self.choices else value for key, value in overrides.items()}

    def decode(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Optuna params back into the trial's overrides, in the space's key order."""
        overrides = {}
        for key in self.keys:
            value = params[key]
            if key in self.choices:
                encoded = [self._encode(v) for v in self.choices[key]]
                value = self.choices[key][encoded.index(value)]
            overrides[key] = value
        return overrides


def create_study(
    url: str, name: str, direction: str, sampler: Any, pruner: Any, tags: Mapping[str, str]
) -> optuna.Study:
    """Create the sweep's study, or load it when a run of the same sweep created it before."""
    import optuna

    storage = open_storage(url)
    wanted: Literal["minimize", "maximize"] = "minimize" if direction == "min" else "maximize"
    study = optuna.create_study(
        storage=storage, study_name=name, direction=wanted, sampler=sampler, pruner=pruner, load_if_exists=True
    )
    if study.direction.name.lower() != wanted:  # the identity includes the metric: only a hand-made clash
        raise UserError(
            f"Optuna study {name!r} in {redacted(url)} {study.direction.name.lower()}s, but this sweep "
            f"{wanted}s its metric; help: give another --study-storage, or delete the study (optuna delete-study)"
        )
    for key, value in tags.items():
        study.set_user_attr(key, value)
    return study


def load_trial(storage: optuna.storages.BaseStorage, name: str, trial_id: int, pruner: Any) -> optuna.Trial:
    """A running trial of the study, as a trial process sees it (to report and to ask whether to prune)."""
    import optuna

    study = optuna.load_study(study_name=name, storage=storage, pruner=pruner)
    return optuna.Trial(study, trial_id)
