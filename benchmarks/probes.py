"""The suite's whole-process probes: the start-up wall time of two `backprop` commands (with the heavy modules
they must not import) and the peak memory of a run against a 10x longer one (benchmarks/suite.py).
"""

from __future__ import annotations

import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HEAVY_MODULES = ("mlflow", "sklearn", "scipy", "torch", "pandas", "matplotlib", "sqlalchemy", "alembic")
STARTUP_TARGETS = {"help": 0.3, "run_xor": 1.0}
MEMORY_TARGET = 1.05


def backprop_executable() -> str:
    local = Path(sys.executable).with_name("backprop")
    found = str(local) if local.exists() else shutil.which("backprop")
    if found is None:
        raise RuntimeError("the backprop command is not installed; run `make bench` (it installs the project)")
    return found


_IMPORTS_PROBE = """
import sys
sys.argv = ["backprop", *sys.argv[1:]]
from framework.cli import main
try:
    main()
except SystemExit:
    pass
sys.stderr.write("\\nHEAVY:" + ",".join(m for m in {heavy!r} if m in sys.modules) + "\\n")
"""


def measure_startup(runs: int) -> dict[str, Any]:
    """Wall time of `backprop --help` and of a quiet untracked xor run (median of `runs`), and heavy imports."""
    exe = backprop_executable()
    commands = {"help": ["--help"], "run_xor": ["run", "experiments/xor.toml", "--no-track", "--quiet"]}
    out: dict[str, Any] = {}
    for key, argv in commands.items():
        walls = []
        for _ in range(runs):
            start = time.perf_counter()
            done = subprocess.run([exe, *argv], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            walls.append(time.perf_counter() - start)
            if done.returncode != 0:
                lines = done.stderr.strip().splitlines() or ["(no output)"]
                out[key] = {"command": f"backprop {' '.join(argv)}", "error": f"exit {done.returncode}: {lines[-1]}"}
                break
        if key in out:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            # A script file, not `python -c`: -c would put the working directory first on sys.path.
            script = Path(tmp) / "imports_probe.py"
            script.write_text(_IMPORTS_PROBE.format(heavy=HEAVY_MODULES))
            probe = subprocess.run([sys.executable, str(script), *argv], cwd=ROOT, capture_output=True, text=True)
        heavy = probe.stderr.rsplit("HEAVY:", 1)[-1].strip()
        out[key] = {
            "command": f"backprop {' '.join(argv)}",
            "wall_s": walls,
            "median_s": statistics.median(walls),
            "target_s": STARTUP_TARGETS[key],
            "heavy_imports": [m for m in heavy.split(",") if m],
        }
    return out


def memory_probe(epochs: int, traced: bool) -> dict[str, Any]:
    """Train W2 (tracking off) for `epochs` in this process; report its peak RSS, or tracemalloc's peak.

    tracemalloc's own bookkeeping inflates the RSS, so the two are measured in separate processes.
    """
    import tracemalloc
    from dataclasses import replace

    from systems import EpochTimer
    from workloads import WORKLOADS, experiment_dict

    from framework import Experiment, fit

    wl = replace(next(w for w in WORKLOADS if w.id == "W2"), epochs=epochs)
    if traced:
        tracemalloc.start()
    fit(Experiment.from_dict(experiment_dict(wl)), callbacks=[EpochTimer()], track=False)
    if traced:
        return {"epochs": epochs, "traced_peak_bytes": tracemalloc.get_traced_memory()[1]}
    return {"epochs": epochs, "max_rss_bytes": peak_rss_bytes()}


def peak_rss_bytes() -> int:
    """This process's peak resident set size since it started its program.

    Linux's `ru_maxrss` survives `exec`, so a child of a big process would report its parent's size; the
    high-water mark in /proc/self/status (VmHWM) belongs to the current program only.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux (bytes on macOS)


def measure_memory(smoke: bool) -> dict[str, Any]:
    """Peak memory of a W2 run and of a 10x longer one, each in a fresh process (RSS and traced separately)."""
    nan = float("nan")
    short = 2 if smoke else 20
    probes: dict[str, dict[str, Any]] = {}
    for epochs in (short, 10 * short):
        for traced in (False, True):
            cmd = [sys.executable, str(Path(__file__).resolve().parent / "suite.py"), "--memory-probe", str(epochs)]
            done = subprocess.run([*cmd, *(["--traced"] if traced else [])], cwd=ROOT, capture_output=True, text=True)
            if done.returncode != 0:
                lines = done.stderr.strip().splitlines() or ["(no output)"]
                return {"workload": "W2, tracking off", "error": lines[-1], "traced_ratio": nan, "rss_ratio": nan}
            probes.setdefault(str(epochs), {"epochs": epochs}).update(json.loads(done.stdout.strip().splitlines()[-1]))
    a, b = probes[str(short)], probes[str(10 * short)]
    return {
        "workload": "W2, tracking off",
        "runs": [a, b],
        "traced_ratio": b["traced_peak_bytes"] / a["traced_peak_bytes"],
        "rss_ratio": b["max_rss_bytes"] / a["max_rss_bytes"],
        "target_ratio": MEMORY_TARGET,
    }


# -- summary, targets, table -------------------------------------------------------------------------------
