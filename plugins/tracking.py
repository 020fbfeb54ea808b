"""MLflow tracking: one MLflow run per training run, finished, failed and interrupted runs included.

The built-in `mlflow` callback, created by `framework.build` when tracking is on (`[tracking]` section,
`--no-track`). It logs the resolved config as params and as `config.json` (runnable again with
`backprop run config.json`), the per-epoch metrics, tags (seed, versions, plugins, command line, stop
reason, error) and `history.csv`, and ends the run with the status that matches how training ended.

The store is `MLFLOW_TRACKING_URI`, or MLflow's own default (`sqlite:///mlflow.db` in the current directory,
artifacts in `./mlruns`). Facts behind the choices below are in `research/mlflow.md` (MLflow 3.17).
"""

from __future__ import annotations

import logging
import os
import platform
import queue
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

import framework
from framework import Callback, FitResult, Params, Trainer, hookimpl
from framework.errors import UserError

log = logging.getLogger(__name__)

# Server-enforced limits of one log_batch request (research/mlflow.md §3: 1001 metrics or 101 params -> 400).
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
# Longer param values are cut by MLflow with a warning (§3); tags are limited to 8000 characters.
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000
MAX_ERROR_LENGTH = 1000
# A down server makes the client retry for about 4 minutes (§4), so ask it first with a short timeout.
REACHABILITY_TIMEOUT_S = 5.0

Point = tuple[str, float, int, int]  # key, value, timestamp (ms), step


class MlflowTrackingParams(Params):
    experiment: str | None = Field(None, description="MLflow experiment name (default: the experiment's name).")
    run_name: str | None = Field(None, description="MLflow run name (default: generated).")


class MlflowTracking(Callback):
    """Logs the run to MLflow: config as params and config.json, per-epoch metrics, tags, history.csv.

    Metrics are sent in batches from a background thread, so the training loop never waits on the store.
    The run always ends with a status: FINISHED, FAILED (with a `backprop.error` tag) or KILLED (Ctrl-C).
    """

    name: ClassVar[str] = "mlflow"
    Params: ClassVar[type[Params]] = MlflowTrackingParams
    params: MlflowTrackingParams

    run_id: str | None = None  # the MLflow run, while it is open
    _client: Any = None
    _sender: _MetricSender | None = None

    # tryfirst: other callbacks' before_fit already see `trainer.run_id`.
    @hookimpl(tryfirst=True)
    def before_fit(self, trainer: Trainer) -> None:
        import mlflow  # 1.2 s: only when tracking is on (research/mlflow.md §1)

        uri = mlflow.get_tracking_uri()
        _check_reachable(uri)
        # MlflowClient, not the fluent API: no process-global active run, so runs (and threads) never mix.
        client = self._client = mlflow.MlflowClient()
        experiment = trainer.experiment
        experiment_id = _experiment_id(client, self.params.experiment or experiment.name)
        run_name = self.params.run_name or _default_run_name(trainer)
        run = client.create_run(experiment_id, run_name=run_name, tags=_tags(trainer))
        self.run_id = trainer.run_id = run.info.run_id
        log.info("MLflow run %s (%s) in experiment %s at %s", self.run_id, run_name, experiment_id, uri)

        from mlflow.entities import Param

        params = [Param(k, _cut(str(v), MAX_PARAM_LENGTH)) for k, v in experiment.flat().items()]
        for i in range(0, len(params), MAX_PARAMS_PER_BATCH):
            client.log_batch(self.run_id, params=params[i : i + MAX_PARAMS_PER_BATCH])
        client.log_dict(self.run_id, experiment.to_dict(), "config.json")
        self._sender = _MetricSender(client, self.run_id)

    # tryfirst: the epoch's metrics are logged even if another callback's after_epoch then fails.
    @hookimpl(tryfirst=True)
    def after_epoch(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if self._sender is None:
            return
        now = int(time.time() * 1000)
        points = [(key, float(value), now, epoch) for key, value in logs.items()]
        if "lr" not in logs:  # a schedule plugin may already have put the current rate into the logs
            points.append(("lr", trainer.optimizer.lr, now, epoch))
        self._sender.put(points)  # one put per epoch: the store is never touched on this thread

    # trylast: end the run after every other after_fit (early stopping restores weights there, and one of
    # them failing must turn the run into FAILED rather than find it already FINISHED).
    @hookimpl(trylast=True)
    def after_fit(self, trainer: Trainer, result: FitResult) -> None:
        self._end(trainer, "FINISHED", result.stop_reason)

    @hookimpl(trylast=True)
    def on_fit_error(self, trainer: Trainer, error: BaseException) -> None:
        status = _status_of(error)
        tags = {}
        if status == "FAILED":
            tags["backprop.error"] = _cut(f"{type(error).__name__}: {error}", MAX_ERROR_LENGTH)
            reason = f"error: {type(error).__name__}"
        else:
            reason = f"interrupted: {type(error).__name__}"
        self._end(trainer, status, trainer.stop_reason or reason, tags)

    def _end(self, trainer: Trainer, status: str, stop_reason: str, tags: dict[str, str] | None = None) -> None:
        """Flush the metrics, log the last tags and history.csv, and set the status, whatever fails."""
        run_id, client, sender = self.run_id, self._client, self._sender
        if run_id is None:  # before_fit never created a run, or the run has already ended
            return
        self.run_id, self._sender = None, None
        try:
            if sender is not None:
                sender.close()
                if sender.failed_points:
                    log.warning(
                        "MLflow: %d metric values of run %s could not be logged: %s",
                        sender.failed_points,
                        run_id,
                        sender.error,
                    )
            from mlflow.entities import RunTag

            all_tags = {"backprop.stop_reason": stop_reason, **(tags or {})}
            client.log_batch(run_id, tags=[RunTag(k, _cut(v, MAX_TAG_LENGTH)) for k, v in all_tags.items()])
            client.log_text(run_id, trainer.history.to_csv(), "history.csv")
        except Exception as exc:  # the training itself is done: report, do not throw its result away
            log.warning("MLflow: finishing run %s failed: %s: %s", run_id, type(exc).__name__, exc)
        finally:
            # Always set the status ourselves: nothing else will (an uncaught error would otherwise leave
            # the run RUNNING, or FINISHED at exit; research/mlflow.md §6).
            with _url_printing_suppressed():
                client.set_terminated(run_id, status)


class _MetricSender:
    """Sends metric points to MLflow from a daemon thread, merging whatever has queued up into one batch.

    `log_batch` costs about 0.1 ms per point but a whole sqlite commit (3-5 ms) or HTTP request (12-60 ms)
    per call (research/mlflow.md §3), so the training thread only queues points and this thread pays.
    """

    def __init__(self, client: Any, run_id: str) -> None:
        self._client = client
        self._run_id = run_id
        self._queue: queue.SimpleQueue[list[Point] | None] = queue.SimpleQueue()
        self.failed_points = 0
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name=f"backprop-mlflow-{run_id}", daemon=True)
        self._thread.start()

    def put(self, points: list[Point]) -> None:
        self._queue.put(points)

    def close(self) -> None:
        """Send everything queued so far and stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch: list[Point] = []
            while item is not None:
                batch.extend(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            self._send(batch)
            if item is None:
                return

    def _send(self, points: list[Point]) -> None:
        from mlflow.entities import Metric

        metrics = [Metric(key, value, timestamp, step) for key, value, timestamp, step in points]
        for i in range(0, len(metrics), MAX_METRICS_PER_BATCH):
            chunk = metrics[i : i + MAX_METRICS_PER_BATCH]
            try:
                self._client.log_batch(self._run_id, metrics=chunk)
            except Exception as exc:  # keep training; the loss is reported when the run ends
                self.failed_points += len(chunk)
                if self.error is None:
                    self.error = exc
                    log.warning("MLflow: logging metrics of run %s failed: %s", self._run_id, exc)


def _experiment_id(client: Any, name: str) -> str:
    """The id of the MLflow experiment `name`, created if it does not exist yet."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return str(client.create_experiment(name))
        except MlflowException:
            found = client.get_experiment_by_name(name)  # created meanwhile by a parallel run
            if found is None:
                raise
    if found.lifecycle_stage == "deleted":
        raise UserError(
            f"tracking.experiment: MLflow experiment {name!r} is deleted; restore it "
            f"(mlflow experiments restore --experiment-id {found.experiment_id}) or choose another name"
        )
    return str(found.experiment_id)


