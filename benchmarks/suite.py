"""The benchmark suite: backprop against the numpy floor, scikit-learn and PyTorch on W1-W5 (and W2bn).

    python benchmarks/suite.py [--rounds 7] [--workloads W1,W2] [--no-torch] [--smoke] [--json PATH]

(`make bench` runs it.) Workloads W1-W5 are those of research/performance.md, W2bn is W2 with gelu and
batch_norm against a hand-written floor of its own (issue 14; see workloads.py and floor_norm.py); the
systems run interleaved, round by round, after one warm-up round that is not counted, on one BLAS thread
(threadpoolctl) with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset. How each system's time per epoch is taken
is in systems.py. Also measured: the float32 one-thread GEMM peak (a 2048 x 2048 matmul, best of 10, before
and after the rounds), the start-up wall time of two `backprop` commands, and the peak memory of a run
against a 10x longer one (both in probes.py).

The result is printed as a Markdown table and written as JSON (default benchmarks/results/latest.json plus
a time-stamped copy); `benchmarks/plot.py` draws it. `--smoke` runs everything at tiny sizes in seconds,
for the test suite: its timings mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
from probes import MEMORY_TARGET, STARTUP_TARGETS, measure_memory, measure_startup, memory_probe  # noqa: E402
from systems import RUNNERS, run_backprop, torch_available  # noqa: E402
from workloads import WORKLOADS, Workload, make_data  # noqa: E402

OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
REEXEC_MARK = "BACKPROP_BENCH_REEXECUTED"
TRACKING_TARGET = 1.05


def reexec_without_openblas_overrides() -> None:
    """A wrong OpenBLAS core type slows numpy by 30 % to 4x (research/performance.md): measure without it.

    OpenBLAS reads the variables when it loads, so the process starts again without them.
    """
    if any(k in os.environ for k in OPENBLAS_OVERRIDES):
        for key in OPENBLAS_OVERRIDES:
            os.environ.pop(key, None)
        os.environ[REEXEC_MARK] = "1"
        os.execv(sys.executable, [sys.executable, *sys.argv])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="measured rounds (after one warm-up round)")
    parser.add_argument("--workloads", default="W1,W2,W2bn,W3,W4,W5", help="comma-separated workload ids")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if it is installed")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 1 round, no warm-up: checks it runs")
    parser.add_argument("--json", type=Path, help="write the results here (default benchmarks/results/)")
    parser.add_argument("--startup-runs", type=int, default=7, help="runs of each start-up command")
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-probe", type=int, metavar="EPOCHS", help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.startup_runs = 1, 1
    return args


# -- the hardware and the environment ----------------------------------------------------------------------


def gemm_peak(n: int, repeats: int = 10) -> float:
    """float32 GFLOP/s of an n x n matmul on the current thread limit, best of `repeats`."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    np.matmul(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best / 1e9


def environment() -> dict[str, Any]:
    import sklearn
    from threadpoolctl import threadpool_info

    libs = [
        {k: info.get(k) for k in ("user_api", "internal_api", "version", "architecture", "num_threads", "filepath")}
        for info in threadpool_info()
    ]
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
        "threadpools": libs,
        "openblas_overrides_removed": os.environ.get(REEXEC_MARK) == "1",
        "openblas_overrides_set": [k for k in OPENBLAS_OVERRIDES if k in os.environ],
        "loadavg": os.getloadavg(),
    }
    if "torch" in sys.modules:
        env["torch"] = sys.modules["torch"].__version__
    import framework

    # Which backprop was measured: the checkout's commit, and whether its framework/plugins had local changes.
    source = Path(framework.__file__).resolve().parent.parent
    env["backprop_source"] = str(source)
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "framework", "plugins"], capture_output=True, text=True)
    env["git_commit"] = commit.stdout.strip() or None
    env["framework_modified"] = bool(dirty.stdout.strip()) if source == ROOT else None
    return env


@contextmanager
def mlflow_store() -> Any:
    """A fresh local SQLite MLflow store for the tracked runs, artifacts in the same temporary directory."""
    old_uri, old_cwd = os.environ.get("MLFLOW_TRACKING_URI"), os.getcwd()
    with tempfile.TemporaryDirectory(prefix="backprop-bench-") as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        os.chdir(tmp)  # MLflow puts a new experiment's artifacts under ./mlruns
        try:
            yield tmp
        finally:
            os.chdir(old_cwd)
            if old_uri is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = old_uri


# -- training speed ----------------------------------------------------------------------------------------


def system_names(wl: Workload, with_torch: bool) -> list[str]:
    names = ["backprop", "floor", *(p for p in wl.peers if p != "torch" or with_torch)]
    if wl.tracked:
        names.append("backprop_tracked")
    return names


def run_system(name: str, wl: Workload, data: Any, init: Any) -> Any:
    if name == "backprop_tracked":
        return run_backprop(wl, data, init, tracked=True)
    return RUNNERS[name](wl, data, init)


