"""Running a sweep: a parent MLflow run, one child run per trial, in parallel, resumable.

The parent process validates every trial first (so a bad grid value fails before anything runs), creates or
finds the sweep's parent run (tag `backprop.sweep_hash`), skips the trials whose child runs already
FINISHED (matched by `backprop.trial_hash`), and runs the rest on an executor:

- `local`: a process pool (spawned processes, one BLAS thread each), `workers` at a time;
- `dask`: the workers of a Dask distributed cluster (`--address tcp://HOST:PORT`).

Each trial is an ordinary tracked run (its `config.json` re-runs it with `backprop run`) with the tag
`mlflow.parentRunId`, so the MLflow UI folds the children under the parent. A failed trial is recorded as
FAILED and does not stop the sweep. At the end the parent holds the definition (`sweep.json`), the best
trial (tags `backprop.best.*`, metric `best_<metric>`) and a plot of the metric against each swept key.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framework.build import load_plugins, prepare_run, resolve
from framework.config import Experiment, SweepSection
from framework.errors import ConfigError, UserError, did_you_mean
from framework.markers import hookimpl
from framework.mlflow_store import open_client
from framework.sweep import Trial, config_hash, definition_hash, make_trials

log = logging.getLogger(__name__)

SINGLE_THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass
class SweepResult:
    parent_run_id: str
    trials: list[Trial]
    metric: str
    direction: str
    best: Trial | None
    skipped: int


def run_trial(payload: dict[str, Any]) -> dict[str, Any]:
    """Train one trial as a tracked child run (runs in a worker process, or on a Dask worker)."""
    for name in SINGLE_THREAD_ENV:
        os.environ.setdefault(name, "1")
    os.environ["MLFLOW_TRACKING_URI"] = payload["tracking_uri"]
    _interrupt_on_sigterm()
    source = Path(payload["source"]) if payload.get("source") else None
    experiment = Experiment.from_dict(payload["config"], source=source)
    started = time.perf_counter()
    run_id = None
    try:
        limits = _one_blas_thread()
        with limits:
            run = prepare_run(experiment, [_TrialTags(payload["tags"])], track=True)
            try:
                result = run.trainer.fit()
            finally:
                run_id = run.trainer.run_id
        return {
            "status": "FINISHED",
            "run_id": result.run_id,
            "final": result.final_metrics,
            "stop_reason": result.stop_reason,
            "seconds": time.perf_counter() - started,
        }
    except Exception as exc:
        return {"status": "FAILED", "run_id": run_id, "error": f"{type(exc).__name__}: {exc}"}


class _TrialTags:
    """Tags the trial's run as a child of the sweep, as soon as the tracking plugin has created it."""

    def __init__(self, tags: dict[str, str]) -> None:
        self.tags = tags

    @hookimpl
    def before_fit(self, trainer: Any) -> None:
        # The tracking callback's before_fit is tryfirst, so the run exists here.
        if trainer.run_id is None:
            return
        import mlflow
        from mlflow.entities import RunTag

        tags = [RunTag(k, v) for k, v in self.tags.items()]
        mlflow.MlflowClient().log_batch(trainer.run_id, tags=tags)


def _warm_up() -> None:
    """Import what every trial needs, in a worker, while the parent is still planning."""
    import mlflow  # noqa: F401

    import framework.build  # noqa: F401


