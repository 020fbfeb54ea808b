"""The training loop: hook order, stop reasons, determinism, errors that name the plugin."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from framework import Experiment, FitResult, Trainer, fit, hookimpl
from framework.build import prepare_run
from framework.dispatch import EventDispatcher
from tests.helpers import digits_config, xor_config


class Recorder:
    """Records every event hook it receives, with the epoch and batch."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    @hookimpl
    def before_fit(self, trainer: Trainer) -> None:
        self.calls.append(("before_fit",))

    @hookimpl
    def before_epoch(self, epoch: int) -> None:
        self.calls.append(("before_epoch", epoch))

    @hookimpl
    def before_batch(self, epoch: int, batch: int) -> None:
        self.calls.append(("before_batch", epoch, batch))

    @hookimpl
    def after_backward(self, epoch: int, batch: int) -> None:
        self.calls.append(("after_backward", epoch, batch))

    @hookimpl
    def after_step(self, epoch: int, batch: int) -> None:
        self.calls.append(("after_step", epoch, batch))

    @hookimpl
    def after_batch(self, epoch: int, batch: int, step: int) -> None:
        self.calls.append(("after_batch", epoch, batch, step))

    @hookimpl
    def after_validation(self, epoch: int) -> None:
        self.calls.append(("after_validation", epoch))

    @hookimpl
    def after_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        self.calls.append(("after_epoch", epoch, sorted(logs)))

    @hookimpl
    def should_stop(self, epoch: int) -> str | None:
        self.calls.append(("should_stop", epoch))
        return None

    @hookimpl
    def after_fit(self, result: FitResult) -> None:
        self.calls.append(("after_fit", result.stop_reason))


def test_event_hooks_come_in_lifecycle_order() -> None:
    # xor has 4 samples; batch_size 2 gives 2 batches per epoch.
    config = xor_config(training={"epochs": 2, "batch_size": 2, "shuffle": False})
    recorder = Recorder()
    fit(Experiment.from_dict(config), callbacks=[recorder])
    expected: list[tuple[Any, ...]] = [("before_fit",)]
    step = 0
    for epoch in range(2):
        expected.append(("before_epoch", epoch))
        for batch in range(2):
            expected += [
                ("before_batch", epoch, batch),
                ("after_backward", epoch, batch),
                ("after_step", epoch, batch),
                ("after_batch", epoch, batch, step),
            ]
            step += 1
        expected += [
            ("after_validation", epoch),
            ("after_epoch", epoch, ["lr", "train_accuracy", "train_loss"]),
            ("should_stop", epoch),
        ]
    expected.append(("after_fit", "completed 2 epochs"))
    assert recorder.calls == expected


def test_hooks_that_nobody_implements_are_not_called() -> None:
    run = prepare_run(Experiment.from_dict(xor_config()), track=False)
    dispatcher = EventDispatcher(run.host.pm)
    for hook in ("before_batch", "after_backward", "after_step", "after_batch"):
        assert not dispatcher.has(hook), hook


def test_should_stop_answers_end_training_and_are_kept_as_the_reason() -> None:
    class StopAtTwo:
        @hookimpl
        def should_stop(self, epoch: int) -> str | None:
            return "enough" if epoch == 1 else None

    class AlsoStop:
        @hookimpl
        def should_stop(self, epoch: int) -> str | None:
            return "me too" if epoch == 1 else None

    result = fit(Experiment.from_dict(xor_config(training={"epochs": 10})), callbacks=[StopAtTwo(), AlsoStop()])
    assert result.history.epochs == [0, 1]
    assert sorted(result.stop_reason.split("; ")) == ["enough", "me too"]


def test_a_plugin_error_names_the_plugin_and_the_hook() -> None:
    class Exploding:
        @hookimpl
        def after_backward(self, batch: int) -> None:
            raise RuntimeError("kaboom")

    with pytest.raises(RuntimeError, match="kaboom") as info:
        fit(Experiment.from_dict(xor_config()), callbacks=[Exploding()])
    notes = " ".join(info.value.__notes__)
    assert "after_backward" in notes and "Exploding" in notes


def test_a_non_string_stop_answer_is_a_type_error_naming_the_plugin() -> None:
    class Yes:
        @hookimpl
        def should_stop(self) -> bool:
            return True

    with pytest.raises(TypeError, match="should_stop must return a reason"):
        fit(Experiment.from_dict(xor_config()), callbacks=[Yes()])


def test_the_same_seed_gives_the_same_run_and_another_seed_does_not() -> None:
    a = fit(Experiment.from_dict(digits_config()))
    b = fit(Experiment.from_dict(digits_config()))
    c = fit(Experiment.from_dict(digits_config(seed=1)))
    assert a.history.metrics == b.history.metrics
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert a.history.metrics["val_loss"] != c.history.metrics["val_loss"]


