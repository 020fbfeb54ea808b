"""Sweep benchmarks: a process pool, TPE against random search, median pruning, and a 2-worker Dask cluster.

Each part runs `backprop sweep` as a user does (a process, a fresh local SQLite store) and quotes the median,
min and max of several rounds, the two sides alternating in each round:

- `pool` (issue 8): 4 equal trials with `--workers 2` against `--workers 1`; target <= 0.65x. Each trial
  trains digits for about 13 s (2000 epochs): with trials of a second the fixed start-up (about 3 s) dominates.
- `tpe` (issue 17): the trials TPE and random search need (same space, same budget of 40, same seeds) before
  one reaches val_accuracy >= 0.98 on digits (never: budget + 1); TPE should need fewer, averaged over 3
  seeds. Both rank by val_loss and run one trial at a time. (At 0.975 random search gets there by luck in a
  few draws, so the target does not tell the samplers apart.)
- `prune` (issue 17): a 16-trial random sweep with and without `--prune median`; target: >= 40 % fewer epochs
  in all, the same best trial.
- `cluster` (issue 17): an 8-trial sweep on a Dask scheduler and two worker processes started here, against the
  same sweep run one trial at a time; target <= 0.6x. Each trial trains digits for 600 epochs (about 6 s);
  `--epochs 2000` gives trials of about 20 s, like `pool`'s, where the sweep's fixed cost (about 5 s: the parent's
  MLflow client and store, the summary figure) weighs less.

    python benchmarks/bench_sweep.py [pool|tpe|prune|cluster|all] [--rounds 3] [--epochs N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

EXPERIMENT = {
    "name": "bench-sweep",
    "seed": 0,
    "data": {"name": "digits", "validation_split": 0.2},
    "model": {"layers": [{"units": 256, "activation": "relu"}, {"units": 10}]},
    "loss": {"name": "cross_entropy"},
    "optimizer": {"name": "momentum", "lr": 0.01, "momentum": 0.9},
    "training": {"epochs": 40, "batch_size": 16},
}


TARGET = 0.98  # val_accuracy the search must reach (tpe); 0.975 is reached by luck in a few draws
SPACE = [
    "--param", "optimizer.lr=loguniform(1e-4,1)",
    "--param", "model.layers.0.units=int(8,256)",
    "--param", "training.batch_size=int(16,256)",
    "--param", "optimizer.momentum=uniform(0,0.99)",
]  # fmt: skip


def sweep(args: list[str], config: dict[str, Any], tmp: str) -> float:
    """Run `backprop sweep` on `config` in `tmp` (its own SQLite store); the wall time in seconds."""
    path = Path(tmp) / "exp.json"
    path.write_text(json.dumps(config))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db", "MLFLOW_DISABLE_TELEMETRY": "true"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "framework.cli", "sweep", str(path), "--quiet", *args],
        cwd=tmp,
        env=env,
        capture_output=True,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stderr.decode())
    return elapsed


def children(tmp: str) -> list[Any]:
    """The trials of the one sweep in `tmp`'s store, in the order they were started."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp}/mlflow.db")
    experiment = client.get_experiment_by_name(EXPERIMENT["name"])
    runs = client.search_runs([experiment.experiment_id], "tags.mlflow.parentRunId != ''", max_results=1000)
    return sorted(runs, key=lambda r: int(r.data.tags["backprop.trial"]))


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} [min {min(values):.3f}, max {max(values):.3f}]"


def pool(rounds: int, epochs: int = 2000) -> None:
    ratios = []
    config = dict(EXPERIMENT, training={"epochs": epochs, "batch_size": 16})
    grid = ["--grid", "optimizer.lr=0.01,0.011,0.012,0.013"]  # four equal trials: the rates differ, the work not
    for r in range(rounds):
        with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
            sequential = sweep([*grid, "--workers", "1"], config, one)
            parallel = sweep([*grid, "--workers", "2"], config, two)
        ratios.append(parallel / sequential)
        print(f"pool round {r}: 1 worker {sequential:6.2f} s, 2 workers {parallel:6.2f} s, ratio {ratios[-1]:.3f}")
    print(f"pool: 2 workers / 1 worker {spread(ratios)} (target <= 0.65)")


def trials_to_target(tmp: str, target: float = TARGET) -> int | None:
    for i, run in enumerate(children(tmp)):
        if run.data.metrics.get("val_accuracy", 0.0) >= target:
            return i + 1
    return None