def _interrupt_on_sigterm() -> None:
    """A stopped sweep terminates its workers: end the trial's run as KILLED, not RUNNING forever."""
    import signal
    import threading

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
        self.sweep = sweep
        self.workers = workers
        self.executor = executor
        self.address = address
        self.on_update = on_update or (lambda trials: None)

    # -- planning ------------------------------------------------------------------------------------------

    def plan(self) -> tuple[list[Trial], str]:
        """Every trial, validated and hashed, and the metric's direction (checked against a real run)."""
        _, registry = load_plugins(self.experiment)
        base = self.experiment.to_dict()
        trials = make_trials(base, self.sweep)
        for trial in trials:
            try:
                resolved = resolve(Experiment.from_dict(trial.config, source=self.experiment.source), registry)
            except UserError as exc:
                raise ConfigError(f"sweep trial {trial.index} ({trial.label}): {exc}") from None
            trial.config = resolved.to_dict()
            trial.config.pop("sweep", None)
            trial.hash = config_hash(trial.config)
        probe = prepare_run(Experiment.from_dict(trials[0].config, source=self.experiment.source), track=False)
        names = probe.trainer.metric_names
        metric = self.sweep.metric
        if metric not in names:
            hint = did_you_mean(metric, names)
            raise ConfigError(
                f"sweep metric {metric!r} is not computed by these trials. Available: {', '.join(names)}."
                + (f" Did you mean {hint!r}?" if hint else "")
            )
        declared = probe.trainer.metrics.get(metric.split("_", 1)[1])
        direction = declared.direction if declared is not None else "min"  # losses are minimised
        return trials, direction

    # -- running -------------------------------------------------------------------------------------------

    def run(self) -> SweepResult:
        # The workers start first: their imports (numpy, scikit-learn, MLflow: seconds) overlap the parent's
        # planning and store set-up instead of adding to it (benchmarks/bench_sweep.py).
        pool = self._start_pool() if self.executor == "local" else None
        try:
            return self._run(pool)
        finally:
            if pool is not None:
                # Idle workers exit on their own; the parent does not wait for their interpreters to end.
                pool.shutdown(wait=False, cancel_futures=True)

    def _start_pool(self) -> Any:
        import concurrent.futures as cf
        import multiprocessing

        # Spawned, not forked: the parent imports MLflow, which may hold threads and open connections.
        context = multiprocessing.get_context("spawn")
        with _single_thread_env():
            pool = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
            for _ in range(self.workers):
                pool.submit(_warm_up)  # one per worker: each process is spawned (and imports) now
        return pool

    def _run(self, pool: Any) -> SweepResult:
        import mlflow

        trials, direction = self.plan()
        uri = _absolute_tracking_uri(mlflow.get_tracking_uri())
        client = open_client(uri)  # creates the store's tables before any worker touches it
        parent = _ParentRun(client, self.experiment, self.sweep, uri)
        done = parent.finished_children()
        skipped = 0
        for trial in trials:
            if trial.hash in done:
                child = done[trial.hash]
                trial.status, trial.run_id = "finished", child["run_id"]
                trial.result = {"final": child["metrics"]}
                trial.metric = child["metrics"].get(self.sweep.metric)
                skipped += 1
        self.on_update(trials)
        pending = [t for t in trials if t.status == "queued"]
        status = "FINISHED"
        try:
            for trial, outcome in self._execute(pending, parent.run_id, uri, trials, pool):
                trial.run_id = outcome.get("run_id")
                if outcome["status"] == "FINISHED":
                    trial.status = "finished"
                    trial.result = outcome
                    trial.metric = outcome["final"].get(self.sweep.metric)
                else:
                    trial.status, trial.error = "failed", outcome.get("error")
                self.on_update(trials)
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        except BaseException:
            status = "FAILED"
            raise
        finally:
            best = _best(trials, direction)
            parent.finish(trials, best, self.sweep.metric, status)
        return SweepResult(parent.run_id, trials, self.sweep.metric, direction, best, skipped)

    def _payload(self, trial: Trial, parent_id: str, uri: str) -> dict[str, Any]:
        return {
            "config": trial.config,
            "source": str(self.experiment.source.resolve()) if self.experiment.source else None,
            "tracking_uri": uri,
            "tags": {
                "mlflow.parentRunId": parent_id,
                "backprop.trial_hash": trial.hash,
                "backprop.trial": str(trial.index),
            },
        }

    def _execute(
        self, pending: list[Trial], parent_id: str, uri: str, all_trials: list[Trial], pool: Any
    ) -> Iterator[tuple[Trial, dict[str, Any]]]:
        if not pending:
            return
        if self.executor == "dask":
            yield from self._execute_dask(pending, parent_id, uri, all_trials)
            return
        import concurrent.futures as cf

        with _single_thread_env():  # a worker that died is replaced on submit: it gets one BLAS thread too
            futures = {pool.submit(run_trial, self._payload(t, parent_id, uri)): t for t in pending}
            try:
                remaining = set(futures)
                while remaining:
                    finished, remaining = cf.wait(remaining, timeout=0.5, return_when=cf.FIRST_COMPLETED)
                    for future in futures:
                        trial = futures[future]
                        if trial.status == "queued" and future.running():
                            trial.status = "running"
                    for future in finished:
                        trial = futures[future]
                        try:
                            outcome = future.result()
                        except Exception as exc:  # the worker process died (killed, out of memory)
                            outcome = {"status": "FAILED", "error": f"{type(exc).__name__}: {exc}"}
                        yield trial, outcome
                    if not finished:
                        self.on_update(all_trials)
            except BaseException:
                for future in futures:
                    future.cancel()
                for process in list(getattr(pool, "_processes", {}).values()):
                    process.terminate()  # Ctrl-C: stop the running trials too (they end as KILLED/FAILED)
                raise

    def _execute_dask(
        self, pending: list[Trial], parent_id: str, uri: str, all_trials: list[Trial]
    ) -> Iterator[tuple[Trial, dict[str, Any]]]:
        try:
            from distributed import Client, as_completed
        except ImportError:
            raise UserError(
                "--executor dask needs dask.distributed: pip install 'backprop[dask]' (or 'dask[distributed]')"
            ) from None
        if uri.startswith("sqlite:"):
            log.warning("Dask workers log to %s: every worker must see this file (a tracking server is safer)", uri)
        try:
            client = Client(self.address, timeout=10)  # type: ignore[no-untyped-call]
        except OSError as exc:
            raise UserError(f"cannot reach the Dask scheduler at {self.address}: {exc}") from None
        with client:
            futures = {client.submit(run_trial, self._payload(t, parent_id, uri), pure=False): t for t in pending}
            for trial in pending:
                trial.status = "running"
            self.on_update(all_trials)
            try:
                for future in as_completed(list(futures)):  # type: ignore[no-untyped-call]
                    trial = futures[future]
                    try:
                        outcome = future.result()
                    except Exception as exc:
                        outcome = {"status": "FAILED", "error": f"{type(exc).__name__}: {exc}"}
                    yield trial, outcome
            except BaseException:
                client.cancel(list(futures))  # type: ignore[no-untyped-call]
                raise


