"""Sweep speed: 4 equal trials with 2 workers against the same 4 trials one after another.

Target (issue 8): the parallel sweep takes at most 0.65x the sequential time. Both are run the way a user
runs them, as `backprop sweep` processes (`--workers 2` and `--workers 1`), against a fresh local SQLite
store each, alternating, and the median of several rounds is quoted. Start-up (imports, the store, about
3 s) is included on both sides, since the user waits for it too; each trial trains digits for about 13 s
(2000 epochs), a small but real trial. With trials of a second or two the fixed start-up dominates and no
parallelism can reach the target.

    python benchmarks/bench_sweep.py [--rounds 3] [--epochs 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXPERIMENT = {
    "name": "bench-sweep",
    "seed": 0,
    "data": {"name": "digits", "validation_split": 0.2},
    "model": {"layers": [{"units": 256, "activation": "relu"}, {"units": 10}]},
    "loss": {"name": "cross_entropy"},
    "optimizer": {"name": "momentum", "lr": 0.01, "momentum": 0.9},
    "training": {"epochs": 40, "batch_size": 16},
}


def run_sweep(workers: int, epochs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        config = dict(EXPERIMENT, training={"epochs": epochs, "batch_size": 16})
        path = Path(tmp) / "exp.json"
        path.write_text(json.dumps(config))
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db", "MLFLOW_DISABLE_TELEMETRY": "true"}
        # Four equal trials: the learning rates differ, the work does not.
        args = [
            "sweep",
            str(path),
            "--quiet",
            "--grid",
            "optimizer.lr=0.01,0.011,0.012,0.013",
            "--workers",
            str(workers),
        ]
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "framework.cli", *args], cwd=tmp, env=env, capture_output=True)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(done.stderr.decode())
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2000)
    args = parser.parse_args()
    ratios = []
    for r in range(args.rounds):
        sequential = run_sweep(1, args.epochs)
        parallel = run_sweep(2, args.epochs)
        ratios.append(parallel / sequential)
        print(
            f"round {r}: 1 worker {sequential:6.2f} s   2 workers {parallel:6.2f} s   ratio {parallel / sequential:.3f}"
        )
    print(f"median ratio over {args.rounds} rounds: {statistics.median(ratios):.3f} (target <= 0.65)")


if __name__ == "__main__":
    main()
