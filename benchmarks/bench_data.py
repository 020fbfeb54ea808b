"""Data at scale (issue 21): load time, one epoch and peak memory against rows, beside Arrow and numpy.

For each size (rows x 20 float features + a target) a CSV and an .npy file are generated once, then each
measurement runs in a fresh process (so peak memory, ru_maxrss, is its own), `--rounds` times, alternating:

- `csv`: backprop's `csv` dataset load (features as float64, the dataset's default; `csv-f32`: as float32, as a
  float32 experiment loads them); `arrow`: `pyarrow.csv.read_csv` plus the conversion to one numpy array.
- `parquet` / `parquet-f32`: backprop's `parquet` dataset load, likewise; `feather-mapped`: the `feather` dataset
  with `in_memory = false` (an uncompressed file, its columns left in the map).
- `npy-mapped` / `npy-read`: the `npz` dataset with `in_memory = false` / `true`; `numpy`: `numpy.load`.
- `epoch-mapped` / `epoch-read` / `epoch-feather`: one epoch of a 20-16-1 relu network (SGD, batch 256, MSE)
  on the .npy mapped or read, or on the mapped Feather file; `epoch-floor`: the same epoch by the hand-written
  numpy floor (benchmarks/floor.py) on the arrays of `numpy.load`.

Peak memory is quoted above the same process loading a 100-row file: the process's own memory (the peak of
`RssAnon`, sampled every 2 ms), and the peak resident set (`ru_maxrss`), which also counts the pages of a mapped
file that were read (page cache, which the kernel reclaims when memory is short). The exponent is the slope of
log(time) and log(memory) against log(rows) between the smallest and largest size.

    python benchmarks/bench_data.py               # 10^4 and 10^5 rows, 3 rounds
    python benchmarks/bench_data.py --full        # 10^4 .. 10^6, and 10^7 where memory allows
    python benchmarks/bench_data.py --sizes 8000000 --formats npy    # the issue's 8-million-row .npy
    python benchmarks/bench_data.py --sizes 5000000 --formats npy --kinds epoch-mapped   # one measurement
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
import json, resource, sys, threading, time
import numpy as np

peak_anon = [0]
def watch():  # RssAnon: the memory the process holds itself (mapped file pages are the page cache's)
    while True:
        with open("/proc/self/status") as fh:
            kb = next(int(line.split()[1]) for line in fh if line.startswith("RssAnon:"))
        peak_anon[0] = max(peak_anon[0], kb)
        time.sleep(0.002)
threading.Thread(target=watch, daemon=True).start()
import pyarrow.csv as pacsv
from framework import Experiment
from framework.build import prepare_run
from plugins.file_datasets import CsvDataset, NpzDataset
from plugins.columnar_datasets import FeatherDataset, ParquetDataset
sys.path.insert(0, "benchmarks")
from floor import FloorMLP
what, path = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()  # the imports are not timed: start-up is bench_cli.py's
if what == "arrow":
    table = pacsv.read_csv(path)
    X = np.empty((table.num_rows, table.num_columns), order="F")
    for j, column in enumerate(table.columns):
        X[:, j] = column.to_numpy()
elif what == "numpy":
    X = np.load(path)
elif what in ("csv", "csv-f32", "parquet", "parquet-f32"):
    dataset = (CsvDataset if what.startswith("csv") else ParquetDataset)(path=path)
    if what.endswith("-f32"):
        dataset.dtype = np.dtype(np.float32)  # as a float32 experiment loads it (framework.build)
    dataset.load(np.random.default_rng(0))
elif what == "feather-mapped":
    FeatherDataset(path=path, in_memory=False).load(np.random.default_rng(0))
elif what.startswith("npy"):
    bundle = NpzDataset(path=path, in_memory=what == "npy-read").load(np.random.default_rng(0))
elif what == "epoch-floor":
    data = np.load(path)
    X, T = np.ascontiguousarray(data[:, :-1]), np.ascontiguousarray(data[:, -1:])
    floor = FloorMLP([X.shape[1], 16, 1], "relu", 0.01, 0.0, np.float32, np.random.default_rng(0), loss="mse")
    t0 = time.perf_counter()
    floor.epoch(X, T, 256, np.random.default_rng(1))
elif what.startswith("epoch"):
    data = {"name": "feather", "path": path, "in_memory": False} if what == "epoch-feather" else {
        "name": "npz", "path": path, "in_memory": what == "epoch-read"}
    exp = Experiment.from_dict({
        "name": "bench-data", "data": {**data, "validation_split": 0},
        "model": {"layers": [{"units": 16, "activation": "relu"}, {"units": 1}]},
        "loss": {"name": "mse"}, "optimizer": {"name": "sgd", "lr": 0.01},
        "training": {"epochs": 1, "batch_size": 256}, "tracking": {"enabled": False}})
    run = prepare_run(exp, track=False)
    t0 = time.perf_counter()
    run.trainer.fit()
seconds = time.perf_counter() - t0
time.sleep(0.01)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"s": seconds, "rss_mb": rss, "anon_mb": peak_anon[0] / 1024}))
"""

