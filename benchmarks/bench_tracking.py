"""What MLflow tracking costs a training run: tracking off against on (per-epoch metrics, and every step).

    .venv/bin/python benchmarks/bench_tracking.py [--rounds 11] [--epochs 1600]

Digits (64 -> 64 relu -> 10, batch 32, momentum; ~2.5 ms an epoch), the local SQLite store in a temporary
directory, all in one process. Each round trains once per mode, in a rotating order (interleaved, so drifts
in machine load hit every mode alike); a mode's ratio is the median over rounds of its time against the
untracked run of the same round.

The cost that grows with training is what the targets are about (issue 4: at most 1.05x with per-epoch
metrics and 1.15x with metrics every step). It is measured from the end of the first epoch to the moment
every metric is in the store (`MetricSender.close` returning, after the last epoch), per epoch: the periodic
sends and the wait at the end for metrics still being written count, while the one-off costs of a tracked
run (importing mlflow, about 1.2 s; creating the run; logging the curves and the model) do not. The run
must last several flush intervals (2 s): a shorter run sends all its metrics at the end, and costs only
that wait. The time per epoch of training alone (between `after_epoch` calls) is reported too.

This machine is shared: for a second at a time its epochs run 50 % slower, whatever the mode, so single
rounds scatter by ±10 %. The interquartile range of the rounds' ratios is printed with the median, and so is
the ratio of the best run of a mode to the best untracked run (slow phases only ever add time).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from framework import Experiment, fit, hookimpl
from plugins.tracking import sender

MODES = {"off": None, "per-epoch": {}, "every step": {"log_every_n_steps": 1}, "every 4": {"log_every_n_steps": 4}}
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
    """Times of the epoch ends (registered last, so it sees each epoch's whole cost) and of the moment the
    tracking callback has every metric in the store."""

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self.stored: float | None = None

    @hookimpl(trylast=True)
    def after_epoch(self) -> None:
        self.stamps.append(time.perf_counter())

    def training(self) -> float:
        """Seconds per epoch between the first and the last epoch's end."""
        return (self.stamps[-1] - self.stamps[0]) / (len(self.stamps) - 1)

    def to_store(self) -> float:
        """Seconds per epoch from the first epoch's end until every metric is in the store."""
        end = self.stored if self.stored is not None else self.stamps[-1]
        return (end - self.stamps[0]) / (len(self.stamps) - 1)


CLOCK: EpochClock | None = None


def timed_close(close: Any) -> Any:
    """`MetricSender.close`, noting when it returns (every point sent) on the current run's clock."""

    def wrapper(self: Any) -> Any:
        result = close(self)
        if CLOCK is not None:
            CLOCK.stored = time.perf_counter()
        return result

    return wrapper


def one_run(epochs: int, mode: str) -> EpochClock:
    global CLOCK
    CLOCK = clock = EpochClock()
    fit(experiment(epochs, MODES[mode]), callbacks=[clock])
    return clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--epochs", type=int, default=1600, help="epochs of each run (several seconds)")
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    sender.MetricSender.close = timed_close(sender.MetricSender.close)  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp:
        os.chdir(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        for mode in MODES:  # warm-up: imports, the store's creation, numpy's first calls
            one_run(3, mode)
        modes = list(MODES)
        clocks: dict[str, list[EpochClock]] = {m: [] for m in modes}
        for r in range(args.rounds):
            for mode in modes[r % len(modes) :] + modes[: r % len(modes)]:
                clocks[mode].append(one_run(args.epochs, mode))
    off = clocks["off"]
    print(f"digits, runs of {args.epochs} epochs, {args.rounds} interleaved rounds, SQLite store")
    print("ratio: median over rounds of each round's ratio [interquartile range]; best: best run against best run")
    print(f"{'mode':<11} {'ms/epoch':>8} {'ratio':>18} {'target':>6} {'best':>6}   {'training alone':>18}")

    def ratios(measure: Any, mode: str) -> str:
        values = sorted(measure(c) / o.training() for c, o in zip(clocks[mode], off, strict=True))
        q1, _, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
        return f"{statistics.median(values):6.3f} [{q1:.2f}-{q3:.2f}]"

    for mode in modes:
        to_store = statistics.median(c.to_store() for c in clocks[mode])
        ratio = statistics.median(c.to_store() / o.training() for c, o in zip(clocks[mode], off, strict=True))
        best = min(c.to_store() for c in clocks[mode]) / min(o.training() for o in off)
        target = TARGETS.get(mode)
        verdict = "" if target is None else (" ok" if ratio <= target else " OVER")
        print(
            f"{mode:<11} {to_store * 1000:8.3f} {ratios(EpochClock.to_store, mode):>18}"
            f" {'' if target is None else f'{target:.2f}':>6} {best:6.3f}"
            f"   {ratios(EpochClock.training, mode):>18}{verdict}"
        )


if __name__ == "__main__":
    main()
