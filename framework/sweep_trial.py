"""One trial of a sweep, where it runs: a process of the local pool, or a Dask worker.

`run_trial(payload)` trains the trial's config as an ordinary tracked run and returns its outcome as plain
data (it crosses process and machine boundaries): `status` (FINISHED, FAILED or KILLED), `run_id`, `final`
(the metrics of the returned model), `stop_reason`, `epochs`, `seconds` (the wall time of the epochs, without
set-up and logging), `pruned_epoch` and `error`.

The run is the sweep's child from its first moment: its tags (`mlflow.parentRunId`, `backprop.trial_hash`,
...) go through `MLFLOW_RUN_CONTEXT`, which the tracking plugin adds to the run's tags when it creates the
run, so a trial killed at any point never leaves a run that its sweep cannot find. Callbacks registered for
the trial only:

- `TrialPruning` (when the sweep prunes): after each epoch, reports the ranking metric to the Optuna trial
  and asks the pruner; `should_stop` then ends training normally, with the reason "pruned at epoch N".
- `TrialCancellation` (Dask): when the sweep is interrupted it sets a Dask event; the trial sees it after
  an epoch and stops as KILLED (a Dask task cannot be interrupted from outside).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from framework.build import prepare_run
from framework.config import Experiment
from framework.markers import hookimpl

SINGLE_THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
RUN_CONTEXT = "MLFLOW_RUN_CONTEXT"
CANCEL_CHECK_S = 1.0  # how often a trial asks the Dask scheduler whether the sweep was interrupted

# The run-context variable is process-wide: trials sharing a process (a Dask worker with several threads) take
# turns from setting it until their run exists.
_CONTEXT_LOCK = threading.Lock()


class TrialCancelled(KeyboardInterrupt):
    """The sweep was interrupted: the trial ends as KILLED (a KeyboardInterrupt, which tracking records so)."""

    stop_reason = "interrupted: the sweep was stopped"
    """The run's `backprop.stop_reason` (instead of "interrupted: TrialCancelled")."""


def run_trial(payload: dict[str, Any]) -> dict[str, Any]:
    """Train one trial as a tracked child run of its sweep; never raises for a failed trial."""
    for name in SINGLE_THREAD_ENV:
        os.environ.setdefault(name, "1")
    os.environ["MLFLOW_TRACKING_URI"] = payload["tracking_uri"]
    _interrupt_on_sigterm()
    source = Path(payload["source"]) if payload.get("source") else None
    experiment = Experiment.from_dict(payload["config"], source=source)
    pruning = TrialPruning(payload["study"]) if payload.get("study") else None
    release, clock = _ContextRelease(), EpochClock()
    callbacks: list[object] = [release, clock]
    if pruning is not None:
        callbacks.append(pruning)
    if payload.get("cancel_event"):
        cancellation = TrialCancellation(payload["cancel_event"])
        if cancellation.requested():  # a trial the worker took up after the sweep was interrupted: no run at all
            return {"status": "KILLED", "run_id": None, "error": "not started: the sweep was interrupted"}
        callbacks.append(cancellation)
    run_id = None
    trainer = None
    try:
        where = {"backprop.host": socket.gethostname(), "backprop.pid": str(os.getpid())}  # which worker ran it
        with _one_blas_thread(), _run_context({**payload["tags"], **where}, release):
            run = prepare_run(experiment, callbacks, track=True)
            trainer = run.trainer
            try:
                result = trainer.fit()
            finally:
                run_id = trainer.run_id
                release.release()
        return {
            "status": "FINISHED",
            "run_id": result.run_id,
            "final": result.final_metrics,
            "stop_reason": result.stop_reason,
            "epochs": len(result.history.epochs),
            "seconds": clock.seconds,
            "pruned_epoch": pruning.pruned_epoch if pruning is not None else None,
        }
    except TrialCancelled:
        return {"status": "KILLED", "run_id": run_id, "error": "stopped: the sweep was interrupted"}
    except Exception as exc:
        return {"status": "FAILED", "run_id": run_id, "error": f"{type(exc).__name__}: {exc}"}


class _ContextRelease:
    """Releases the run-context lock as soon as the tracking plugin has created the run."""

    def __init__(self) -> None:
        self._release: Any = None

    def hold(self, release: Any) -> None:
        self._release = release

    def release(self) -> None:
        if self._release is not None:
            self._release, release = None, self._release
            release()

    # trylast: the tracking callback's before_fit (tryfirst) has created the run by now.
    @hookimpl(trylast=True)
    def before_fit(self) -> None:
        self.release()


