"""First speed fence: one epoch of digits through backprop's public API against the hand-written floor.

Workload W2 of research/performance.md: scikit-learn digits (1797 x 64, standardised), 64 -> 64 relu -> 10,
softmax cross-entropy, momentum SGD (lr 0.05, mu 0.9), batch 32, reshuffled every epoch, float32,
tracking off, one BLAS thread. Both systems run in this process, interleaved round by round; the
script prints the median time per epoch of each and their ratio (target: backprop / floor <= 1.25).

    python benchmarks/bench_digits.py [--rounds 7] [--epochs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

# A wrong OpenBLAS core type slows numpy by 30 % to 4x (research/performance.md): measure without it.
if os.environ.pop("OPENBLAS_CORETYPE", None) is not None or os.environ.pop("OPENBLAS_L2_SIZE", None) is not None:
    os.environ.pop("OPENBLAS_L2_SIZE", None)
    os.execv(sys.executable, [sys.executable, *sys.argv])

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from floor import FloorMLP

from framework import Experiment, fit, hookimpl


def experiment(epochs: int) -> Experiment:
    return Experiment.from_dict(
        {
            "name": "bench-digits",
            "seed": 0,
            "dtype": "float32",
            "data": {"name": "digits", "validation_split": 0.0, "standardize": True},
            "model": {"layers": [{"units": 64, "activation": "relu"}, {"units": 10}]},
            "loss": {"name": "cross_entropy"},
            "optimizer": {"name": "momentum", "lr": 0.05, "momentum": 0.9},
            "training": {"epochs": epochs, "batch_size": 32, "shuffle": True},
            "tracking": {"enabled": False},
        }
    )


class EpochTimer:
    """Time between consecutive epoch starts: the whole epoch as the trainer runs it."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    @hookimpl
    def before_epoch(self) -> None:
        self.starts.append(time.perf_counter())

    @hookimpl
    def after_fit(self) -> None:
        self.starts.append(time.perf_counter())

    def per_epoch(self) -> list[float]:
        return [b - a for a, b in zip(self.starts, self.starts[1:], strict=False)][1:]  # first epoch warms up


def run_backprop(epochs: int) -> tuple[float, float]:
    timer = EpochTimer()
    result = fit(experiment(epochs), callbacks=[timer], track=False)
    return statistics.median(timer.per_epoch()), result.history.metrics["train_loss"][-1]


def run_floor(epochs: int, X: np.ndarray, T: np.ndarray) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    net = FloorMLP([64, 64, 10], "relu", 0.05, 0.9, np.float32, rng)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        net.epoch(X, T, 32, rng)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:]), net.loss(X, T)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    from sklearn.datasets import load_digits

    digits = load_digits()
    X = digits.data.astype(np.float32)
    X = ((X - X.mean(0)) / np.where(X.std(0) == 0, 1, X.std(0))).astype(np.float32)
    T = np.eye(10, dtype=np.float32)[digits.target]

    with threadpool_limits(1):
        blas = [
            {k: info.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for info in threadpool_info()
            if info.get("user_api") == "blas"
        ]
        run_floor(3, X, T)  # warm up both
        run_backprop(3)
        rows = []
        for r in range(args.rounds):
            floor_t, floor_loss = run_floor(args.epochs, X, T)
            bp_t, bp_loss = run_backprop(args.epochs)
            rows.append({"round": r, "floor_s": floor_t, "backprop_s": bp_t, "ratio": bp_t / floor_t})
            print(
                f"round {r}: floor {floor_t * 1e3:7.3f} ms/epoch  backprop {bp_t * 1e3:7.3f} ms/epoch  "
                f"ratio {bp_t / floor_t:5.3f}  (final loss floor {floor_loss:.4f}, backprop {bp_loss:.4f})"
            )
    floor_med = statistics.median(r["floor_s"] for r in rows)
    bp_med = statistics.median(r["backprop_s"] for r in rows)
    ratio_med = statistics.median(r["ratio"] for r in rows)
    print(f"BLAS: {blas}")
    print(
        f"median over {args.rounds} rounds: floor {floor_med * 1e3:.3f} ms/epoch, backprop {bp_med * 1e3:.3f} "
        f"ms/epoch, ratio {ratio_med:.3f} (median of per-round ratios; target <= 1.25)"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"blas": blas, "rounds": rows, "median_ratio": ratio_med}, fh, indent=2)


if __name__ == "__main__":
    main()