KINDS = {
    "csv": ("csv", "csv-f32", "arrow"),
    "parquet": ("parquet", "parquet-f32"),
    "feather": ("feather-mapped", "epoch-feather"),
    "npy": ("npy-mapped", "npy-read", "numpy", "epoch-mapped", "epoch-read", "epoch-floor"),
}


def generate(folder: Path, rows: int, formats: list[str]) -> dict[str, Path]:
    """The table in each format, written once: rows x (20 float32 features + a float32 target)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    paths = {fmt: folder / f"d{rows}.{fmt}" for fmt in formats}
    rng = np.random.default_rng(rows)
    data = None
    for fmt, path in paths.items():
        if path.exists():
            continue
        if data is None:
            data = rng.normal(size=(rows, COLUMNS + 1)).astype(np.float32)
        if fmt == "npy":
            np.save(path, data)
            continue
        table = pa.table({(f"x{i}" if i < COLUMNS else "y"): data[:, i] for i in range(COLUMNS + 1)})
        if fmt == "csv":
            pacsv.write_csv(table, path)
        elif fmt == "parquet":
            pq.write_table(table, path)
        else:
            feather.write_feather(table, path, compression="uncompressed")
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
    parser.add_argument("--formats", nargs="*", choices=list(KINDS), default=list(KINDS), help="formats to measure")
    parser.add_argument("--kinds", nargs="*", help="only these measurements (e.g. epoch-mapped csv)")
    args = parser.parse_args()
    kinds = {fmt: tuple(k for k in KINDS[fmt] if not args.kinds or k in args.kinds) for fmt in args.formats}
    kinds = {fmt: names for fmt, names in kinds.items() if names}
    sizes = args.sizes or [10**4, 10**5] + ([10**6, 10**7] if args.full else [])
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    sizes = [n for n in sizes if n * (COLUMNS + 1) * 4 * 8 < available]  # room for the CSV read beside it
    results: dict[str, dict[int, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        tiny = generate(Path(tmp), 100, args.formats)
        base = {what: measure(what, tiny[fmt]) for fmt, names in kinds.items() for what in names}
        for rows in sizes:
            paths = generate(Path(tmp), rows, args.formats)
            runs: dict[str, list[dict[str, float]]] = {}
            for _ in range(args.rounds):
                for fmt, names in kinds.items():
                    for what in names:
                        runs.setdefault(what, []).append(measure(what, paths[fmt]))
            for what, got in runs.items():
                times = [g["s"] for g in got]
                results.setdefault(what, {})[rows] = {
                    "median": statistics.median(times),
                    "min": min(times),
                    "max": max(times),
                    "mem_mb": statistics.median(g["anon_mb"] for g in got) - base[what]["anon_mb"],
                    "mem_min": min(g["anon_mb"] for g in got) - base[what]["anon_mb"],
                    "mem_max": max(g["anon_mb"] for g in got) - base[what]["anon_mb"],
                    "rss_mb": statistics.median(g["rss_mb"] for g in got) - base[what]["rss_mb"],
                }
    print(
        "| what | rows | median s | min s | max s | peak MB above a 100-row file (own memory: median, min-max) "
        "| bytes/row | peak RSS MB (with mapped file pages) |\n|---|---|---|---|---|---|---|---|"
    )
    for what, by_rows in results.items():
        for rows, r in by_rows.items():
            print(
                f"| {what} | {rows:,} | {r['median']:.3f} | {r['min']:.3f} | {r['max']:.3f} | {r['mem_mb']:.0f} "
                f"({r['mem_min']:.0f}-{r['mem_max']:.0f}) | {r['mem_mb'] * 2**20 / rows:.1f} | {r['rss_mb']:.0f} |"
            )
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