def tpe(budget: int = 40, seeds: tuple[int, ...] = (0, 1, 2), target: float = TARGET) -> None:
    """A wide space where most draws are poor (learning rates over six decades), so that finding a good corner
    takes search. Both rank by val_loss (a smooth signal to model; accuracy saturates) and run one trial at a
    time, so that TPE, which starts modelling after 5 random trials, always sees every earlier result."""
    config = dict(EXPERIMENT, training={"epochs": 15, "batch_size": 32})
    config["tracking"] = {"gradient_stats": False}
    space = [
        "--param", "optimizer.lr=loguniform(1e-5,10)",
        "--param", "model.layers.0.units=int(4,256)",
        "--param", "training.batch_size=int(16,512)",
        "--param", "optimizer.momentum=uniform(0,0.99)",
    ]  # fmt: skip
    found: dict[str, list[int]] = {"random": [], "tpe": []}
    for seed in seeds:
        for sampler in ("random", "tpe"):
            config["sweep"] = {"sampler": {"name": "tpe", "n_startup_trials": 5}} if sampler == "tpe" else {}
            with tempfile.TemporaryDirectory() as tmp:
                args = ["--trials", str(budget), "--seed", str(seed), "--metric", "val_loss", "--workers", "1"]
                sweep([*args, *(["--sampler", "random"] if sampler == "random" else []), *space], config, tmp)
                needed = trials_to_target(tmp, target)
                best = max(r.data.metrics.get("val_accuracy", 0.0) for r in children(tmp))
            found[sampler].append(needed if needed is not None else budget + 1)
            print(f"tpe seed {seed}: {sampler:6s} reached {target} after {needed or 'more than ' + str(budget)} trials "
                  f"(best val_accuracy {best:.4f})")  # fmt: skip
    for sampler, counts in found.items():
        print(f"tpe: {sampler} needs {statistics.mean(counts):.1f} trials on average ({counts}; {budget + 1} = never)")


def prune(rounds: int, trials: int = 16, epochs: int = 30) -> None:
    config = dict(EXPERIMENT, training={"epochs": epochs, "batch_size": 32})
    config["tracking"] = {"gradient_stats": False}
    args = ["--sampler", "random", "--trials", str(trials), "--seed", "3", "--workers", "2", *SPACE[:4]]
    cuts = []
    for r in range(rounds):
        epochs_run, best = {}, {}
        for side, extra in (("full", []), ("median", ["--prune", "median"])):
            with tempfile.TemporaryDirectory() as tmp:
                sweep([*args, *extra], config, tmp)
                runs = children(tmp)
                epochs_run[side] = sum(len_history(tmp, r) for r in runs)
                done = [r for r in runs if r.data.tags.get("backprop.pruned") != "true"]
                best[side] = min(done, key=lambda r: r.data.metrics["val_loss"]).data.tags["backprop.trial"]
        cuts.append(1 - epochs_run["median"] / epochs_run["full"])
        print(f"prune round {r}: epochs {epochs_run['full']} without pruning, {epochs_run['median']} with median "
              f"pruning ({cuts[-1]:.0%} fewer); best trial {best['full']} / {best['median']}")  # fmt: skip
    print(f"prune: epochs cut by {spread(cuts)} (target >= 0.40, best trial unchanged)")


def len_history(tmp: str, run: Any) -> int:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp}/mlflow.db")
    return len(client.get_metric_history(run.info.run_id, "train_loss"))


def cluster(rounds: int, epochs: int = 600) -> None:
    config = dict(EXPERIMENT, training={"epochs": epochs, "batch_size": 16})
    grid = ["--grid", "optimizer.lr=0.01,0.011,0.012,0.013,0.014,0.015,0.016,0.017"]
    ratios = []
    with tempfile.TemporaryDirectory() as where, dask_cluster(Path(where)) as address:
        for r in range(rounds):
            with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
                sequential = sweep([*grid, "--workers", "1"], config, one)
                distributed = sweep([*grid, "--executor", "dask", "--address", address], config, two)
            ratios.append(distributed / sequential)
            print(f"cluster round {r}: one at a time {sequential:6.2f} s, 2 Dask workers {distributed:6.2f} s, "
                  f"ratio {ratios[-1]:.3f}")  # fmt: skip
    print(f"cluster: 2 Dask workers / sequential {spread(ratios)} (target <= 0.6)")


@contextlib.contextmanager
def dask_cluster(where: Path) -> Iterator[str]:
    """`dask scheduler` and two `dask worker` processes (one thread each) on 127.0.0.1, stopped afterwards."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dask = str(Path(sys.executable).parent / "dask")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    log = open(where / "dask.log", "wb")  # noqa: SIM115 (the processes write to it)
    address = f"tcp://127.0.0.1:{port}"
    processes = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                                  env=env, stdout=log, stderr=log)]  # fmt: skip
    try:
        for _ in range(2):
            processes.append(subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-dashboard",
                                               "--host", "127.0.0.1"], env=env, stdout=log, stderr=log))  # fmt: skip
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=30)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", nargs="?", default="all", choices=["pool", "tpe", "prune", "cluster", "all"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--target", type=float, default=TARGET, help="tpe: the val_accuracy to reach")
    parser.add_argument("--budget", type=int, default=40, help="tpe: trials per search")
    parser.add_argument("--epochs", type=int, help="cluster and pool: epochs per trial (default 600 and 2000)")
    args = parser.parse_args()
    if args.part in ("tpe", "all"):
        tpe(args.budget, target=args.target)
    if args.part in ("prune", "all"):
        prune(args.rounds)
    if args.part in ("cluster", "all"):
        cluster(args.rounds, **({"epochs": args.epochs} if args.epochs else {}))
    if args.part in ("pool", "all"):
        pool(args.rounds, **({"epochs": args.epochs} if args.epochs else {}))


if __name__ == "__main__":
    main()
