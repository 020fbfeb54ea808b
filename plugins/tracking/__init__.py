"""MLflow tracking: one MLflow run per training run, finished, failed and interrupted runs included.

The built-in `mlflow` callback, created by `framework.build` when tracking is on (`[tracking]` section,
`--no-track`). It logs the resolved config as params and as `config.json` (runnable again with
`backprop run config.json`), the training data as the run's input, the per-epoch metrics (and the batch loss
every `tracking.log_every_n_steps` steps), tags (seed, git commit, versions, plugins, command line, stop
reason, best epoch, error), `history.csv`, `training_curves.png` and the model as a pickle-free pyfunc
model, and ends the run with the status that matches how training ended.

The store is `MLFLOW_TRACKING_URI`, or MLflow's own default (`sqlite:///mlflow.db` in the current directory,
artifacts in `./mlruns`). If an HTTP server goes away during training, training goes on; what could not be
sent is saved under `./backprop-unsent/<run_id>/`. Facts behind the choices are in `research/mlflow.md`.

Module layout: `context` (tags, git, server checks), `sender` (the metric thread, the batch losses),
`artifacts` (curves, model, dataset, the local spool), `backprop_pyfunc` (the model's loader, shipped with it).
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from framework import Callback, FitResult, Params, Trainer, diagnostics, hookimpl, ownership
from framework.errors import UserError
from framework.mlflow_store import run_link, tracking_uri
from plugins import painter
from plugins.tracking import artifacts, backfill
from plugins.tracking.context import (
    HTTP_CLIENT_SETTINGS,
    MAX_TAG_LENGTH,
    EnvSettings,
    check_reachable,
    cut,
    default_run_name,
    is_http,
    run_tags,
    status_of,
)
from plugins.tracking.description import (
    CUSTOM_MODEL,
    EXPERIMENT_KIND,
    NOTE,
    experiment_note,
    reproduce_command,
    run_description,
)
from plugins.tracking.gradients import MAX_LAYERS as MAX_GRADIENT_LAYERS
from plugins.tracking.gradients import GradientStats
from plugins.tracking.sender import MetricSender, StepLosses
from plugins.tracking.stores import CREATED_BY, TrackingStore, open_store
from plugins.tracking.writer import Point

log = logging.getLogger(__name__)

# Server-enforced limits (mlflow/utils/validation.py; research/mlflow.md §3).
DIAGNOSTICS = "diagnostics"  # the artifact folder of the pictures that explain a run
GRADIENT_FLOW_PNG = "gradient_flow.png"
EXPERIMENT_FILES = "backprop.experiment_files"  # the files whose runs a backprop-made experiment holds (JSON)
EPOCH_SECONDS = "system/epoch_seconds"  # each epoch's wall time, in the "system" section of MLflow's charts
MAX_PARAM_LENGTH = 6000  # longer values: cut here, whole in config.json
MAX_KEY_LENGTH = 250
MAX_ERROR_LENGTH = 1000
_VALID_KEY = re.compile(r"^[\w./ -]+$")  # what MLflow accepts in a param key
WRITER_AFTER_S = 2.0
"""A run expected to train longer than this after its first epoch starts the metric writer process at once
(a local store): it is then ready by the time the metrics pile up. Others start it only if they last."""


class MlflowTrackingParams(Params):
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


class MlflowTracking(Callback):
    """Logs the run to MLflow and always ends it: FINISHED, FAILED (`backprop.error` tag) or KILLED.

    Metrics are sent in batches from a background thread, so the training loop never waits on the store.
    A resumed run continues its MLflow run: when `trainer.resume_run_id` is set before `before_fit` (by
    `--resume`), that run is reopened instead of a new one being created.
    """

    name: ClassVar[str] = "mlflow"
    Params: ClassVar[type[Params]] = MlflowTrackingParams
    params: MlflowTrackingParams

    run_id: str | None = None  # the MLflow run, while it is open
    unsent_dir: Path | None = None  # where what could not be sent was saved, if anything
    _store: TrackingStore | None = None
    _sender: MetricSender | None = None
    _steps: StepLosses | None = None
    _epoch_end_ms = 0  # when the previous epoch ended: the batch losses' timestamps run from here
    _model_epoch: int | None = None  # the epoch whose weights the finished run's model holds
    _env: EnvSettings | None = None
    _gradients: GradientStats | None = None
    _reproduce: str | None = None
    _heartbeat: ownership.Heartbeat | None = None
    _logged_through = -1  # a resumed run: the last epoch the store holds already

    def warm_up(self) -> None:
        painter.warm()  # matplotlib imported on the other core while the run loads, builds and trains

    # tryfirst: other callbacks' before_fit already see `trainer.run_id`.
    @hookimpl(tryfirst=True)
    def before_fit(self, trainer: Trainer) -> None:
        painter.warm()  # already started by warm_up when the run was built (plugins/painter.py)
        uri = tracking_uri()
        check_reachable(uri)
        if is_http(uri):
            self._env = EnvSettings(HTTP_CLIENT_SETTINGS)
        experiment = trainer.experiment
        # A local SQLite store of a known schema is written directly (milliseconds); any other through
        # MlflowClient (seconds to import), created or migrated under a file lock (framework.mlflow_store).
        store = self._store = open_store(uri, self.params.experiment or experiment.name)
        resume_id = getattr(trainer, "resume_run_id", None)
        if resume_id:
            existing = store.reopen_run(resume_id)
            run_id = resume_id
        else:
            run_name = self.params.run_name or default_run_name(trainer)
            run_id = store.create_run(run_name, {**run_tags(trainer), **ownership.owner_tags()})
            existing = {}
        self.run_id = trainer.run_id = run_id
        self._heartbeat = ownership.claim(store, run_id, tagged=not resume_id)  # who owns it; alive (issue 19)
        ownership.warn_if_stale(store)
        trainer.run_link = run_link(uri, store.experiment_id(), run_id)  # type: ignore[attr-defined]
        log.info("MLflow run %s at %s", run_id, uri)
        self._log_params(store, run_id, experiment.flat(), existing)
        try:
            store.log_dict(run_id, experiment.to_dict(), "config.json")
        except OSError as exc:  # checked before training: an unwritable artifact store is found in seconds
            self.run_id = None
            self._heartbeat.stop()
            store.set_tags(run_id, {"backprop.error": cut(f"{type(exc).__name__}: {exc}", MAX_ERROR_LENGTH)})
            store.end_run(run_id, "FAILED")
            where = store.artifact_uri(run_id)
            raise UserError(
                f"MLflow cannot store the artifacts of run {run_id} in {where} ({type(exc).__name__}: {exc}); "
                "help: fix that directory (or the store's artifact location), or train without tracking (--no-track)"
            ) from None
        if not resume_id:
            try:
                store.log_dataset(run_id, trainer)
            except Exception as exc:  # the data's description is not worth a run
                log.warning("MLflow: logging the training data of run %s failed: %s", run_id, exc)
        self._sender = MetricSender(store, run_id, offload=not is_http(uri))
        if resume_id:  # the epochs a killed run trained but never logged, or logged beyond its checkpoint
            self._logged_through = backfill.backfill(self._sender, store, run_id, trainer.history)
        every = self.params.log_every_n_steps
        self._steps = StepLosses(every, trainer) if every is not None else None
        self._epoch_end_ms = int(time.time() * 1000)
        self._fit_started = time.monotonic()
        self._epoch_ms: dict[int, int] = {}  # each epoch's timestamp: the model's metrics reuse them
        try:  # the description says how to run it again; the experiment's, which files feed it
            registry = getattr(trainer, "registry", None)
            self._reproduce = reproduce_command(trainer, registry) if registry is not None else None
            self._describe_experiment(store, trainer)
            store.set_tags(run_id, {NOTE: self._description(trainer, "RUNNING", "training", None)})
        except Exception as exc:  # a description is not worth a run
            log.warning("MLflow: describing run %s failed: %s", run_id, exc)
        layers = sum(1 for layer in trainer.model.layers if layer.parameters())
        if self.params.gradient_stats and 0 < layers <= MAX_GRADIENT_LAYERS:
            self._gradients = GradientStats(trainer.model)

    @staticmethod
    def _log_params(store: TrackingStore, run_id: str, flat: dict[str, Any], existing: dict[str, str]) -> None:
        """The flat config as params, within MLflow's limits; never an error for a long value or key.

        A value over MAX_PARAM_LENGTH is cut (and named in the `backprop.truncated_params` tag), a key MLflow
        refuses is left out (`backprop.skipped_params`); both are whole in `config.json`. A resumed run keeps
        its params (MLflow's are immutable); changed ones are named in `backprop.resume_changed_params`.
        """
        params: dict[str, str] = {}
        truncated, skipped, changed = [], [], []
        for key, value in flat.items():
            text = str(value)
            if len(key) > MAX_KEY_LENGTH or not _VALID_KEY.match(key):
                skipped.append(key)
                continue
            if len(text) > MAX_PARAM_LENGTH:
                truncated.append(key)
                text = cut(text, MAX_PARAM_LENGTH)
            if key in existing:
                if existing[key] != text:
                    changed.append(key)
                continue
            params[key] = text
        if params:
            store.log_params(run_id, params)
        notes = {
            "backprop.truncated_params": truncated,
            "backprop.skipped_params": skipped,
            "backprop.resume_changed_params": changed,
        }
        tags = {k: cut(", ".join(v), MAX_TAG_LENGTH) for k, v in notes.items() if v}
        if tags:
            store.set_tags(run_id, tags)

    # tryfirst: the epoch's metrics are logged even if another callback's after_epoch then fails.
    @hookimpl(tryfirst=True)
    def after_epoch(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if self._sender is None or epoch <= self._logged_through:
            return
        now = int(time.time() * 1000)
        points = [(key, float(value), now, epoch) for key, value in logs.items()]
        if "lr" not in logs:  # a schedule plugin may already have put the current rate into the logs
            points.append(("lr", trainer.optimizer.lr, now, epoch))
        series = self._steps.collect(trainer, self._epoch_end_ms, now) if self._steps is not None else None
        points.append((EPOCH_SECONDS, (now - self._epoch_end_ms) / 1000, now, epoch))
        if self._gradients is not None:
            points += [(key, value, now, epoch) for key, value in self._gradients.epoch_points().items()]
        self._epoch_end_ms = self._epoch_ms[epoch] = now
        self._sender.put(points, series)
        if epoch == trainer.start_epoch:  # the first epoch tells how long the run will be
            remaining = (time.monotonic() - self._fit_started) * (trainer.epochs - epoch - 1)
            if remaining > WRITER_AFTER_S:
                self._sender.start_writer()  # one put per epoch: the store is never touched on this thread

    # trylast: end the run after every other after_fit (early stopping restores weights there, and one of
    # them failing must turn the run into FAILED rather than find it already FINISHED).
    @hookimpl(trylast=True)
    def after_fit(self, trainer: Trainer, result: FitResult) -> None:
        best = artifacts.best_epoch(trainer, result.restored_epoch)
        epochs = trainer.history.epochs
        # The epoch whose weights the returned model holds: the restored one, else the last.
        self._model_epoch = result.restored_epoch if result.restored_epoch is not None else (epochs or [None])[-1]
        self._end(trainer, "FINISHED", result.stop_reason, best_epoch=best)

    @hookimpl(trylast=True)
    def on_fit_error(self, trainer: Trainer, error: BaseException) -> None:
        status = status_of(error)
        tags = {}
        if status == "FAILED":
            tags["backprop.error"] = cut(f"{type(error).__name__}: {error}", MAX_ERROR_LENGTH)
            reason = f"error: {type(error).__name__}"
        else:
            # An interruption may say what it was (a sweep's cancelled trial); otherwise its type says it.
            reason = getattr(error, "stop_reason", None) or f"interrupted: {type(error).__name__}"
        self._end(trainer, status, trainer.stop_reason or reason, tags, artifacts.best_epoch(trainer, None), error)

    def _end(
        self,
        trainer: Trainer,
        status: str,
        stop_reason: str,
        tags: dict[str, str] | None = None,
        best_epoch: int | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Flush metrics, log the last tags and artifacts, set the status; save locally what cannot be sent."""
        run_id, store, sender = self.run_id, self._store, self._sender
        assert store is not None
        if run_id is None:  # before_fit never created a run, or the run has already ended
            return
        self.run_id, self._sender = None, None
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        all_tags = {"backprop.stop_reason": stop_reason, **(tags or {})}
        if best_epoch is not None:
            all_tags["backprop.best_epoch"] = str(best_epoch)
        unsent: list[Point] = []
        reachable = True
        try:
            if self._steps is not None and sender is not None:
                try:  # the batch losses of an epoch cut short
                    sender.put([], self._steps.collect(trainer, self._epoch_end_ms, int(time.time() * 1000)))
                except Exception as exc:
                    log.warning("MLflow: batch losses of the last epoch were not computed: %s", exc)
            unsent = sender.close() if sender is not None else []
            online = sender is None or sender.error is None or self._server_answers(store)
            if online and unsent:
                store.point_writer(run_id).write(unsent)  # the server is back: send what waited
                unsent = []
            if online:
                self._log_end(store, trainer, run_id, status, all_tags)
        except Exception as exc:
            reachable = self._server_answers(store)
            # The training itself is done: whatever could not be logged (the server went away, or the
            # artifact store cannot be written), the model and the rest are saved locally, never lost.
            self._spool(trainer, run_id, unsent, all_tags, status, error, exc, server_gone=not reachable)
        else:
            if not online:
                self._spool(trainer, run_id, unsent, all_tags, status, error, sender.error if sender else None)
        finally:
            # Always set the status ourselves: nothing else will (an uncaught error would otherwise leave
            # the run RUNNING, or FINISHED at exit; research/mlflow.md §6).
            if self.unsent_dir is None or reachable:
                try:
                    store.end_run(run_id, status)
                except Exception as exc:
                    log.warning("MLflow: could not set run %s to %s: %s", run_id, status, exc)
            if self._env is not None:
                self._env.restore()
                self._env = None

    def _description(self, trainer: Trainer, status: str, stop_reason: str, final_epoch: int | None) -> str:
        seconds = time.monotonic() - getattr(self, "_fit_started", time.monotonic())
        reproduce = self._reproduce or "backprop run config.json   # the run's config.json artifact"
        text = run_description(
            trainer,
            status=status,
            stop_reason=stop_reason,
            final_epoch=final_epoch,
            seconds=seconds,
            reproduce=reproduce,
        )
        return cut(text, MAX_TAG_LENGTH)

    @staticmethod
    def _describe_experiment(store: TrackingStore, trainer: Trainer) -> None:
        """An experiment that backprop created lists the experiment files whose runs it holds (its description),
        and is of MLflow's kind "custom model development" (its UI then opens on the model-training views)."""
        tags = store.experiment_tags()
        if tags.get(CREATED_BY) != "backprop":
            return
        source = trainer.experiment.source
        files = json.loads(tags.get(EXPERIMENT_FILES, "[]"))
        name = str(source.resolve()) if source is not None else None
        if name is not None and name not in files:
            files.append(name)
        wanted = {EXPERIMENT_KIND: CUSTOM_MODEL, EXPERIMENT_FILES: json.dumps(files), NOTE: experiment_note(files)}
        changed = {k: v for k, v in wanted.items() if tags.get(k) != v}
        if changed:
            store.set_experiment_tags(changed)

    def _log_end(self, store: TrackingStore, trainer: Trainer, run_id: str, status: str, tags: dict[str, str]) -> None:
        final_epoch = self._model_epoch if status == "FINISHED" else (trainer.history.epochs or [None])[-1]
        with tempfile.TemporaryDirectory(prefix="backprop-pictures-") as tmp:
            # The pictures first: they are drawn while the tags, the history and the model are logged.
            pending = painter.submit(self._picture_jobs(trainer, run_id), Path(tmp))
            note = self._description(trainer, status, tags.get("backprop.stop_reason", status), final_epoch)
            store.set_tags(run_id, {k: cut(v, MAX_TAG_LENGTH) for k, v in {**tags, NOTE: note}.items()})
            store.log_text(run_id, trainer.history.to_csv(), "history.csv")
            if status == "FINISHED":  # a failed or interrupted run's weights are not a model to serve
                store.log_model(run_id, trainer, self._model_epoch, self._epoch_ms)
            for picture in pending.wait():
                store.log_artifact(run_id, picture, None if picture.name == artifacts.CURVES_PNG else DIAGNOSTICS)

    def _picture_jobs(self, trainer: Trainer, run_id: str) -> list[diagnostics.Job]:
        """The run's pictures with their numbers computed (the predictions need the model, here)."""
        history = trainer.history
        jobs = [painter.curves_job(history.epochs, history.metrics)]
        if self._gradients is not None:
            stats = self._gradients
            jobs.append(painter.gradient_flow_job(stats.names, stats.history, history.epochs, GRADIENT_FLOW_PNG))
        if history.epochs:  # interrupted and failed runs too: the weights they ended with
            try:
                jobs += diagnostics.plan(trainer)
            except Exception as exc:  # a plotting problem is not a tracking problem
                log.warning("MLflow: the evaluation pictures of run %s were not drawn: %s", run_id, exc)
        return jobs

    def _server_answers(self, store: TrackingStore) -> bool:
        """Whether the store still answers (always true for a local store: its errors are not outages)."""
        uri = store.tracking_uri
        if not is_http(uri):
            return True
        try:
            check_reachable(uri)
        except UserError:
            return False
        return True

    def _spool(
        self,
        trainer: Trainer,
        run_id: str,
        points: list[Point],
        tags: dict[str, str],
        status: str,
        error: BaseException | None,
        cause: BaseException | None,
        server_gone: bool = True,
    ) -> None:
        what = "the tracking server went away" if server_gone else "logging the end of the run failed"
        try:
            where = self.unsent_dir = artifacts.spool(run_id, trainer, points, tags, status, error)
        except Exception as exc:
            log.warning("MLflow: %s (%s) and saving run %s locally failed: %s", what, cause, run_id, exc)
            return
        if not server_gone:
            log.warning(
                "MLflow: %s (%s: %s); the model, the history, the tags and the final status (%s) of run %s are "
                "saved in %s",
                what,
                type(cause).__name__,
                cause,
                status,
                run_id,
                where,
            )
            return
        log.warning(
            "MLflow: the tracking server went away (%s); the model, %d unsent metric values, the tags and the "
            "final status (%s) of run %s are saved in %s",
            cause,
            len(points),
            status,
            run_id,
            where,
        )


@hookimpl
def register_callbacks() -> list[type[Callback]]:
    return [MlflowTracking]
