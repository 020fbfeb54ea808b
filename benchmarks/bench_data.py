"""Data at scale (issue 21): load time, one epoch and peak memory against rows, beside Arrow and numpy.

For each size (rows x 20 float features + a target) a CSV and an .npy file are generated once, then each
measurement runs in a fresh process (so peak memory, ru_maxrss, is its own), `--rounds` times, alternating:

- `csv`: backprop's `csv` dataset load; `arrow`: `pyarrow.csv.read_csv` plus the conversion to one numpy array.
- `npy-mapped` / `npy-read`: the `npz` dataset with `in_memory = false` / `true`; `numpy`: `numpy.load`.
- `epoch-mapped` / `epoch-read`: one epoch of a 20-16-1 network (batch 256) on the .npy, mapped or read.

Peak memory is quoted above the same process loading a 100-row file. The exponent is the slope of
log(time) and log(memory) against log(rows) between the smallest and largest size.

    python benchmarks/bench_data.py               # 10^4 and 10^5 rows, 3 rounds
    python benchmarks/bench_data.py --full        # 10^4 .. 10^6, and 10^7 where memory allows
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = 20

CHILD = r"""
import json, resource, sys, time
import numpy as np
import pyarrow.csv as pacsv
from framework import Experiment
from framework.build import prepare_run
from plugins.file_datasets import CsvDataset, NpzDataset
what, path = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()  # the imports are not timed: start-up is bench_cli.py's
if what == "arrow":
    table = pacsv.read_csv(path)
    X = np.empty((table.num_rows, table.num_columns), order="F")
    for j, column in enumerate(table.columns):
        X[:, j] = column.to_numpy()
elif what == "numpy":
    X = np.load(path)
elif what == "csv":
    CsvDataset(path=path).load(np.random.default_rng(0))
elif what.startswith("npy"):
    bundle = NpzDataset(path=path, in_memory=what == "npy-read").load(np.random.default_rng(0))
elif what.startswith("epoch"):
    exp = Experiment.from_dict({
        "name": "bench-data", "data": {"name": "npz", "path": path, "in_memory": what == "epoch-read",
                                        "validation_split": 0},
        "model": {"layers": [{"units": 16, "activation": "relu"}, {"units": 1}]},
        "loss": {"name": "mse"}, "optimizer": {"name": "sgd", "lr": 0.01},
        "training": {"epochs": 1, "batch_size": 256}, "tracking": {"enabled": False}})
    run = prepare_run(exp, track=False)
    t0 = time.perf_counter()
    run.trainer.fit()
seconds = time.perf_counter() - t0
print(json.dumps({"s": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

KINDS = {"csv": ("csv", "arrow"), "npy": ("npy-mapped", "npy-read", "numpy", "epoch-mapped", "epoch-read")}


def generate(folder: Path, rows: int) -> dict[str, Path]:
    paths = {"csv": folder / f"d{rows}.csv", "npy": folder / f"d{rows}.npy"}
    if not paths["npy"].exists():
        rng = np.random.default_rng(rows)
        data = rng.normal(size=(rows, COLUMNS + 1)).astype(np.float32)
        np.save(paths["npy"], data)
        with open(paths["csv"], "w") as fh:
            fh.write(",".join([f"x{i}" for i in range(COLUMNS)] + ["y"]) + "\n")
            for start in range(0, rows, 100_000):
                np.savetxt(fh, data[start : start + 100_000], delimiter=",", fmt="%.7g")
    return paths


def measure(what: str, path: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, what, str(path)], capture_output=True, text=True, env=env, check=True
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="10^4 to 10^6 rows, and 10^7 where memory allows")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="*", help="rows to measure (overrides the defaults)")
    args = parser.parse_args()
    sizes = args.sizes or [10**4, 10**5] + ([10**6, 10**7] if args.full else [])
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    sizes = [n for n in sizes if n * (COLUMNS + 1) * 4 * 8 < available]  # room for the CSV read beside it
    results: dict[str, dict[int, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        tiny = generate(Path(tmp), 100)
        base = {what: measure(what, tiny[fmt])["rss_mb"] for fmt, kinds in KINDS.items() for what in kinds}
        for rows in sizes:
            paths = generate(Path(tmp), rows)
            runs: dict[str, list[dict[str, float]]] = {}
            for _ in range(args.rounds):
                for fmt, kinds in KINDS.items():
                    for what in kinds:
                        runs.setdefault(what, []).append(measure(what, paths[fmt]))
            for what, got in runs.items():
                times = [g["s"] for g in got]
                results.setdefault(what, {})[rows] = {
                    "median": statistics.median(times),
                    "min": min(times),
                    "max": max(times),
                    "mem_mb": max(g["rss_mb"] for g in got) - base[what],
                }
    print("| what | rows | median s | min s | max s | peak MB above a 100-row file |\n|---|---|---|---|---|---|")
    for what, by_rows in results.items():
        for rows, r in by_rows.items():
            print(f"| {what} | {rows:,} | {r['median']:.3f} | {r['min']:.3f} | {r['max']:.3f} | {r['mem_mb']:.0f} |")
    print("\n| what | time exponent | memory exponent |\n|---|---|---|")
    for what, by_rows in results.items():
        (n0, a), (n1, b) = min(by_rows.items()), max(by_rows.items())
        if n1 > n0:
            span = math.log(n1 / n0)
            t_exp = math.log(b["median"] / a["median"]) / span
            m_exp = math.log(max(b["mem_mb"], 1) / max(a["mem_mb"], 1)) / span
            print(f"| {what} | {t_exp:.2f} | {m_exp:.2f} |")


if __name__ == "__main__":
    main()
