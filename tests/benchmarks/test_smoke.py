"""The benchmark suite at tiny sizes: it runs end to end and its result is well formed (no timing checks)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

import suite
from systems import torch_available


@pytest.mark.slow
def test_smoke_run_covers_every_workload_and_system(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    result = suite.main(["--smoke", "--json", str(out)])

    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert list(result["workloads"]) == ["W1", "W2", "W2bn", "W3", "W4", "W5"]
    for wl_id, workload in result["workloads"].items():
        assert workload["errors"] == {}, wl_id
        peers = {"sklearn"} | ({"torch"} if torch_available() else set())
        expected = {"backprop", "floor"} | (peers if wl_id != "W2bn" else set())  # W2bn: against the floor only
        if wl_id in {"W2", "W3"}:
            expected.add("backprop_tracked")
        assert set(workload["systems"]) == expected, wl_id
        for name, row in workload["systems"].items():
            assert len(row["per_epoch_s"]) == result["rounds"] == 1, (wl_id, name)
            # Finite, not positive: scikit-learn's time is a difference of two fits, noisy at this size.
            for key in ("median_s", "ratio_to_floor", "gflops", "peak_fraction", "final_loss"):
                assert math.isfinite(row[key]), (wl_id, name, key)
        assert workload["systems"]["floor"]["ratio_to_floor"] == 1.0
    assert set(result["startup"]) == {"help", "run_xor"}
    assert result["memory"]["runs"][1]["epochs"] == 10 * result["memory"]["runs"][0]["epochs"]
    assert result["targets"] and all(isinstance(t["met"], bool) for t in result["targets"])
    assert any(lib["user_api"] == "blas" for lib in result["environment"]["threadpools"])
    assert "| W5 | numpy floor |" in result["table"]


@pytest.mark.slow
def test_the_tracking_benchmark_runs_and_reports_every_mode() -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_tracking.py"), "--rounds", "1", "--epochs", "5"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split("  ")[0].strip(): line for line in done.stdout.splitlines()[3:]}
    assert set(rows) == {"off", "per-epoch", "every step", "every 4"}, done.stdout


@pytest.mark.slow
def test_the_command_benchmark_times_commands_against_the_baseline(tmp_path: Path) -> None:
    import bench_cli

    result = bench_cli.main(
        ["--rounds", "1", "--only", "--help,run xor --no-track", "--json", str(tmp_path / "c.json")]
    )
    assert json.loads((tmp_path / "c.json").read_text()) == json.loads(json.dumps(result))
    rows = {row["name"]: row for row in result["commands"]}
    assert set(rows) == {"--help", "run xor --no-track"}
    for row in rows.values():
        assert (
            row["wall_s"]["median"] > 0
            and row["ratio"]["median"] == row["wall_s"]["median"] / row["baseline_s"]["median"]
        )
        assert isinstance(row["met"], bool) and row["target_s"] > 0
    assert "| `backprop --help` |" in result["table"]