@contextlib.contextmanager
def _run_context(tags: dict[str, str], release: _ContextRelease) -> Iterator[None]:
    """`MLFLOW_RUN_CONTEXT` with the trial's tags (beside any the user set) until the run exists."""
    _CONTEXT_LOCK.acquire()
    saved = os.environ.get(RUN_CONTEXT)
    try:
        extra = json.loads(saved) if saved else {}
    except ValueError:
        extra = {}
    os.environ[RUN_CONTEXT] = json.dumps({**(extra if isinstance(extra, dict) else {}), **tags})

    def restore() -> None:
        if saved is None:
            os.environ.pop(RUN_CONTEXT, None)
        else:
            os.environ[RUN_CONTEXT] = saved
        _CONTEXT_LOCK.release()

    release.hold(restore)
    try:
        yield
    finally:
        release.release()  # the run was never created (a bad config, an unreachable store)


class EpochClock:
    """Adds up the wall time of the epochs: what a pruned trial's remaining epochs would have cost."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0

    @hookimpl
    def before_epoch(self) -> None:
        self._start = time.perf_counter()

    # tryfirst: before the tracking callback's own after_epoch work, which is logging, not training.
    @hookimpl(tryfirst=True)
    def after_epoch(self) -> None:
        self.seconds += time.perf_counter() - self._start


class TrialPruning:
    """Reports the ranking metric to the trial's Optuna study after each epoch; stops the trial if pruned.

    The epoch (from 0) is Optuna's step, as it is MLflow's. A step already reported (a trial retried after
    its worker died) is not reported again, so the pruner keeps the first attempt's values.
    """

    def __init__(self, study: dict[str, Any]) -> None:
        self.study = study
        self.metric: str = study["metric"]
        self.pruned_epoch: int | None = None
        self._trial: Any = None
        self._storage: Any = None

    @hookimpl
    def before_fit(self) -> None:
        from framework.sweep_study import load_trial, make_pruner, open_storage, quiet_optuna

        quiet_optuna()
        pruner = make_pruner(self.study["pruner"], self.study.get("epochs"))
        self._storage = open_storage(self.study["storage"])
        self._trial = load_trial(self._storage, self.study["name"], self.study["trial_id"], pruner)

    @hookimpl
    def after_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        value = logs.get(self.metric)
        if self._trial is None or value is None or not math.isfinite(value):
            return  # a NaN is the trainer's to handle (its guard stops the run), not the pruner's
        reported = self._storage.get_trial(self.study["trial_id"]).intermediate_values
        if epoch not in reported:
            self._trial.report(float(value), epoch)
        if self._trial.should_prune():
            self.pruned_epoch = epoch

    @hookimpl
    def should_stop(self, epoch: int) -> str | None:
        return f"pruned at epoch {epoch + 1}" if self.pruned_epoch == epoch else None


class TrialCancellation:
    """Stops the trial as KILLED once the sweep's Dask event is set (checked at most every CANCEL_CHECK_S)."""

    def __init__(self, event: str) -> None:
        self.name = event
        self._event: Any = None
        self._checked = time.monotonic()

    @hookimpl
    def after_epoch(self) -> None:
        now = time.monotonic()
        if now - self._checked < CANCEL_CHECK_S:
            return
        self._checked = now
        if self.requested():
            raise TrialCancelled("the sweep was interrupted")

    def requested(self) -> bool:
        """Whether the sweep has set its stop event (one round trip to the scheduler)."""
        if self._event is None:
            from distributed import Event

            self._event = Event(self.name)  # type: ignore[no-untyped-call]
        return bool(self._event.is_set())


def warm_up(tracking_uri: str) -> None:
    """Import what every trial needs, in a worker, while the sweep is still planning."""
    import framework.build  # noqa: F401

    if not tracking_uri.startswith("sqlite:"):  # local stores are written without MLflow's client
        import mlflow  # noqa: F401


def _interrupt_on_sigterm() -> None:
    """A stopped sweep terminates its workers: end the trial's run as KILLED, not RUNNING forever."""
    import signal

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt("terminated by the sweep")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def _one_blas_thread() -> Any:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the environment variables set above still apply to fresh processes
        return contextlib.nullcontext()
    return threadpool_limits(1)