def _default_run_name(trainer: Trainer) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{trainer.experiment.name}-{trainer.optimizer.name}-lr{trainer.optimizer.lr:g}-{stamp}"


def _tags(trainer: Trainer) -> dict[str, str]:
    """The run's tags at creation: MLflow's own context tags (user, source, git commit) and backprop's."""
    from mlflow.tracking.context.registry import resolve_tags

    # Plugins of the run's manager; per-run callback objects (registered as "run-callback-...") are not.
    plugins = [
        f"{name}=={info.version}" if info.version else name
        for name, info in trainer.host.infos.items()
        if info.status == "active" and not name.startswith("run-callback-")
    ]
    tags = {
        "backprop.seed": str(trainer.experiment.seed),
        "backprop.version": framework.__version__,
        "backprop.numpy_version": np.__version__,
        "backprop.python_version": platform.python_version(),
        "backprop.plugins": ", ".join(plugins),
        "backprop.command": " ".join(sys.argv),
    }
    # The fluent start_run() adds these; MlflowClient.create_run does not.
    return {k: _cut(str(v), MAX_TAG_LENGTH) for k, v in resolve_tags(tags).items()}


def _status_of(error: BaseException) -> str:
    """KILLED for an interruption (Ctrl-C, or SystemExit with a shell signal code 128+n), else FAILED."""
    if isinstance(error, KeyboardInterrupt):
        return "KILLED"
    if isinstance(error, SystemExit) and isinstance(error.code, int) and error.code > 128:
        return "KILLED"
    return "FAILED"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_reachable(uri: str) -> None:
    """Fail fast when an HTTP tracking server does not answer (else the client retries ~4 min, §4)."""
    if not uri.startswith(("http://", "https://")):
        return
    import ssl
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=REACHABILITY_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return  # it answered (auth, proxies, no /health): reachable
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLError):
            return  # it answered; certificate settings are MLflow's business (MLFLOW_TRACKING_INSECURE_TLS)
        raise UserError(
            f"MLflow tracking server {uri} is not reachable ({exc.reason}); start it, fix "
            "MLFLOW_TRACKING_URI, or train without tracking (--no-track)"
        ) from None
    except (TimeoutError, OSError) as exc:
        raise UserError(
            f"MLflow tracking server {uri} did not answer within {REACHABILITY_TIMEOUT_S:g} s ({exc}); start "
            "it, fix MLFLOW_TRACKING_URI, or train without tracking (--no-track)"
        ) from None


@contextmanager
def _url_printing_suppressed() -> Iterator[None]:
    """Stop `set_terminated` writing "View run ... at: <url>" to stdout (HTTP stores; research §4).

    MlflowClient reads MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT on each call, so setting it only around the
    call leaves the user's own MLflow use as it was; an explicit user setting wins.
    """
    key = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"
    if key in os.environ:
        yield
        return
    os.environ[key] = "true"
    try:
        yield
    finally:
        os.environ.pop(key, None)


@hookimpl
def register_callbacks() -> list[type[Callback]]:
    return [MlflowTracking]