def measure_training(
    workloads: list[Workload], rounds: int, with_torch: bool, log: Any, warm_up: bool = True
) -> dict[str, Any]:
    """{workload id: {system: {"per_epoch_s": [per round], "final_loss": float}}}, interleaved by round.

    A system that fails is reported (`error`) and left out of the following rounds; the others go on.
    """
    data = {wl.id: make_data(wl) for wl in workloads}
    init: dict[str, Any] = {}
    times: dict[str, dict[str, list[float]]] = {wl.id: {} for wl in workloads}
    losses: dict[str, dict[str, float]] = {wl.id: {} for wl in workloads}
    errors: dict[str, dict[str, str]] = {wl.id: {} for wl in workloads}
    with mlflow_store():
        for r in range(-1 if warm_up else 0, rounds):  # round -1 warms every system up (imports, caches, MLflow)
            for wl in workloads:
                for name in system_names(wl, with_torch):
                    if name in errors[wl.id]:
                        continue
                    try:
                        run = run_system(name, wl, data[wl.id], init.get(wl.id))
                    except Exception as exc:
                        errors[wl.id][name] = f"{type(exc).__name__}: {exc}"
                        log(f"{wl.id} {name} failed: {errors[wl.id][name]}")
                        continue
                    if name == "backprop" and wl.id not in init:
                        init[wl.id] = run.extra["initial"]  # every other system starts from these weights
                    if r >= 0:
                        times[wl.id].setdefault(name, []).append(run.per_epoch_s)
                        losses[wl.id][name] = run.final_loss
            if r >= 0:
                log(f"round {r + 1}/{rounds}: " + "; ".join(f"{w}: {_brief(times[w])}" for w in times))
    return {
        w: {
            "systems": {
                s: {"per_epoch_s": t, "final_loss": losses[w][s]} for s, t in times[w].items() if s not in errors[w]
            },
            "errors": errors[w],
        }
        for w in times
    }


def _brief(per_system: dict[str, list[float]]) -> str:
    if "floor" not in per_system:
        return "no floor"
    floor = per_system["floor"][-1]
    return " ".join(f"{s} {t[-1] / floor:.2f}x" for s, t in per_system.items() if s != "floor")


# -- start-up and memory -----------------------------------------------------------------------------------


def summarise(wl: Workload, systems: dict[str, Any], peak_gflops: float) -> dict[str, Any]:
    floor = systems["floor"]["per_epoch_s"] if "floor" in systems else [float("nan")] * len(systems["backprop"])
    rows = {}
    for name, s in systems.items():
        t = s["per_epoch_s"]
        med = statistics.median(t)
        ratios = [a / b for a, b in zip(t, floor, strict=True)]
        rows[name] = {  # ratio_to_floor: the median of the per-round ratios
            **s,
            "median_s": med,
            "us_per_step": med / wl.steps_per_epoch * 1e6,
            "ratio_to_floor": statistics.median(ratios),
            "ratio_range": [min(ratios), max(ratios)],
            "gflops": wl.flops_per_epoch / med / 1e9,
            "peak_fraction": wl.flops_per_epoch / med / 1e9 / peak_gflops,
        }
    return rows


def per_round(rows: dict[str, Any], num: str, den: str) -> float:
    return statistics.median(a / b for a, b in zip(rows[num]["per_epoch_s"], rows[den]["per_epoch_s"], strict=True))


def check_targets(wl: Workload, rows: dict[str, Any]) -> list[dict[str, Any]]:
    if "backprop" not in rows or "floor" not in rows:
        return [_check(wl.id, "backprop / floor (a system failed)", float("nan"), "<=", wl.targets["floor"])]
    checks = []
    floor_ratio = rows["backprop"]["ratio_to_floor"]
    checks.append(_check(wl.id, "backprop / floor", floor_ratio, "<=", wl.targets["floor"]))
    for peer in ("sklearn", "torch"):
        if peer in wl.targets and peer in rows:
            speedup = per_round(rows, peer, "backprop")
            checks.append(_check(wl.id, f"{peer} / backprop (x faster)", speedup, ">=", wl.targets[peer]))
    if "peak" in wl.targets:
        checks.append(
            _check(wl.id, "backprop % of GEMM peak", rows["backprop"]["peak_fraction"], ">=", wl.targets["peak"])
        )
    if "backprop_tracked" in rows:
        ratio = per_round(rows, "backprop_tracked", "backprop")
        checks.append(_check(wl.id, "tracking on / off", ratio, "<=", TRACKING_TARGET))
    return checks


def _check(where: str, what: str, value: float, op: str, target: float) -> dict[str, Any]:
    met = value <= target if op == "<=" else value >= target
    return {"where": where, "what": what, "value": value, "op": op, "target": target, "met": bool(met)}


SYSTEM_LABELS = {
    "backprop": "backprop",
    "backprop_tracked": "backprop + MLflow",
    "floor": "numpy floor",
    "sklearn": "scikit-learn",
    "torch": "PyTorch eager",
}