def test_history_has_every_metric_for_every_epoch_and_the_split_is_stratified() -> None:
    run = prepare_run(Experiment.from_dict(digits_config(training={"epochs": 3})), track=False)
    trainer = run.trainer
    assert trainer.val is not None
    assert len(trainer.train) + len(trainer.val) == 1797
    assert abs(len(trainer.val) - 0.2 * 1797) <= 10
    # Each class keeps its share (within one sample of rounding) in the validation split.
    counts = np.bincount(trainer.val.y, minlength=10)
    full = np.bincount(trainer.dataset.y, minlength=10)  # type: ignore[attr-defined]
    assert np.all(np.abs(counts - np.round(full * 0.2)) <= 1)
    result = trainer.fit()
    assert set(result.history.metrics) == {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"}
    assert all(len(v) == 3 for v in result.history.metrics.values())
    # The training loss goes down on this easy problem.
    assert result.history.metrics["train_loss"][-1] < result.history.metrics["train_loss"][0]


def test_train_loss_is_the_mean_of_the_batch_losses() -> None:
    # Independent check of the epoch metric: recompute the loss of every batch as it is trained on.
    class BatchLosses:
        def __init__(self) -> None:
            self.values: list[tuple[float, int]] = []

        @hookimpl
        def before_batch(self, trainer: Trainer, batch: int) -> None:
            self.batch = batch

        @hookimpl
        def after_batch(self, trainer: Trainer, outputs: Any, targets: Any) -> None:
            # outputs were produced before the step: recompute the mean squared error by hand.
            err = float(np.mean((np.asarray(outputs, dtype=np.float64) - targets) ** 2))
            self.values.append((err, len(targets)))

    probe = BatchLosses()
    config = xor_config(training={"epochs": 1, "batch_size": 3, "shuffle": False})
    result = fit(Experiment.from_dict(config), callbacks=[probe])
    total = sum(v * n for v, n in probe.values) / sum(n for _, n in probe.values)
    # The epoch's loss is the mean over samples; mse averages over samples and outputs (1 output here).
    assert result.history.metrics["train_loss"][0] == pytest.approx(total, rel=1e-5)


@pytest.mark.parametrize("metrics", [[], ["accuracy"]])
def test_kept_sample_losses_are_each_samples_loss_and_leave_the_epoch_loss_alone(metrics: list[str]) -> None:
    class Keep:
        def __init__(self, keep: bool) -> None:
            self.keep, self.seen = keep, []

        @hookimpl
        def before_fit(self, trainer: Trainer) -> None:
            trainer.keep_sample_losses = self.keep

        @hookimpl
        def after_epoch(self, trainer: Trainer) -> None:
            kept, outputs = trainer.epoch_sample_losses, trainer.epoch_outputs
            self.seen.append(None if kept is None else (kept.copy(), np.array(outputs), trainer.epoch_targets))

    config = digits_config(training={"epochs": 2, "batch_size": 32, "metrics": metrics})
    results = {}
    for keep in (True, False):
        probe = Keep(keep)
        results[keep] = fit(Experiment.from_dict(config), callbacks=[probe]).history.metrics["train_loss"]
        if not keep:
            assert probe.seen == [None, None]
            continue
        for kept, outputs, targets in probe.seen:
            o = outputs.astype(np.float64)  # -log softmax of each row's labelled class, by hand
            log_softmax = o - o.max(axis=1, keepdims=True)
            log_softmax -= np.log(np.exp(log_softmax).sum(axis=1, keepdims=True))
            np.testing.assert_allclose(kept, -(targets * log_softmax).sum(axis=1), rtol=1e-4, atol=1e-6)
    assert results[True] == results[False]  # the very same numbers: keeping them changes nothing


def test_a_diverging_run_stops_with_the_reason() -> None:
    config = xor_config(optimizer={"name": "sgd", "lr": 1e30}, training={"epochs": 50, "batch_size": 4})
    config["loss"] = {"name": "mse"}
    config["model"]["layers"][1]["activation"] = "identity"
    with np.errstate(all="ignore"):
        result = fit(Experiment.from_dict(config))
    assert "train_loss is" in result.stop_reason
    assert len(result.history) < 50


def test_evaluating_between_forward_and_backward_leaves_the_gradients_right() -> None:
    run = prepare_run(Experiment.from_dict(xor_config(dtype="float64")), track=False)
    model, loss, train = run.trainer.model, run.trainer.loss, run.trainer.train
    other = np.random.default_rng(1).normal(size=train.X.shape)

    def gradients(evaluate_in_between: bool) -> list[np.ndarray]:
        out = model.forward(train.X, training=True)
        grad = loss.gradient(out, train.targets)
        if evaluate_in_between:
            model.forward(other, training=False)  # same batch size, inference mode
        model.backward(grad)
        return [g.copy() for g in model.gradients()]

    for clean, disturbed in zip(gradients(False), gradients(True), strict=True):
        np.testing.assert_array_equal(clean, disturbed)
