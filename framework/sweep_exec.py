"""Where a sweep's trials run: a pool of local processes, or the workers of a Dask distributed cluster.

Both executors take one trial at a time (`submit`) and hand back outcomes as trials end (`poll`), so a sweep
can keep as many trials in flight as there are workers and ask a sampler that learns for the next trial
only once a worker is free. `interrupt()` stops the running trials so that their runs end as KILLED:

- local: the pool's processes are terminated; each ends its run as KILLED on SIGTERM;
- Dask: a running task cannot be stopped from outside, so the sweep sets a Dask event that every trial
  checks after each epoch (`framework.sweep_trial.TrialCancellation`), then waits a little for them.

A Dask worker that dies mid-trial is Dask's to handle: the scheduler runs the task again on another worker
(up to `distributed.scheduler.allowed-failures` times). The run the dead worker left RUNNING is ended by
the sweep (`framework.sweep_parent`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

from framework.errors import UserError
from framework.sweep import Trial
from framework.sweep_trial import SINGLE_THREAD_ENV, run_trial, warm_up

log = logging.getLogger(__name__)

INTERRUPT_GRACE_S = 30.0
"""How long an interrupted Dask sweep waits for its running trials to notice the event and end as KILLED."""


def _failure(exc: BaseException) -> dict[str, Any]:
    return {"status": "FAILED", "error": f"{type(exc).__name__}: {exc}"}


class LocalExecutor:
    """A pool of spawned processes, `workers` at a time, each with one BLAS thread."""

    def __init__(self, workers: int, tracking_uri: str) -> None:
        import concurrent.futures as cf
        import multiprocessing

        self.workers = workers
        # Spawned, not forked: the parent imports MLflow, which may hold threads and open connections.
        context = multiprocessing.get_context("spawn")
        with single_thread_env():
            self.pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=context)
            for _ in range(workers):
                # One per worker: each process is spawned, and imports, now, while the sweep still plans.
                self.pool.submit(warm_up, tracking_uri)
        self.futures: dict[Any, Trial] = {}

    @property
    def capacity(self) -> int:
        return self.workers

    @property
    def in_flight(self) -> int:
        return len(self.futures)

    def submit(self, trial: Trial, payload: dict[str, Any]) -> None:
        with single_thread_env():  # a worker that died is replaced on submit: it gets one BLAS thread too
            self.futures[self.pool.submit(run_trial, payload)] = trial

    def poll(self, timeout: float) -> list[tuple[Trial, dict[str, Any]]]:
        import concurrent.futures as cf

        if not self.futures:
            return []
        finished, _ = cf.wait(list(self.futures), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        for future, trial in self.futures.items():
            if trial.status == "queued" and future.running():
                trial.status = "running"
        done = []
        for future in finished:
            trial = self.futures.pop(future)
            try:
                done.append((trial, future.result()))
            except Exception as exc:  # the worker process died (killed, out of memory)
                done.append((trial, _failure(exc)))
        return done

    def interrupt(self) -> list[tuple[Trial, dict[str, Any]]]:
        for future in self.futures:
            future.cancel()
        for process in list(getattr(self.pool, "_processes", {}).values()):
            process.terminate()  # Ctrl-C: stop the running trials too (they end as KILLED)
        self.futures.clear()
        return []

    def close(self) -> None:
        # Idle workers exit on their own; the sweep does not wait for their interpreters to end.
        self.pool.shutdown(wait=False, cancel_futures=True)


class DaskExecutor:
    """The workers of the Dask cluster whose scheduler is at `address`; one trial per worker thread."""

    def __init__(self, address: str, tracking_uri: str) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise UserError(
                "--executor dask needs dask.distributed: pip install 'backprop[dask]' (or 'dask[distributed]')"
            ) from None
        if tracking_uri.startswith("sqlite:"):
            log.warning(
                "Dask workers log to %s: every worker must see this file (a tracking server is safer)", tracking_uri
            )
        try:
            self.client = Client(address, timeout=10)  # type: ignore[no-untyped-call]
        except (OSError, TimeoutError) as exc:
            raise UserError(
                f"cannot reach the Dask scheduler at {address}: {exc}; help: start it (dask scheduler) or fix --address"
            ) from None
        self.address = address
        self.event = f"backprop-sweep-stop-{uuid.uuid4().hex}"
        self.futures: dict[Any, Trial] = {}
        # Each worker imports what a trial needs now, while the sweep opens its store and plans: one small task
        # per worker, queued before any trial (held here until the sweep ends; any worker may run one that
        # lost its own).
        workers = self.client.scheduler_info().get("workers", {})
        self.warming = [
            self.client.submit(warm_up, tracking_uri, workers=[w], allow_other_workers=True, pure=False)
            for w in workers
        ]

    @property
    def capacity(self) -> int:
        threads = sum(self.client.nthreads().values())  # type: ignore[no-untyped-call]
        return max(1, threads)

    @property
    def in_flight(self) -> int:
        return len(self.futures)

    def submit(self, trial: Trial, payload: dict[str, Any]) -> None:
        future = self.client.submit(run_trial, {**payload, "cancel_event": self.event}, pure=False)
        self.futures[future] = trial

    def poll(self, timeout: float) -> list[tuple[Trial, dict[str, Any]]]:
        from distributed import wait

        if not self.futures:
            return []
        with contextlib.suppress(TimeoutError):
            wait(list(self.futures), timeout=timeout, return_when="FIRST_COMPLETED")  # type: ignore[no-untyped-call]
        processing = {key for keys in self.client.processing().values() for key in keys}  # type: ignore[no-untyped-call]
        for future, trial in self.futures.items():
            if trial.status == "queued" and future.key in processing:
                trial.status = "running"
        return self._collect()

    def _collect(self) -> list[tuple[Trial, dict[str, Any]]]:
        done = []
        for future in [f for f in self.futures if f.done()]:
            trial = self.futures.pop(future)
            try:
                done.append((trial, future.result()))
            except Exception as exc:  # KilledWorker: the task's workers died too often
                done.append((trial, _failure(exc)))
        return done

    def interrupt(self) -> list[tuple[Trial, dict[str, Any]]]:
        """Tell the running trials to stop, wait for them a little, cancel the rest."""
        from distributed import Event

        Event(self.event, client=self.client).set()  # type: ignore[no-untyped-call]
        queued = [f for f, t in self.futures.items() if t.status == "queued"]
        self.client.cancel(queued)  # type: ignore[no-untyped-call]
        for future in queued:
            self.futures.pop(future, None)
        done: list[tuple[Trial, dict[str, Any]]] = []
        deadline = time.monotonic() + INTERRUPT_GRACE_S
        while self.futures and time.monotonic() < deadline:
            done += self.poll(0.5)
        if self.futures:
            log.warning(
                "%d trials did not stop in %.0f s; their runs are marked KILLED", len(self.futures), INTERRUPT_GRACE_S
            )
            self.client.cancel(list(self.futures))  # type: ignore[no-untyped-call]
            self.futures.clear()
        return done

    def close(self) -> None:
        self.client.close()  # type: ignore[no-untyped-call]


@contextlib.contextmanager
def single_thread_env() -> Iterator[None]:
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