def table(result: dict[str, Any]) -> str:
    lines = [
        "| wl | system | ms/epoch | µs/step | × floor | (rounds) | GFLOP/s | % GEMM peak | final loss |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for wl_id, rows in result["workloads"].items():
        for name, row in rows["systems"].items():
            lines.append(
                f"| {wl_id} | {SYSTEM_LABELS[name]} | {row['median_s'] * 1e3:.3f} | {row['us_per_step']:.1f} | "
                f"{row['ratio_to_floor']:.2f} | {row['ratio_range'][0]:.2f}–{row['ratio_range'][1]:.2f} | "
                f"{row['gflops']:.2f} | {row['peak_fraction'] * 100:.1f} % | "
                f"{row['final_loss']:.4g} |"
            )
    return "\n".join(lines)


def targets_table(checks: list[dict[str, Any]]) -> str:
    lines = ["| where | what | measured | target | |", "|---|---|---:|---:|---|"]
    for c in checks:
        value = f"{c['value'] * 100:.0f} %" if "GEMM peak" in c["what"] else f"{c['value']:.3g}"
        target = f"{c['target'] * 100:.0f} %" if "GEMM peak" in c["what"] else f"{c['target']:g}"
        lines.append(
            f"| {c['where']} | {c['what']} | {value} | {c['op']} {target} | {'met' if c['met'] else 'MISSED'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.memory_probe is not None:
        probe = memory_probe(args.memory_probe, args.traced)
        print(json.dumps(probe))
        return probe
    from threadpoolctl import threadpool_limits

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    wanted = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    workloads = [w.smoke() if args.smoke else w for w in WORKLOADS if w.id.upper() in wanted]
    if not workloads:
        raise SystemExit(f"no workload among {wanted}; choose from {[w.id for w in WORKLOADS]}")
    with_torch = not args.no_torch and torch_available()
    # Load every library with a thread pool before limiting them: threadpoolctl limits only what is loaded.
    import sklearn.datasets
    import sklearn.neural_network  # noqa: F401

    started = time.time()
    with threadpool_limits(1):
        env = environment()
        peak = gemm_peak(256 if args.smoke else 2048)
        log(f"float32 GEMM peak, 1 thread: {peak:.1f} GFLOP/s; PyTorch {'included' if with_torch else 'left out'}")
        training = measure_training(workloads, args.rounds, with_torch, log, warm_up=not args.smoke)
        peak_after = gemm_peak(256 if args.smoke else 2048)
    result: dict[str, Any] = {
        "suite": "backprop benchmarks (issue 6)",
        "smoke": args.smoke,
        "rounds": args.rounds,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "duration_s": None,
        "environment": env,
        "gemm_peak_gflops": {"before": peak, "after": peak_after, "used": max(peak, peak_after)},
        "workloads": {},
        "targets": [],
    }
    for wl in workloads:
        rows = summarise(wl, training[wl.id]["systems"], result["gemm_peak_gflops"]["used"])
        result["workloads"][wl.id] = {
            "description": wl.description,
            "n_samples": wl.n_samples,
            "batch": wl.batch,
            "epochs": wl.epochs,
            "lr": wl.lr,
            "steps_per_epoch": wl.steps_per_epoch,
            "n_parameters": wl.n_parameters,
            "flops_per_epoch": wl.flops_per_epoch,
            "systems": rows,
            "errors": training[wl.id]["errors"],
        }
        result["targets"].extend(check_targets(wl, rows))
    write_json(result, args.json)  # the training results are safe even if what follows fails
    if not args.skip_startup:
        result["startup"] = measure_startup(args.startup_runs)
        for key, s in result["startup"].items():
            wall = s.get("median_s", float("nan"))  # nan (missed) when the command failed
            result["targets"].append(_check("start-up", s["command"] + " (s)", wall, "<=", STARTUP_TARGETS[key]))
    if not args.skip_memory:
        result["memory"] = memory = measure_memory(args.smoke)
        result["targets"].append(
            _check("memory", "10x epochs / 1x, traced peak", memory["traced_ratio"], "<=", MEMORY_TARGET)
        )
        result["targets"].append(
            _check("memory", "10x epochs / 1x, peak RSS", memory["rss_ratio"], "<=", MEMORY_TARGET)
        )
    result["duration_s"] = time.time() - started
    result["table"] = table(result)
    result["targets_table"] = targets_table(result["targets"])
    write_json(result, args.json)
    print(result["table"])
    print()
    print(result["targets_table"])
    return result


def write_json(result: dict[str, Any], path: Path | None) -> None:
    if path is None:
        results = HERE / "results"
        results.mkdir(exist_ok=True)
        stamp = result["started"].replace(":", "").replace("-", "")
        path = results / ("smoke.json" if result["smoke"] else "latest.json")
        if not result["smoke"]:
            (results / f"suite-{stamp}.json").write_text(json.dumps(result, indent=2))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"results written to {path}", file=sys.stderr)


if __name__ == "__main__":
    reexec_without_openblas_overrides()
    main()
