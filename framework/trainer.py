"""The training loop: minibatches, backpropagation, optimiser steps, per-epoch metrics and hooks.

One `Trainer` is one run. It owns nothing global: its plugin manager, data, model and random generator
were built for it (`framework.build`). The per-batch path is forward, loss gradient, backward, optimiser
step, with per-batch hooks called only when some plugin implements them. The epoch's training loss and
metrics are computed once per epoch from the outputs the batches produced (kept in one preallocated
buffer), so measuring them costs no extra pass over the data.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from framework.components import Array, Loss, Metric, Optimizer, Task
from framework.dispatch import EventDispatcher
from framework.history import FitResult, History
from framework.mapped import MappedRows, index_dtype
from framework.model import Model
from framework.optimization import StepFunction, make_step
from framework.threads import training_threads

if TYPE_CHECKING:
    from framework.checkpoint import Snapshot
    from framework.config import Experiment
    from framework.pluginmanager import PluginHost

__all__ = ["SNAPSHOT_INTERVAL_S", "FitResult", "History", "Split", "Trainer"]

log = logging.getLogger(__name__)

SNAPSHOT_INTERVAL_S = 1.0
"""How old the in-memory snapshot that Ctrl-C writes as a checkpoint may get (see Trainer.fit)."""


@dataclass
class Split:
    """Preprocessed arrays of one split: features, the loss's targets, and the raw labels for metrics."""

    X: Array
    targets: Array
    y: Array

    def __len__(self) -> int:
        return len(self.X)

    def targets_are_y(self) -> bool:
        """Whether `targets` is `y` as one column, the same numbers in the same memory (a regression loss's
        targets in y's own dtype are a view of it): one shuffled copy per epoch then serves both."""
        t, y = self.targets, self.y
        return (
            t.ndim == 2
            and t.shape == (len(y), 1)
            and t.dtype == y.dtype
            and t.__array_interface__["data"][0] == y.__array_interface__["data"][0]
            and (len(y) < 2 or t.strides[0] == y.strides[0])
        )


