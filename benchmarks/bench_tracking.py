"""What MLflow tracking costs a training run: tracking off against on (per-epoch metrics, and every step).

    .venv/bin/python benchmarks/bench_tracking.py [--rounds 7] [--epochs 12]

Digits (64 -> 64 relu -> 10, batch 32, momentum), the local SQLite store in a temporary directory, all in
one process. Each round trains once per mode, in a rotating order (interleaved, so drifts in machine load hit
every mode alike); a run's time per epoch is the mean interval between consecutive `after_epoch` calls (the
periodic sends included), and the result is the median over rounds.

Measured between epochs on purpose: the one-off costs of a tracked run (importing mlflow, about 1.2 s; opening
the store and creating the run; at the end, the curves, the model and the status) are excluded, since they do
not grow with training. They are reported separately as the wall time of a whole run. Targets (issue 4):
at most 1.05x with per-epoch metrics and 1.15x with metrics every step.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from framework import Experiment, fit, hookimpl

MODES = {"off": None, "per-epoch": {}, "every step": {"log_every_n_steps": 1}}
TARGETS = {"per-epoch": 1.05, "every step": 1.15}


def experiment(epochs: int, tracking: dict[str, Any] | None) -> Experiment:
    return Experiment.from_dict(
        {
            "name": "bench-tracking",
            "seed": 0,
            "data": {"name": "digits", "validation_split": 0.2},
            "model": {"layers": [{"units": 64, "activation": "relu"}, {"units": 10}]},
            "loss": {"name": "cross_entropy"},
            "optimizer": {"name": "momentum", "lr": 0.05, "momentum": 0.9},
            "training": {"epochs": epochs, "batch_size": 32},
            "tracking": {"enabled": tracking is not None, **(tracking or {})},
        }
    )


class EpochClock:
    """Times between consecutive epoch ends (registered last, so it sees each epoch's whole cost)."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    @hookimpl(trylast=True)
    def after_epoch(self) -> None:
        self.stamps.append(time.perf_counter())

    def per_epoch(self) -> float:
        # The mean, not the median: a periodic send to the store is part of what tracking costs.
        return (self.stamps[-1] - self.stamps[0]) / (len(self.stamps) - 1)


def one_run(epochs: int, mode: str) -> tuple[float, float]:
    clock = EpochClock()
    start = time.perf_counter()
    fit(experiment(epochs, MODES[mode]), callbacks=[clock])
    return clock.per_epoch(), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp:
        os.chdir(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        for mode in MODES:  # warm-up: imports, the store's creation, numpy's first calls
            one_run(3, mode)
        modes = list(MODES)
        epoch_times: dict[str, list[float]] = {m: [] for m in modes}
        run_times: dict[str, list[float]] = {m: [] for m in modes}
        for r in range(args.rounds):
            for mode in modes[r % len(modes) :] + modes[: r % len(modes)]:
                per_epoch, whole = one_run(args.epochs, mode)
                epoch_times[mode].append(per_epoch)
                run_times[mode].append(whole)
    base = statistics.median(epoch_times["off"])
    print(f"digits, {args.epochs} epochs, {args.rounds} interleaved rounds, SQLite store; medians")
    print(f"{'mode':<12} {'ms/epoch':>9} {'ratio':>6} {'target':>7} {'whole run s':>12}")
    for mode in modes:
        per_epoch = statistics.median(epoch_times[mode])
        target = TARGETS.get(mode)
        verdict = "" if target is None else (" ok" if per_epoch / base <= target else " OVER")
        print(
            f"{mode:<12} {per_epoch * 1000:9.2f} {per_epoch / base:6.3f} "
            f"{'' if target is None else f'{target:.2f}':>7} {statistics.median(run_times[mode]):12.2f}{verdict}"
        )


if __name__ == "__main__":
    main()
