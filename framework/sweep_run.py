"""Running a sweep: a parent MLflow run, one child run per trial, in parallel, resumable.

The sweep's process checks the tracking store first (an unreachable server is one message before any trial
starts), starts its executor (`framework.sweep_exec`: a local process pool, `workers` at a time, or the
workers of a Dask cluster at `--address`), and plans while the workers import:

- the sampler (`[sweep] sampler`, `--sampler`; `framework.components.Sampler`) and the pruner are checked,
  and every trial of a planned sampler (grid, random) is validated and hashed, so a bad value fails before
  anything runs; for a sampler that Optuna drives, every value the space can take is validated instead;
- the ranking metric is checked against a real (untracked) build of the first trial, and its direction
  taken from the metric's declaration.

Then it creates or finds the parent run (`framework.sweep_parent`, by the sweep's identity) and runs what is
missing. Without Optuna (a planned sampler, no pruning) the trials are all submitted at once and a re-run
skips those whose child FINISHED (matched by `backprop.trial_hash`). With Optuna (`framework.sweep_study`)
the study decides: as many trials as there are workers are in flight, the next one is asked for when one
ends, and a re-run continues the study. Each trial is an ordinary tracked run (`framework.sweep_trial`);
a failed trial is recorded as FAILED and does not stop the sweep.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from framework.build import load_plugins, prepare_run, resolve
from framework.components import ComponentSpec, Sampler, spec_name, spec_params
from framework.config import Experiment, SweepSection
from framework.errors import ConfigError, PluginError, UserError, did_you_mean
from framework.mlflow_store import open_client, tracking_uri
from framework.registry import Registry
from framework.sweep import (
    SearchSpace,
    SweepDefinition,
    Trial,
    build_trials,
    config_hash,
    definition_hash,
    sampler_of,
)
from framework.sweep_exec import DaskExecutor, LocalExecutor
from framework.sweep_parent import ParentRun
from framework.sweep_report import Savings, ranked, savings
from framework.sweep_source import PlannedTrials, StudyTrials, TrialSource
from framework.sweep_study import absolute_storage, default_storage, redacted, require_optuna, resolve_pruner

log = logging.getLogger(__name__)

POLL_S = 0.5
HEALTH_TIMEOUT_S = 5.0


@dataclass
class SweepResult:
    parent_run_id: str
    trials: list[Trial]
    metric: str
    direction: str
    best: Trial | None
    skipped: int
    experiment_id: str = ""
    tracking_uri: str = ""
    sampler: str = "grid"
    pruner: str | None = None
    savings: Savings = field(default_factory=lambda: Savings(0, 0, 0, 0.0))
    study: str | None = None
    """`<study name> in <storage>`, for a sweep that has an Optuna study."""


@dataclass
class Plan:
    """What planning found: the sampler and pruner as resolved specs, the space, and the trials or probes."""

    sampler_spec: ComponentSpec
    sampler: Sampler
    pruner: dict[str, Any] | None
    space: SearchSpace
    direction: str
    trials: list[Trial] | None
    """Every trial of a planned sampler; None for one that Optuna drives."""
    registry: Registry
    definition: SweepDefinition

    @property
    def uses_study(self) -> bool:
        return self.sampler.uses_optuna or self.pruner is not None


class SweepRunner:
    """Plans and runs one sweep; `on_update` is called whenever a trial changes state (for the live view)."""

    def __init__(
        self,
        experiment: Experiment,
        sweep: SweepSection,
        *,
        workers: int,
        executor: str = "local",
        address: str | None = None,
        on_update: Callable[[list[Trial]], None] | None = None,
    ) -> None:
        if workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {workers}")
        if executor not in {"local", "dask"}:
            raise ConfigError(f"--executor {executor!r}: use 'local' or 'dask'")
        if executor == "dask" and not address:
            raise ConfigError("--executor dask needs --address tcp://HOST:PORT of the Dask scheduler")
        self.experiment = experiment
        self.sweep = SweepDefinition.model_validate(sweep.model_dump())
        self.workers = workers
        self.executor = executor
        self.address = address
        self.on_update = on_update or (lambda trials: None)
        self.parent_id: str | None = None
        """The parent run's id once it exists (an interrupted sweep is resumed under it)."""
        self.trials: list[Trial] = []

    # -- planning ------------------------------------------------------------------------------------------

    def plan(self) -> Plan:
        """The sampler, the pruner and the trials, validated, and the metric's direction (from a real build)."""
        _, registry = load_plugins(self.experiment)
        space = SearchSpace.of(self.sweep)
        spec = registry.resolve_spec("sampler", sampler_of(self.sweep), "sweep.sampler")
        sampler = registry.create("sampler", spec_name(spec), spec_params(spec), where="sweep.sampler", expect=Sampler)
        pruner = resolve_pruner(self.sweep.prune) if self.sweep.prune is not None else None
        if sampler.uses_optuna:
            require_optuna(f"--sampler {sampler.name}")
            if self.sweep.trials < 1:
                raise ConfigError(f"--sampler {sampler.name} needs a number of trials: --trials N (or trials = N)")
        if pruner is not None:
            require_optuna(f"--prune {pruner['name']}")
        definition = self.sweep.model_copy(update={"sampler": spec, "prune": pruner})
        base = self.experiment.to_dict()
        if sampler.uses_optuna:
            trials = None
            probes = build_trials(base, probe_points(space))
        else:
            try:
                planned = sampler.plan(space, self.sweep.trials, self.sweep.seed)
            except UserError:
                raise
            except Exception as exc:  # a plugin's sampler that breaks: name it, not just the exception
                raise PluginError(
                    f"sampler {sampler.name!r} ({type(sampler).__module__}) failed to plan the trials: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            trials = build_trials(base, planned)
            if not trials:
                raise ConfigError(f"sampler {sampler.name!r} planned no trials for this sweep")
            probes = trials
        for trial in probes:
            self.validate(trial, registry)
        direction = self._direction(probes[0])
        return Plan(spec, sampler, pruner, space, direction, trials, registry, definition)

    def validate(self, trial: Trial, registry: Registry) -> None:
        """Resolve the trial's config (writing its defaults out) and hash it; a bad value names the trial."""
        try:
            resolved = resolve(Experiment.from_dict(trial.config, source=self.experiment.source), registry)
        except UserError as exc:
            raise ConfigError(f"sweep trial {trial.index} ({trial.label}): {exc}") from None
        trial.config = resolved.to_dict()
        trial.config.pop("sweep", None)
        trial.hash = config_hash(trial.config)

    def _direction(self, trial: Trial) -> str:
        probe = prepare_run(Experiment.from_dict(trial.config, source=self.experiment.source), track=False)
        names = probe.trainer.metric_names
        metric = self.sweep.metric
        if metric not in names:
            hint = did_you_mean(metric, names)
            raise ConfigError(
                f"sweep metric {metric!r} is not computed by these trials. Available: {', '.join(names)}."
                + (f" Did you mean {hint!r}?" if hint else "")
            )
        declared = probe.trainer.metrics.get(metric.split("_", 1)[1])
        return declared.direction if declared is not None else "min"  # losses are minimised

    # -- running -------------------------------------------------------------------------------------------

    def run(self) -> SweepResult:
        uri = _absolute_tracking_uri(tracking_uri())
        check_tracking(uri)  # before any worker starts: a server that is down is one message, not minutes
        # The workers start before planning: their imports (numpy, MLflow: seconds) overlap it.
        executor: LocalExecutor | DaskExecutor | None = None
        try:
            if self.executor == "local":
                executor = LocalExecutor(self.workers, uri)
            else:
                executor = DaskExecutor(self.address or "", uri)
            return self._run(executor, uri)
        finally:
            if executor is not None:
                executor.close()

    def _run(self, executor: Any, uri: str) -> SweepResult:
        plan = self.plan()
        client = open_client(uri)  # creates the store's tables before any worker touches it
        sweep_hash = definition_hash(
            self.experiment.to_dict(), plan.definition, study=plan.uses_study, budget=plan.sampler.uses_optuna
        )
        tags = {"backprop.sampler": spec_name(plan.sampler_spec)}
        source: TrialSource
        if plan.uses_study:
            storage = absolute_storage(self.sweep.study_storage or default_storage(uri))
            name = f"backprop-{sweep_hash}"
            tags.update({"backprop.study_name": name, "backprop.study_storage": redacted(storage)})
            if plan.pruner is not None:
                tags["backprop.prune"] = plan.pruner["name"]
                if self.executor == "dask" and storage.startswith("sqlite:"):
                    log.warning("pruning Dask trials report to %s: every worker must see this file", storage)
            parent = ParentRun(client, self.experiment, plan.definition, sweep_hash, tags)
            source = StudyTrials(self, plan, storage, name, parent)
        else:
            parent = ParentRun(client, self.experiment, plan.definition, sweep_hash, tags)
            source = PlannedTrials(plan.trials or [], parent, self.sweep.metric)
        self.parent_id = parent.run_id
        skipped = source.resume()
        trials = self.trials = source.trials
        self.on_update(trials)
        status = "FINISHED"
        try:
            self._loop(executor, source, parent, uri)
        except BaseException as exc:
            status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            for trial, outcome in executor.interrupt():
                self._record(trial, outcome, parent, source)
            source.abandon()
            raise
        finally:
            best = _best(trials, plan.direction)
            parent.finish(
                trials,
                best,
                metric=self.sweep.metric,
                direction=plan.direction,
                status=status,
                sampler=plan.sampler_spec,
                pruner=plan.pruner,
                log_keys=[k for k in plan.space.keys if plan.space.is_log(k)],
                tracking_uri=uri,
            )
        return SweepResult(
            parent.run_id,
            trials,
            self.sweep.metric,
            plan.direction,
            best,
            skipped,
            experiment_id=parent.experiment_id,
            tracking_uri=uri,
            sampler=spec_name(plan.sampler_spec),
            pruner=plan.pruner["name"] if plan.pruner is not None else None,
            savings=savings(trials),
            study=f"{tags['backprop.study_name']} in {tags['backprop.study_storage']}" if plan.uses_study else None,
        )

    def _loop(self, executor: Any, source: TrialSource, parent: ParentRun, uri: str) -> None:
        while True:
            # A planned sweep queues everything at once; a study keeps one trial per worker in flight, so that
            # each new trial is asked for knowing the results so far.
            room = executor.capacity - executor.in_flight if source.one_at_a_time else None
            while room is None or room > 0:
                trial = source.next()
                if trial is None:
                    break
                executor.submit(trial, self._payload(trial, parent.run_id, uri, source))
                room = None if room is None else room - 1
            if executor.in_flight == 0:
                return
            for trial, outcome in executor.poll(POLL_S):
                self._record(trial, outcome, parent, source)
            self.on_update(source.trials)

    def _record(self, trial: Trial, outcome: dict[str, Any], parent: ParentRun, source: TrialSource) -> None:
        trial.run_id = outcome.get("run_id") or trial.run_id
        trial.result = outcome
        if outcome["status"] == "FINISHED":
            trial.metric = outcome["final"].get(self.sweep.metric)
            trial.epochs, trial.seconds = outcome.get("epochs"), outcome.get("seconds")
            trial.pruned_epoch = outcome.get("pruned_epoch")
            trial.status = "pruned" if trial.pruned_epoch is not None else "finished"
            if trial.pruned_epoch is not None and trial.run_id:
                try:
                    parent.tag(
                        trial.run_id, {"backprop.pruned": "true", "backprop.pruned_epoch": str(trial.pruned_epoch)}
                    )
                except Exception as exc:  # a tag is not worth the sweep
                    log.warning("could not tag pruned run %s: %s", trial.run_id, exc)
        else:
            trial.status = "killed" if outcome["status"] == "KILLED" else "failed"
            trial.error = outcome.get("error")
        source.tell(trial)
        self.on_update(source.trials)

    def _payload(self, trial: Trial, parent_id: str, uri: str, source: TrialSource) -> dict[str, Any]:
        tags = {"mlflow.parentRunId": parent_id, "backprop.trial_hash": trial.hash, "backprop.trial": str(trial.index)}
        if trial.number is not None:
            tags["backprop.optuna_trial"] = str(trial.number)
        return {
            "config": trial.config,
            "source": str(self.experiment.source.resolve()) if self.experiment.source else None,
            "tracking_uri": uri,
            "tags": tags,
            "study": source.trial_study(trial),
        }


def probe_points(space: SearchSpace) -> list[dict[str, Any]]:
    """Points that together take every value a sampler could give each key: every grid value and choice, and
    both ends of each numeric range, each varied from a base point (so a bad value fails before any trial)."""

    def values(key: str) -> list[Any]:
        if key in space.grid:
            return list(space.grid[key])
        distribution = space.params[key]
        return list(distribution.args)

    first = {key: values(key)[0] for key in space.keys}
    points = [first]
    for key in space.keys:
        for value in values(key)[1:]:
            points.append({**first, key: value})
    return points


def check_tracking(uri: str) -> None:
    """An HTTP tracking server must answer before the sweep starts (MLflow's client retries for minutes)."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=HEALTH_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return  # it answered (authentication, a proxy without /health): reachable
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(
            f"MLflow tracking server {uri} is not reachable ({reason}); no trial was started. "
            "help: start the server, or fix MLFLOW_TRACKING_URI"
        ) from None


def _absolute_tracking_uri(uri: str) -> str:
    """Workers may run elsewhere (another cwd, another process): give them an absolute store."""
    return absolute_storage(uri)


def _best(trials: list[Trial], direction: str) -> Trial | None:
    """The best finished trial by the ranking metric (pruned trials stopped early: they are no candidates)."""
    scored = [t for t in trials if t.status == "finished" and t.metric is not None and math.isfinite(t.metric)]
    return ranked(scored, direction)[0] if scored else None
