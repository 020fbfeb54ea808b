"""What one implementation of each per-batch hook costs per batch, over no implementation at all.

The per-batch hooks (`before_batch`, `after_backward`, `after_step`, `after_batch`) are called by the
trainer through `framework.dispatch.EventDispatcher`, which skips a hook nobody implements and calls the
implementations directly otherwise (research/pluggy.md: a pluggy call costs about 1 µs even when empty).
The target (issue 3): one implementation adds at most 1 µs per hook per batch.

Two measurements, in this process, interleaved round by round, medians over the rounds:

1. whole training runs (a tiny model, batch size 8, so hook overhead is a visible share of a step) with
   no callback and with one callback implementing all four hooks as no-ops; the difference per batch,
   divided by four hooks;
   the median of the paired differences is reported;
2. the dispatcher alone: `hooks.call(...)` of a hook with one no-op implementation, per call.

    python benchmarks/bench_hooks.py [--rounds 30] [--epochs 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from framework import Experiment, hookimpl
from framework.build import prepare_run
from framework.dispatch import EventDispatcher

PER_BATCH_HOOKS = ("before_batch", "after_backward", "after_step", "after_batch")
TARGET_US = 1.0


class OnEveryBatchHook:
    """One no-op implementation of each per-batch hook."""

    @hookimpl
    def before_batch(self, batch: int) -> None:
        pass

    @hookimpl
    def after_backward(self, batch: int) -> None:
        pass

    @hookimpl
    def after_step(self, batch: int) -> None:
        pass

    @hookimpl
    def after_batch(self, step: int) -> None:
        pass


def experiment(epochs: int) -> Experiment:
    return Experiment.from_dict(
        {
            "name": "bench-hooks",
            "data": {"name": "house_prices", "n_samples": 4096, "validation_split": 0.0},
            "model": {"layers": [{"units": 2}, {"units": 1}]},
            "loss": {"name": "mse"},
            "optimizer": {"name": "sgd", "lr": 0.01},
            "training": {"epochs": epochs, "batch_size": 8, "shuffle": False, "metrics": []},
            "tracking": {"enabled": False},
        }
    )


def time_fit(epochs: int, callbacks: list[object]) -> tuple[float, int]:
    """Seconds for one run's `fit()`, and the number of batches it trained."""
    run = prepare_run(experiment(epochs), callbacks, track=False)
    started = time.perf_counter()
    run.trainer.fit()
    elapsed = time.perf_counter() - started
    return elapsed, run.trainer.step


def time_dispatch(calls: int = 200_000) -> tuple[float, float]:
    """Per-call seconds of the dispatcher for a hook with one implementation, and for the skip test."""
    run = prepare_run(experiment(1), [OnEveryBatchHook()], track=False)
    hooks, trainer = EventDispatcher(run.trainer.host.pm), run.trainer
    started = time.perf_counter()
    for _ in range(calls):
        hooks.call("after_step", trainer=trainer, epoch=0, batch=0)
    call = (time.perf_counter() - started) / calls
    started = time.perf_counter()
    for _ in range(calls):
        if hooks.has("before_epoch"):
            pass
    skip = (time.perf_counter() - started) / calls
    return call, skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="Print the results as JSON.")
    args = parser.parse_args()

    for _ in range(2):  # warm up both variants: imports, data, buffers, CPU clocks
        time_fit(args.epochs, [])
        time_fit(args.epochs, [OnEveryBatchHook()])
    without, with_hooks, added, calls, skips = [], [], [], [], []
    batches = 0
    for round_ in range(args.rounds):
        # Pairs close in time share the machine's state (other processes, clocks): the median of the
        # paired differences is far steadier than a difference of medians. The order alternates.
        if round_ % 2:
            hooked, batches = time_fit(args.epochs, [OnEveryBatchHook()])
            bare, _ = time_fit(args.epochs, [])
        else:
            bare, batches = time_fit(args.epochs, [])
            hooked, _ = time_fit(args.epochs, [OnEveryBatchHook()])
        without.append(bare / batches)
        with_hooks.append(hooked / batches)
        added.append((hooked - bare) / batches / len(PER_BATCH_HOOKS))
        if round_ % 5 == 0:
            call, skip = time_dispatch()
            calls.append(call)
            skips.append(skip)
    base, hooked = statistics.median(without), statistics.median(with_hooks)
    per_hook = statistics.median(added)
    results: dict[str, Any] = {
        "batches_per_run": batches,
        "step_without_hooks_us": base * 1e6,
        "step_with_one_impl_per_hook_us": hooked * 1e6,
        "added_per_hook_per_batch_us": per_hook * 1e6,
        "dispatch_call_one_impl_us": statistics.median(calls) * 1e6,
        "skip_test_no_impl_us": statistics.median(skips) * 1e6,
        "target_us": TARGET_US,
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"per batch, {batches} batches per run, medians of {args.rounds} paired rounds:")
    print(f"  training step without per-batch hooks      {base * 1e6:8.2f} µs")
    print(f"  with one no-op implementation on all four  {hooked * 1e6:8.2f} µs")
    print(f"  added per hook per batch                   {per_hook * 1e6:8.2f} µs (target <= {TARGET_US} µs)")
    print(f"  dispatcher call, one implementation        {statistics.median(calls) * 1e6:8.2f} µs")
    print(f"  skip test of an unimplemented hook         {statistics.median(skips) * 1e6:8.3f} µs")
    print("OK" if per_hook * 1e6 <= TARGET_US else "ABOVE TARGET")


if __name__ == "__main__":
    main()
