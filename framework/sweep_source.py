"""Where a sweep's next trial comes from, and where its result goes: the plan, or the Optuna study.

`PlannedTrials`: every trial is known (grid, random); a re-run skips those whose child run FINISHED.

`StudyTrials`: the sweep's Optuna study (`framework.sweep_study`). For a sampler that Optuna drives, each
trial is asked for when a worker is free, and every result is told. For a planned sampler with pruning, the
planned trials are enqueued one by one, so the pruner sees every trial's epochs. On a re-run the study
continues where it stopped:

- trials COMPLETE or PRUNED are kept and never run again (`--trials N` counts them);
- a trial left RUNNING by a sweep that died is settled from its child run: told COMPLETE or PRUNED if the
  child FINISHED, else FAIL;
- the values of FAILed trials (errors, interruptions) are enqueued once more, so the re-run finishes what
  is missing before it asks the sampler for anything new.

Each Optuna trial carries user attributes `trial_hash`, `mlflow_run_id`, `epochs`, `seconds` and
`pruned_epoch`; each child run the tag `backprop.optuna_trial` with the trial's number.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Protocol

from framework.errors import ConfigError
from framework.sweep import Trial, trial_config
from framework.sweep_parent import ParentRun

if TYPE_CHECKING:
    from framework.sweep_run import Plan, SweepRunner


class TrialSource(Protocol):
    trials: list[Trial]
    """Every trial the sweep shows: those of earlier runs of it too."""
    one_at_a_time: bool
    """True when the next trial depends on results: the runner keeps one trial per worker in flight."""

    def resume(self) -> int:
        """Take up what an earlier run of the sweep did; the number of trials it finished."""
        ...

    def next(self) -> Trial | None:
        """The next trial to run, or None when there is none."""
        ...

    def tell(self, trial: Trial) -> None:
        """A trial ended (its status and metric are set)."""
        ...

    def abandon(self) -> None:
        """The sweep stops: settle the trials that were handed out and never told."""
        ...

    def trial_study(self, trial: Trial) -> dict[str, Any] | None:
        """What the trial's process needs to report to the study (pruning), or None."""
        ...


class PlannedTrials:
    """A planned sweep without a study: the trials in order, those finished by an earlier run skipped."""

    one_at_a_time = False

    def __init__(self, trials: list[Trial], parent: ParentRun, metric: str) -> None:
        self.trials = trials
        self.parent = parent
        self.metric = metric
        self._queue = iter(trials)

    def resume(self) -> int:
        done = self.parent.finished_children()
        skipped = 0
        for trial in self.trials:
            child = done.get(trial.hash)
            if child is not None:
                trial.status, trial.run_id = "finished", child["run_id"]
                trial.result = {"final": child["metrics"]}
                trial.metric = child["metrics"].get(self.metric)
                skipped += 1
        return skipped

    def next(self) -> Trial | None:
        for trial in self._queue:
            if trial.status == "queued":
                return trial
        return None

    def tell(self, trial: Trial) -> None:
        return None

    def abandon(self) -> None:
        return None

    def trial_study(self, trial: Trial) -> dict[str, Any] | None:
        return None


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