class Trainer:
    """Runs the loop for one experiment; plugins see it as the `trainer` argument of every event hook."""

    def __init__(
        self,
        *,
        experiment: Experiment,
        model: Model,
        loss: Loss,
        optimizer: Optimizer,
        metrics: dict[str, Metric],
        host: PluginHost,
        train: Split,
        val: Split | None,
        task: Task,
        rng: np.random.Generator,
    ) -> None:
        self.experiment = experiment
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.metrics = metrics
        self.host = host
        self.train = train
        self.val = val
        self.task = task
        self.rng = rng
        self.history = History()
        self.epoch = 0
        self.start_epoch = 0
        self.step = 0
        self.run_id: str | None = None
        self.resume_run_id: str | None = None
        """Set (from the checkpoint) when this run resumes an earlier one: tracking continues that run."""
        self.stop_reason: str | None = None
        self.batch_size = min(experiment.training.batch_size, len(train))
        self.epochs = experiment.training.epochs
        self.callbacks: list[object] = []
        """This run's callback objects (their `state_dict()` goes into checkpoints)."""
        self.checkpoint_dir: Path | None = None
        """Where this run's checkpoints go; chosen at the first one (or taken over from a resumed run)."""
        self.last_checkpoint: Path | None = None
        self._checkpoint_failed = False
        self._good_weights: list[Array] = []
        self._good_flat: Array | None = None
        self._log_names: dict[str, list[str]] = {}
        self._snapshot: Snapshot | None = None
        self._plan: tuple[Any, ...] | None = None
        self.epoch_outputs: Array | None = None
        """The outputs the model gave each training sample in the current (or last) epoch, in the order the
        batches saw them: batch `b` is rows `b * batch_size` to `(b + 1) * batch_size`. With `epoch_targets`,
        per-batch values (the batch losses) can be computed once per epoch instead of in a per-batch hook.
        Valid until the next epoch starts (the buffer is reused)."""
        self.epoch_targets: Array | None = None
        """The loss's targets of the current (or last) epoch, in the order of `epoch_outputs`."""
        self.keep_sample_losses = False
        """Set by a plugin (before an epoch's end) that wants `epoch_sample_losses`; off, they are not computed."""
        self.epoch_sample_losses: Array | None = None
        """Each training sample's loss in the current epoch (`loss.per_sample` of `epoch_outputs` and
        `epoch_targets`), computed with the epoch's training metrics when `keep_sample_losses` is set and the
        loss has `per_sample`; None before that (during the epoch, or when it was interrupted)."""
        self.epoch_first_step = 0
        """The global step of the epoch's first batch: the epoch has completed `step - epoch_first_step`
        batches (all of them after the epoch, fewer when it was interrupted)."""

    @property
    def metric_names(self) -> list[str]:
        """Every name that the history will hold: train_loss, val_loss, train_<metric>, val_<metric>."""
        prefixes = ["train", "val"] if self.val is not None else ["train"]
        return [f"{p}_{m}" for p in prefixes for m in ["loss", *self.metrics]]

    def fit(self) -> FitResult:
        """Train from `start_epoch` (0, or the epoch after a resumed checkpoint) to `epochs`.

        Ends normally when the epochs run out, when a `should_stop` answer gives a reason, or when the loss
        or the weights become NaN or infinite (the weights of the last good epoch are then put back). On an
        exception (Ctrl-C included) a checkpoint of the last completed epoch is written if
        `training.checkpoint_on_interrupt`, then `on_fit_error` is called and the exception re-raised.
        """
        hooks = EventDispatcher(self.host.pm)
        training = self.experiment.training
        every = training.checkpoint_every
        keep_snapshots = every > 0 or training.checkpoint_on_interrupt
        # Resolved once: per-epoch work is all that separates a tiny model's epoch from the numpy floor.
        before_epoch, after_validation = hooks.has("before_epoch"), hooks.has("after_validation")
        after_epoch, should_stop = hooks.has("after_epoch"), hooks.has("should_stop")
        # For the epochs: np.errstate (a diverging model gives nan/inf, which the NaN guard below turns into a
        # stop reason; warnings per operation would only be noise), and one BLAS thread for a small model.
        loop_context = contextlib.ExitStack()
        try:
            hooks.call("before_fit", trainer=self)
            step = self._make_step()
            self._keep_good_weights()
            restored_epoch: int | None = None
            last_snapshot = -math.inf
            loop_context.enter_context(np.errstate(all="ignore"))
            loop_context.enter_context(training_threads(self.model, self.batch_size))
            for epoch in range(self.start_epoch, self.epochs):
                self.epoch = epoch
                if before_epoch:
                    hooks.call("before_epoch", trainer=self, epoch=epoch)
                lr = self.optimizer.lr  # the rate this epoch trains with (schedules set it in before_epoch)
                logs = self._train_epoch(epoch, hooks, step)
                if self.val is not None:
                    logs.update(self._evaluate(self.val, "val"))
                logs["lr"] = lr
                if after_validation:
                    hooks.call("after_validation", trainer=self, epoch=epoch, logs=logs)
                self.history.append(epoch, logs)
                if after_epoch:
                    hooks.call("after_epoch", trainer=self, epoch=epoch, logs=logs)
                reasons = hooks.collect_reasons(trainer=self, epoch=epoch, logs=logs) if should_stop else []
                problem = self._non_finite(logs)
                if problem:
                    # Keep the last good weights: those at the end of the previous epoch (or the start).
                    self.model.set_weights(self._good_weights)
                    restored_epoch = epoch - 1 if epoch > 0 else None
                    kept = f"the weights of epoch {epoch}" if epoch > 0 else "the initial weights"
                    reasons.insert(0, f"{problem} at epoch {epoch + 1}; kept {kept}")
                else:
                    self._keep_good_weights()
                    due = every > 0 and (epoch + 1) % every == 0
                    # For Ctrl-C, a snapshot of a recent epoch is enough (at most SNAPSHOT_INTERVAL_S of
                    # training is lost); capturing after every epoch of a tiny model would double its cost.
                    if due or (keep_snapshots and time.perf_counter() - last_snapshot >= SNAPSHOT_INTERVAL_S):
                        self._snapshot = self._capture(epoch)
                        last_snapshot = time.perf_counter()
                        if due:
                            self._write_checkpoint(self._snapshot)
                if reasons:
                    self.stop_reason = "; ".join(reasons)
                    log.info("stopping after epoch %d: %s", epoch, self.stop_reason)
                    break
            else:
                self.stop_reason = f"completed {self.epochs} epochs"
            loop_context.close()
            if every and self._snapshot is not None:
                self._snapshot.finished = self.stop_reason
                self._write_checkpoint(self._snapshot)
            result = FitResult(self.model, self.history, self.stop_reason or "", self.run_id, self.experiment)
            result.restored_epoch = restored_epoch
            hooks.call("after_fit", trainer=self, result=result)
            result.run_id = self.run_id
            if every and self.checkpoint_dir is not None:
                self._save_returned_model(self.checkpoint_dir / "model")
            return result
        except BaseException as error:
            loop_context.close()
            if isinstance(error, KeyboardInterrupt) and training.checkpoint_on_interrupt and self._snapshot is not None:
                self._snapshot.interrupted = True
                try:
                    path = self._write_checkpoint(self._snapshot)
                    error.add_note(f"checkpoint of epoch {self._snapshot.epoch + 1} written to {path}")
                except Exception as write_error:  # never hide the interruption behind a failed write
                    log.warning(
                        "could not write the interrupt checkpoint: %s: %s", type(write_error).__name__, write_error
                    )
            for failure in hooks.call_all("on_fit_error", trainer=self, error=error):
                error.add_note(f"and then on_fit_error failed: {type(failure).__name__}: {failure}")
            raise

    def _make_step(self) -> StepFunction:
        """The per-batch update, with the `[optimizer]` options the core applies (nothing extra when off)."""
        section = self.experiment.optimizer
        params = self._step_arrays()[0]
        weight_decay = section.weight_decay
        if weight_decay is None:
            weight_decay = type(self.optimizer).default_weight_decay
        step = make_step(
            self.optimizer,
            params,
            weight_decay=weight_decay,
            clip_norm=section.clip_norm,
            clip_value=section.clip_value,
        )
        if not self.model.constrained_layers:
            return step
        constrain = self.model.constrain

        def step_then_constrain(params: list[Array], grads: list[Array]) -> None:
            step(params, grads)
            constrain()  # weight constraints (max_norm) project the updated parameters

        return step_then_constrain

    def _step_arrays(self) -> tuple[list[Array], list[Array]]:
        model = self.model
        if self.optimizer.elementwise and model.flat_parameters is not None and model.flat_gradients is not None:
            return [model.flat_parameters], [model.flat_gradients]  # one array: a few numpy calls per step
        return model.parameters(), model.gradients()

    def _non_finite(self, logs: dict[str, float]) -> str | None:
        """Why this epoch diverged (a non-finite loss, or weights), or None. Once per epoch: cheap."""
        for key in ("train_loss", "val_loss"):
            if key in logs and not math.isfinite(logs[key]):
                return f"{key} is {logs[key]}"
        flat = self.model.flat_parameters
        # Σ p² is NaN or infinite if any weight is, and finite ones rarely overflow it: one BLAS call (0.9 µs
        # at W1 against 1.9 µs for isfinite().all()); only when it is not finite are the weights checked one by one.
        if flat is not None and math.isfinite(np.vdot(flat, flat)):
            return None
        arrays = [flat] if flat is not None else self.model.parameters()
        if not all(np.isfinite(a).all() for a in arrays):
            return "the weights are NaN or infinite"
        return None

    def _keep_good_weights(self) -> None:
        """Copy the current weights into `_good_weights`, which the NaN guard puts back if an epoch diverges.

        With the parameters in one flat buffer this is one copy into a buffer kept for the run (0.2 µs against
        0.85 µs for `get_weights`' four copies at W1, where an epoch is about 30 µs); `_good_weights` are then
        views of that buffer (and copies of the buffers, such as running statistics), overwritten every
        epoch, so a snapshot takes its own copy (`_capture`).
        """
        model = self.model
        flat = model.flat_parameters
        if flat is None:
            self._good_weights = model.get_weights()
            return
        buffers = model.buffers()
        if self._good_flat is None or self._good_flat.shape != flat.shape or self._good_flat.dtype != flat.dtype:
            self._good_flat = np.empty_like(flat)
            self._good_weights = [*model.parameter_views(self._good_flat), *(np.empty_like(b) for b in buffers)]
        np.copyto(self._good_flat, flat)
        if buffers:
            for kept, live in zip(self._good_weights[len(self._good_weights) - len(buffers) :], buffers, strict=True):
                np.copyto(kept, live)

    def _capture(self, epoch: int) -> Snapshot:
        from framework.checkpoint import capture

        # Copies: `_good_weights` may be views of a buffer that the next epoch overwrites.
        return capture(self, epoch, [w.copy() for w in self._good_weights])

    def _write_checkpoint(self, snapshot: Snapshot) -> Path | None:
        """Write a checkpoint; one that cannot be written (disk full, a file in the way) is reported, and
        training goes on: losing a checkpoint must not lose the run (the interrupt path raises, its caller reports).
        """
        from framework.checkpoint import run_directory, write_checkpoint

        if self.checkpoint_dir is None:
            self.checkpoint_dir = run_directory(self)
        try:
            path = write_checkpoint(snapshot, self.checkpoint_dir)
        except OSError as exc:
            if snapshot.interrupted:
                raise
            if not self._checkpoint_failed:
                log.warning(
                    "could not write a checkpoint under %s (%s: %s); training goes on, and the trained model is "
                    "still returned (and logged to MLflow when tracking is on)",
                    self.checkpoint_dir,
                    type(exc).__name__,
                    exc,
                )
            self._checkpoint_failed = True
            return None
        self.last_checkpoint = path
        log.info("checkpoint written: %s", path)
        return path

    def _save_returned_model(self, path: Path) -> None:
        try:
            self.model.save(path)  # the model fit returns (best weights restored)
        except OSError as exc:
            log.warning("could not save the trained model to %s (%s: %s)", path, type(exc).__name__, exc)

    def _train_epoch(self, epoch: int, hooks: EventDispatcher, step: StepFunction | None = None) -> dict[str, float]:
        """One pass over the training data; returns the epoch's training loss and metrics.

        Everything that does not change between epochs (flags, arrays, buffers) is looked up once per fit
        in `_epoch_plan`: for a tiny model (xor: one 25 µs step per epoch) the bookkeeping around the step
        is the cost.
        """
        plan = self._plan
        if plan is None or plan[0] is not hooks or (step is not None and plan[1] is not step):
            plan = self._plan = self._epoch_plan(hooks, step)
        (
            _,
            step_fn,
            shuffle,
            same_y,
            params,
            grads,
            outputs,
            bs,
            before_batch,
            after_backward,
            after_step,
            after_batch,
        ) = plan
        train = self.train
        if shuffle:
            if shuffle is True:
                perm = self.rng.permutation(len(outputs))
                # One copy each. take(axis=0) gathers the same rows as X[perm], 2-4 times faster on 2-D arrays
                # (W1's 4 x 3: 0.26 µs against 0.94; W5's 20000 x 20: 72 µs against 274; numpy 2.4).
                X, T = train.X.take(perm, axis=0), train.targets.take(perm, axis=0)
                y = T[:, 0] if same_y else train.y.take(perm, axis=0)
            else:  # mapped rows: permutation(n)'s order and draws, in int32 (shuffle: the dtype); no rows read
                self.rng.shuffle(perm := np.arange(len(outputs), dtype=shuffle))
                # Indexing, not take: take would first copy an int32 index to intp and a strided column (the
                # targets left in a mapped file) to a contiguous one, 12 bytes a row more at this moment.
                X, T = train.X.take(perm), train.targets[perm]
                y = T[:, 0] if same_y else train.y[perm]
            del perm  # (mapped rows: X's index is the only one left, 4 bytes a row, freed before the metrics)
        else:
            X, T, y = train.X, train.targets, train.y
        model, loss = self.model, self.loss
        forward, backward, gradient = model.forward, model.backward, loss.gradient
        self.epoch_outputs, self.epoch_targets, self.epoch_first_step = outputs, T, self.step
        self.epoch_sample_losses = None
        if not (before_batch or after_backward or after_step or after_batch):
            # The plain loop: forward, loss gradient, backward (the chain rule through every layer), update.
            start = 0
            try:
                for start in range(0, len(outputs), bs):
                    stop = start + bs
                    out = forward(X[start:stop], True)
                    outputs[start:stop] = out  # kept for the epoch's training metrics (and batch losses)
                    backward(gradient(out, T[start:stop]))
                    step_fn(params, grads)  # clipping/weight decay if configured, then the optimiser: in place
            except BaseException:
                self.step += start // bs  # the batches completed before the interruption
                raise
            self.step += -(-len(outputs) // bs)
            del X  # mapped rows: their permuted index goes before the metrics' temporaries come
            return self._metrics_of(outputs, T, y, "train")
        for batch, start in enumerate(range(0, len(outputs), bs)):
            stop = start + bs
            xb, tb = X[start:stop], T[start:stop]
            if before_batch:
                hooks.call("before_batch", trainer=self, epoch=epoch, batch=batch)
            out = forward(xb, True)  # forward pass
            outputs[start:stop] = out  # kept for the epoch's training metrics
            backward(gradient(out, tb))  # dL/d(outputs), then the chain rule through every layer
            if after_backward:
                hooks.call("after_backward", trainer=self, epoch=epoch, batch=batch)
            step_fn(params, grads)  # clipping/weight decay if configured, then the optimiser: in place
            if after_step:
                hooks.call("after_step", trainer=self, epoch=epoch, batch=batch)
            if after_batch:
                hooks.call(
                    "after_batch",
                    trainer=self,
                    epoch=epoch,
                    batch=batch,
                    step=self.step,
                    outputs=out,
                    targets=tb,
                )
            self.step += 1
        del X
        return self._metrics_of(outputs, T, y, "train")

    def _epoch_plan(self, hooks: EventDispatcher, step: StepFunction | None) -> tuple[Any, ...]:
        params, grads = self._step_arrays()
        shuffle: bool | np.dtype[Any] = self.experiment.training.shuffle
        if shuffle and isinstance(self.train.X, MappedRows):  # an int32 permutation (see _train_epoch)
            shuffle = index_dtype(len(self.train))
        return (
            hooks,
            step if step is not None else self._make_step(),
            shuffle,
            self.train.targets_are_y(),
            params,
            grads,
            self._outputs_buffer(len(self.train)),
            self.batch_size,
            hooks.has("before_batch"),
            hooks.has("after_backward"),
            hooks.has("after_step"),
            hooks.has("after_batch"),
        )

    def _outputs_buffer(self, n: int) -> Array:
        buf: Array | None = getattr(self, "_outputs", None)
        if buf is None or buf.shape[0] != n:
            width = self.model.output_dim
            buf = np.empty((n, width), dtype=self.model.dtype)
            self._outputs = buf
        return buf

    def _evaluate(self, split: Split, prefix: str) -> dict[str, float]:
        outputs = self.model.outputs(split.X, batch_size=max(self.batch_size, 1024))
        return self._metrics_of(outputs, split.targets, split.y, prefix)

    def _metrics_of(self, outputs: Array, targets: Array, y: Array, prefix: str) -> dict[str, float]:
        # Called inside fit's np.errstate(all="ignore"): a diverged model reports nan/inf and then stops.
        names = self._log_names.get(prefix)
        if names is None or len(names) != len(self.metrics) + 1:  # the keys, made once per prefix and run
            names = self._log_names[prefix] = [f"{prefix}_{name}" for name in ["loss", *self.metrics]]
        if prefix == "train" and self.keep_sample_losses:  # the same value, and each sample's loss with it
            value, predictions, self.epoch_sample_losses = self.loss.value_link_and_per_sample(outputs, targets)
            if not self.metrics:
                return {names[0]: float(value) + self._penalty()}
        elif not self.metrics:
            return {names[0]: float(self.loss.value(outputs, targets)) + self._penalty()}
        else:
            # One call: a loss may compute its value and its link together (cross_entropy shares the softmax).
            value, predictions = self.loss.value_and_link(outputs, targets)
        logs = {names[0]: float(value) + self._penalty()}
        if self.model.target_scaler is not None:  # metrics in the targets' own units
            predictions = self.model.target_scaler.inverse_transform(predictions)
        for key, metric in zip(names[1:], self.metrics.values(), strict=True):
            logs[key] = float(metric(y, predictions))
        return logs

    def _penalty(self) -> float:
        """The layers' regularisation term (l1/l2), part of the reported loss as in Keras; 0.0 without."""
        return self.model.penalty() if self.model.penalized_layers else 0.0

    def evaluate(self, split: Split) -> dict[str, float]:
        """Loss and metrics of the current model on a prepared split (names without prefix)."""
        with np.errstate(all="ignore"):
            logs = self._evaluate(split, "eval")
        return {k.removeprefix("eval_"): v for k, v in logs.items()}