@contextlib.contextmanager
def _single_thread_env() -> Iterator[None]:
    """One BLAS thread in every worker: N workers on N cores, not N x N threads fighting."""
    saved = {name: os.environ.get(name) for name in SINGLE_THREAD_ENV}
    os.environ.update({name: "1" for name in SINGLE_THREAD_ENV})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _absolute_tracking_uri(uri: str) -> str:
    """Workers may run elsewhere (another cwd, another process): give them an absolute store."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{Path(uri.removeprefix('sqlite:///')).resolve()}"
    return uri


def _best(trials: list[Trial], direction: str) -> Trial | None:
    scored = [t for t in trials if t.metric is not None and math.isfinite(t.metric)]
    if not scored:
        return None
    key: Callable[[Trial], float] = lambda t: t.metric if t.metric is not None else math.inf  # noqa: E731
    return min(scored, key=key) if direction == "min" else max(scored, key=key)


class _ParentRun:
    """The sweep's parent run: found again by the definition's hash, so a re-run resumes it."""

    def __init__(self, client: Any, experiment: Experiment, sweep: SweepSection, uri: str) -> None:
        from mlflow.entities import Param

        self.client = client
        name = experiment.tracking.experiment or experiment.name
        found = client.get_experiment_by_name(name)
        self.experiment_id = found.experiment_id if found is not None else client.create_experiment(name)
        self.hash = definition_hash(experiment.to_dict(), sweep)
        runs = client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`backprop.sweep_hash` = '{self.hash}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if runs:
            self.run_id = runs[0].info.run_id
            client.update_run(self.run_id, status="RUNNING")
            self.resumed = True
            return
        self.resumed = False
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run = client.create_run(
            self.experiment_id,
            run_name=f"{experiment.name}-sweep-{stamp}",
            tags={"backprop.sweep_hash": self.hash, "backprop.sweep": "parent", "backprop.seed": str(sweep.seed)},
        )
        self.run_id = run.info.run_id
        definition = sweep.model_dump()
        params = [Param(f"sweep.grid.{k}", json.dumps(v)[:6000]) for k, v in sweep.grid.items()]
        params += [Param(f"sweep.param.{k}", v[:6000]) for k, v in sweep.params.items()]
        params += [Param("sweep.trials", str(sweep.trials)), Param("sweep.seed", str(sweep.seed))]
        for i in range(0, len(params), 100):
            client.log_batch(self.run_id, params=params[i : i + 100])
        client.log_dict(self.run_id, {"base": experiment.to_dict(), "sweep": definition}, "sweep.json")

    def finished_children(self) -> dict[str, dict[str, Any]]:
        if not self.resumed:
            return {}
        children = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{self.run_id}' and attributes.status = 'FINISHED'",
            max_results=10000,
        )
        return {
            run.data.tags["backprop.trial_hash"]: {"run_id": run.info.run_id, "metrics": dict(run.data.metrics)}
            for run in children
            if "backprop.trial_hash" in run.data.tags
        }

    def finish(self, trials: list[Trial], best: Trial | None, metric: str, status: str) -> None:
        try:
            finished = sum(t.status == "finished" for t in trials)
            failed = sum(t.status == "failed" for t in trials)
            tags = {"backprop.trials_finished": str(finished), "backprop.trials_failed": str(failed)}
            if best is not None and best.metric is not None:
                tags["backprop.best_run_id"] = best.run_id or ""
                tags.update({f"backprop.best.{k}": str(v) for k, v in best.overrides.items()})
                self.client.log_metric(self.run_id, f"best_{metric}", best.metric, step=finished)
            for key, value in tags.items():
                self.client.set_tag(self.run_id, key, value)
            self._plot(trials, metric)
        except Exception as exc:  # the summary is a convenience; never lose the status because of it
            log.warning("could not log the sweep summary: %s", exc)
        finally:
            self.client.set_terminated(self.run_id, status)

    def _plot(self, trials: list[Trial], metric: str) -> None:
        scored = [t for t in trials if t.metric is not None and math.isfinite(t.metric)]
        keys = sorted({k for t in trials for k in t.overrides})
        if not scored or not keys:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
        for ax, key in zip(axes[0], keys, strict=True):
            values: list[Any] = [t.overrides.get(key) for t in scored]
            numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
            numeric = len(numbers) == len(values)
            ax.scatter(numbers if numeric else [str(v) for v in values], [t.metric for t in scored])
            if numeric and min(numbers) > 0 and max(numbers) / min(numbers) > 100:
                ax.set_xscale("log")
            ax.set_xlabel(key)
            ax.set_ylabel(metric)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        self.client.log_figure(self.run_id, fig, "sweep.png")
        plt.close(fig)
