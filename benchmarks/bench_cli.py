"""The wall time of the commands a user waits for, as whole processes (issue 15).

    python benchmarks/bench_cli.py [--rounds 7] [--json PATH] [--only NAME,...]

Each command of `COMMANDS` runs as a new process, exactly as a user types it, in a working directory of its
own whose MLflow store the warm-up round creates (so the tracked runs find "the local store already
created"). Rounds are interleaved: in every round, each command runs right after a baseline process,
`python -c "import numpy"` (the least any command can cost), so the ratio command / baseline of each pair
cancels most of the machine's slow phases; the report gives, per command, the median wall time with its
min and max, and the median ratio with its min and max, against the target of the issue.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"


@dataclass(frozen=True)
class Command:
    name: str
    args: list[str]
    target_s: float
    tracked: bool = False


COMMANDS = [
    Command("run xor --no-track", ["run", str(EXPERIMENTS / "xor.toml"), "--no-track", "--quiet"], 0.35),
    Command("run digits --no-track", ["run", str(EXPERIMENTS / "digits.toml"), "--no-track", "--quiet"], 0.70),
    Command("run digits (tracked)", ["run", str(EXPERIMENTS / "digits.toml"), "--quiet"], 2.0, tracked=True),
    Command("run house_prices (tracked)", ["run", str(EXPERIMENTS / "house_prices.toml"), "--quiet"], 1.8, True),
    Command("--help", ["--help"], 0.15),
]
BASELINE = [sys.executable, "-c", "import numpy"]


def backprop_command() -> list[str]:
    """The installed `backprop` script next to this interpreter (what a user runs), else the module."""
    script = Path(sys.executable).with_name("backprop")
    return [str(script)] if script.exists() else [sys.executable, "-m", "framework.cli"]


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-1000:]}")
    return elapsed


def machine() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for package in ("numpy", "mlflow", "pydantic", "typer"):
        try:
            from importlib.metadata import version

            versions[package] = version(package)
        except Exception:
            versions[package] = "?"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        **versions,
    }


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def measure(commands: list[Command], rounds: int, log: object = print) -> dict[str, object]:
    prefix = backprop_command()
    results: dict[str, dict[str, list[float]]] = {
        c.name: {"wall_s": [], "baseline_s": [], "ratio": []} for c in commands
    }
    with tempfile.TemporaryDirectory(prefix="backprop-bench-cli-") as tmp:
        folders = {}
        for i, command in enumerate(commands):
            folders[command.name] = folder = Path(tmp) / f"c{i}"
            folder.mkdir()
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # each folder's own store
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        for r in range(-1, rounds):  # round -1: warm caches, create each folder's MLflow store and experiment
            for command in commands:
                baseline = timed(BASELINE, folders[command.name], env)
                wall = timed([*prefix, *command.args], folders[command.name], env)
                if r >= 0:
                    row = results[command.name]
                    row["wall_s"].append(wall)
                    row["baseline_s"].append(baseline)
                    row["ratio"].append(wall / baseline)
            if r >= 0:
                log(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {v['wall_s'][-1]:.2f}s" for n, v in results.items()))
        for folder in folders.values():
            shutil.rmtree(folder, ignore_errors=True)
    rows = []
    for command in commands:
        row = results[command.name]
        wall = summary(row["wall_s"])
        rows.append(
            {
                "command": "backprop "
                + " ".join(a if not a.startswith(str(ROOT)) else a[len(str(ROOT)) + 1 :] for a in command.args),
                "name": command.name,
                "wall_s": wall,
                "baseline_s": summary(row["baseline_s"]),
                "ratio": summary(row["ratio"]),
                "target_s": command.target_s,
                "met": wall["median"] <= command.target_s,
                "runs": row["wall_s"],
            }
        )
    return {"machine": machine(), "rounds": rounds, "commands": rows}


def table(result: dict[str, object]) -> str:
    lines = [
        '| command | wall (median) | min-max | × `python -c "import numpy"` | min-max | target | |',
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in result["commands"]:  # type: ignore[attr-defined]
        wall, ratio = row["wall_s"], row["ratio"]
        lines.append(
            f"| `{row['command']}` | {wall['median']:.2f} s | {wall['min']:.2f}-{wall['max']:.2f} | "
            f"{ratio['median']:.1f} | {ratio['min']:.1f}-{ratio['max']:.1f} | <= {row['target_s']:.2f} s | "
            f"{'met' if row['met'] else 'NOT met'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="measured rounds (after one warm-up round)")
    parser.add_argument("--only", help="comma-separated command names (default: all)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    commands = COMMANDS
    if args.only:
        wanted = {w.strip() for w in args.only.split(",")}
        commands = [c for c in COMMANDS if c.name in wanted]
        if not commands:
            raise SystemExit(f"no command among {sorted(wanted)}; choose from {[c.name for c in COMMANDS]}")
    result = measure(commands, args.rounds, log=lambda m: print(m, file=sys.stderr, flush=True))
    result["table"] = table(result)
    print(result["table"])
    m = result["machine"]
    print(f"\n{m['date']}, {m['cpu']}, {m['cores']} cores, load {m['load_average']}, Python {m['python']}")  # type: ignore[index]
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