class StudyTrials:
    """Trials asked from (or enqueued into) the sweep's Optuna study, results told back."""

    one_at_a_time = True

    def __init__(self, runner: SweepRunner, plan: Plan, storage: str, name: str, parent: ParentRun) -> None:
        import optuna

        from framework.sweep_study import OptunaSpace, create_study, make_pruner, quiet_optuna

        quiet_optuna()
        self.runner, self.plan, self.parent = runner, plan, parent
        self.storage, self.name = storage, name
        self.metric = runner.sweep.metric
        self.base = runner.experiment.to_dict()
        self.space = OptunaSpace(plan.space)
        swept_epochs = "training.epochs" in plan.space.keys
        self.epochs = None if swept_epochs else int(self.base.get("training", {}).get("epochs", 0)) or None
        seed = runner.sweep.seed
        # A planned sweep's values are enqueued: its sampler never draws, so the cheapest one will do.
        sampler = (
            plan.sampler.optuna_sampler(plan.space, seed)
            if plan.sampler.uses_optuna
            else optuna.samplers.RandomSampler(seed=seed)
        )
        pruner = make_pruner(plan.pruner, self.epochs) if plan.pruner is not None else optuna.pruners.NopPruner()
        self.study = create_study(
            storage,
            name,
            plan.direction,
            sampler,
            pruner,
            {"backprop.parent_run_id": parent.run_id, "backprop.experiment_id": parent.experiment_id},
        )
        self.trials: list[Trial] = []
        self._asked: dict[int, Any] = {}  # number -> the optuna.Trial handed out and not yet told
        self._pending = iter(plan.trials or [])
        self._left = 0

    # -- resuming --------------------------------------------------------------------------------------------

    def resume(self) -> int:
        from optuna.trial import TrialState

        self._settle_stale()
        done: dict[str, Trial] = {}
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            trial = self._from_frozen(frozen)
            done[trial.hash] = trial
        if self.plan.trials is not None:
            # Trials enqueued by a run that died before asking for them would be handed out in place of the
            # planned ones: settle them first.
            for _ in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                self.study.tell(self.study.ask(), state=TrialState.FAIL)
            for trial in self.plan.trials:
                earlier = done.get(trial.hash)
                if earlier is not None:
                    trial.status, trial.run_id, trial.metric = earlier.status, earlier.run_id, earlier.metric
                    trial.number, trial.epochs, trial.seconds = earlier.number, earlier.epochs, earlier.seconds
                    trial.pruned_epoch = earlier.pruned_epoch
            self.trials = list(self.plan.trials)
            return sum(t.done for t in self.trials)
        self.trials = sorted(done.values(), key=lambda t: t.index)
        self._requeue_failed(list(done.values()))
        self._left = max(0, self.runner.sweep.trials - len(done))
        return len(done)

    def _settle_stale(self) -> None:
        """Trials left RUNNING by a sweep that died: told from their child run, or FAIL."""
        from optuna.trial import TrialState

        stale = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not stale:
            return
        children = {
            run.data.tags.get("backprop.optuna_trial"): run
            for run in self.parent.children("FINISHED")
            if "backprop.optuna_trial" in run.data.tags
        }
        for frozen in stale:
            child = children.get(str(frozen.number))
            if child is None:
                self.study.tell(frozen.number, state=TrialState.FAIL, skip_if_finished=True)
                continue
            tags, value = child.data.tags, child.data.metrics.get(self.metric)
            pruned = tags.get("backprop.pruned") == "true" or tags.get("backprop.stop_reason", "").startswith(
                "pruned at epoch"
            )
            storage = self.study._storage
            storage.set_trial_user_attr(frozen._trial_id, "mlflow_run_id", child.info.run_id)
            storage.set_trial_user_attr(frozen._trial_id, "trial_hash", tags.get("backprop.trial_hash", ""))
            if pruned:
                self.study.tell(frozen.number, state=TrialState.PRUNED, skip_if_finished=True)
            elif _finite(value):
                self.study.tell(frozen.number, value, skip_if_finished=True)
            else:
                self.study.tell(frozen.number, state=TrialState.FAIL, skip_if_finished=True)

    def _from_frozen(self, frozen: Any) -> Trial:
        from optuna.trial import TrialState

        attrs = frozen.user_attrs
        overrides = self.space.decode(frozen.params) if set(self.space.keys) <= set(frozen.params) else {}
        pruned = frozen.state == TrialState.PRUNED
        steps = frozen.intermediate_values
        metric = frozen.value if not pruned else (steps[max(steps)] if steps else None)
        index = frozen.number
        if self.plan.trials is not None and "plan_index" in attrs:
            index = int(attrs["plan_index"])
        return Trial(
            index=index,
            overrides=overrides,
            config=trial_config(self.base, overrides),
            hash=str(attrs.get("trial_hash", "")),
            status="pruned" if pruned else "finished",
            run_id=attrs.get("mlflow_run_id"),
            metric=float(metric) if metric is not None and _finite(metric) else None,
            number=frozen.number,
            epochs=attrs.get("epochs"),
            seconds=attrs.get("seconds"),
            pruned_epoch=attrs.get("pruned_epoch"),
        )

    def _requeue_failed(self, done: list[Trial]) -> None:
        """Enqueue once the values of failed trials that no finished or waiting trial has."""
        from optuna.trial import TrialState

        def key(params: dict[str, Any]) -> str:
            return json.dumps(params, sort_keys=True, default=str)

        taken = {key(self.space.encode(t.overrides)) for t in done}
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            taken.add(key(frozen.system_attrs.get("fixed_params", frozen.params)))
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
            if set(self.space.keys) <= set(frozen.params) and key(frozen.params) not in taken:
                taken.add(key(frozen.params))
                self.study.enqueue_trial(dict(frozen.params))

    # -- running ---------------------------------------------------------------------------------------------

    def next(self) -> Trial | None:
        if self.plan.trials is not None:
            for trial in self._pending:
                if trial.status == "queued":
                    self.study.enqueue_trial(self.space.encode(trial.overrides))
                    asked = self._ask(trial)
                    asked.set_user_attr("plan_index", trial.index)
                    return trial
            return None
        while self._left > 0:
            self._left -= 1
            asked = self.study.ask(self.space.distributions)
            overrides = self.space.decode(asked.params)
            trial = Trial(asked.number, overrides, trial_config(self.base, overrides), number=asked.number)
            self.trials.append(trial)
            try:
                self.runner.validate(trial, self.plan.registry)
            except ConfigError as exc:  # the space was probed, so this is a plugin's odd rule: record, go on
                trial.status, trial.error = "failed", str(exc)
                self.study.tell(asked, state=_state("FAIL"))
                continue
            asked.set_user_attr("trial_hash", trial.hash)
            self._asked[asked.number] = asked
            return trial
        return None

    def _ask(self, trial: Trial) -> Any:
        asked = self.study.ask(self.space.distributions)
        trial.number = asked.number
        asked.set_user_attr("trial_hash", trial.hash)
        self._asked[asked.number] = asked
        return asked

    def tell(self, trial: Trial) -> None:
        asked = self._asked.pop(trial.number, None) if trial.number is not None else None
        if asked is None:
            return
        for name, value in (
            ("mlflow_run_id", trial.run_id),
            ("epochs", trial.epochs),
            ("seconds", trial.seconds),
            ("pruned_epoch", trial.pruned_epoch),
        ):
            if value is not None:
                asked.set_user_attr(name, value)
        if trial.status == "pruned":
            self.study.tell(asked, state=_state("PRUNED"))
        elif trial.status == "finished" and _finite(trial.metric):
            self.study.tell(asked, trial.metric)
        else:
            self.study.tell(asked, state=_state("FAIL"))

    def abandon(self) -> None:
        for asked in list(self._asked.values()):
            self.study.tell(asked, state=_state("FAIL"), skip_if_finished=True)
        self._asked.clear()

    def trial_study(self, trial: Trial) -> dict[str, Any] | None:
        if self.plan.pruner is None or trial.number is None:
            return None
        asked = self._asked[trial.number]
        return {
            "storage": self.storage,
            "name": self.name,
            "trial_id": asked._trial_id,
            "pruner": self.plan.pruner,
            "metric": self.metric,
            "epochs": self.epochs,
        }


def _state(name: str) -> Any:
    from optuna.trial import TrialState

    return TrialState[name]
