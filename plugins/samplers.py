"""The built-in samplers of `backprop sweep`: grid and random search, and Optuna's TPE, CMA-ES and QMC.

`grid` and `random` plan every trial up front with numpy alone. The other three hand an Optuna sampler to the
sweep's study, which asks it for a trial whenever a worker is free: Optuna is the well-kept library for
search strategies, and it is optional (`pip install 'backprop[optuna]'`).
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any, ClassVar, Literal

from pydantic import Field

from framework import Params, hookimpl
from framework.components import Sampler
from framework.errors import UserError
from framework.sweep import SearchSpace, plan_grid, plan_random

OPTUNA_EXTRA = "pip install 'backprop[optuna]'"


def require(module: str, sampler: str) -> None:
    """Refuse, with the command that installs it, a sampler whose library is missing."""
    if importlib.util.find_spec(module) is None:
        raise UserError(f"--sampler {sampler} needs the {module} package, which is not installed: {OPTUNA_EXTRA}")


class NoParams(Params):
    pass


class GridSampler(Sampler):
    """Every combination of the `--grid` values, in order (the last key varies fastest).

    With `trials` = N below the number of combinations, N of them are drawn without replacement under the
    sweep's seed (and run in grid order): a random subset of the grid. Random parameters (`--param`) are
    refused: they need a sampler that draws.
    """

    name: ClassVar[str] = "grid"
    Params: ClassVar[type[Params]] = NoParams

    def plan(self, space: SearchSpace, trials: int, seed: int) -> list[dict[str, Any]]:
        return plan_grid(space, trials, seed)


class RandomSampler(Sampler):
    """`trials` independent draws of the `--param` distributions from numpy's generator seeded by the sweep's seed.

    Each draw is combined with every point of the `--grid` keys, if any. `loguniform(a, b)` draws exp(u) with
    u uniform in [ln a, ln b); `int(a, b)` an integer in [a, b]; `choice(...)` one value, each equally likely.
    """

    name: ClassVar[str] = "random"
    Params: ClassVar[type[Params]] = NoParams

    def plan(self, space: SearchSpace, trials: int, seed: int) -> list[dict[str, Any]]:
        return plan_random(space, trials, seed)


class TpeParams(Params):
    n_startup_trials: int = Field(10, ge=0, description="Trials drawn at random before TPE models the results.")
    n_ei_candidates: int = Field(
        24, ge=1, description="Candidates drawn from the good-trials density; the one with the best ratio is tried."
    )
    multivariate: bool = Field(True, description="Model the parameters jointly (Optuna's default for one objective).")
    constant_liar: bool = Field(
        True, description="Count running trials as bad ones, so parallel workers do not all try the same region."
    )


class TpeSampler(Sampler):
    """Tree-structured Parzen Estimator (Optuna's `TPESampler`): model where good trials lie, sample there.

    The finished trials are split by their metric into the best fraction γ and the rest; each part gets a
    density over the parameters, l(x) for the good and g(x) for the others. Each new trial is the one of
    `n_ei_candidates` draws from l that maximises l(x) / g(x), which maximises the expected improvement. The
    first `n_startup_trials` are random.
    """

    name: ClassVar[str] = "tpe"
    Params: ClassVar[type[Params]] = TpeParams
    params: TpeParams
    uses_optuna: ClassVar[bool] = True

    def optuna_sampler(self, space: SearchSpace, seed: int) -> Any:
        require("optuna", self.name)
        import optuna

        p = self.params
        with warnings.catch_warnings():  # constant_liar and multivariate are marked experimental: expected
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                n_startup_trials=p.n_startup_trials,
                n_ei_candidates=p.n_ei_candidates,
                multivariate=p.multivariate,
                constant_liar=p.constant_liar,
                seed=seed,
            )


class CmaEsParams(Params):
    n_startup_trials: int = Field(1, ge=0, description="Trials drawn at random before the evolution strategy starts.")
    sigma0: float | None = Field(
        None, gt=0, description="Initial step size (default: a sixth of the narrowest range, Optuna's choice)."
    )
    restart_strategy: Literal["ipop", "bipop"] | None = Field(
        None, description="Restart with a larger population when the search stalls (default: never)."
    )
    with_margin: bool = Field(
        False, description="Keep integer parameters from collapsing onto one value (CMA-ES with margin)."
    )


class CmaEsSampler(Sampler):
    """CMA-ES (Optuna's `CmaEsSampler`): evolve a Gaussian over the numeric parameters toward the better trials.

    Each generation draws candidates x ~ m + σ·N(0, C); after the generation, the mean m moves toward the best
    of them, the covariance C stretches along the directions that improved, and the step size σ adapts. It
    is meant for numbers: `choice(...)` parameters and `--grid` keys are drawn at random, independently.
    Needs the `cmaes` package (in the optuna extra).
    """

    name: ClassVar[str] = "cmaes"
    Params: ClassVar[type[Params]] = CmaEsParams
    params: CmaEsParams
    uses_optuna: ClassVar[bool] = True

    def optuna_sampler(self, space: SearchSpace, seed: int) -> Any:
        require("optuna", self.name)
        require("cmaes", self.name)
        import optuna

        p = self.params
        return optuna.samplers.CmaEsSampler(
            n_startup_trials=p.n_startup_trials,
            sigma0=p.sigma0,
            restart_strategy=p.restart_strategy,
            with_margin=p.with_margin,
            # Categorical keys are drawn at random by design (docstring); Optuna would warn on every trial.
            warn_independent_sampling=False,
            seed=seed,
        )


class QmcParams(Params):
    qmc_type: Literal["sobol", "halton"] = Field("sobol", description="The low-discrepancy sequence.")
    scramble: bool = Field(
        True, description="Randomise the sequence under the sweep's seed (else every seed gives the same trials)."
    )


class QmcSampler(Sampler):
    """Quasi-Monte Carlo (Optuna's `QMCSampler`): points of a low-discrepancy sequence (Sobol or Halton).

    The i-th trial is the i-th point of the sequence in the unit cube, mapped to each parameter's range (on
    a log scale for loguniform): the points fill the space more evenly than independent random draws, so a
    small budget leaves fewer gaps. The results do not steer it.
    """

    name: ClassVar[str] = "qmc"
    Params: ClassVar[type[Params]] = QmcParams
    params: QmcParams
    uses_optuna: ClassVar[bool] = True

    def optuna_sampler(self, space: SearchSpace, seed: int) -> Any:
        require("optuna", self.name)
        import optuna

        p = self.params
        with warnings.catch_warnings():  # QMCSampler is marked experimental: expected
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.QMCSampler(qmc_type=p.qmc_type, scramble=p.scramble, seed=seed)


@hookimpl
def register_samplers() -> list[type[Sampler]]:
    return [GridSampler, RandomSampler, TpeSampler, CmaEsSampler, QmcSampler]
