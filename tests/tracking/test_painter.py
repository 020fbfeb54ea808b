"""The painter process (plugins/painter.py): a run's pictures drawn on the other core, never lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from plugins import painter

PNG = b"\x89PNG\r\n\x1a\n"


def jobs() -> list[painter.Job]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=60)
    proba = rng.dirichlet(np.ones(3), size=60)
    return [
        painter.curves_job([0, 1, 2], {"train_loss": [1.0, 0.1, 0.01], "val_loss": [1.2, float("nan"), 0.05]}),
        painter.gradient_flow_job(
            ["layer_0.dense"],
            {f"{f}/layer_0.dense": [1.0, 0.5, 0.25] for f in ("grad_norm", "weight_norm", "update_ratio")},
            [0, 1, 2],
            "gradient_flow.png",
        ),
        ("classification", {"which": "validation"}, {"y": y, "proba": proba}),
    ]


EXPECTED = {
    "training_curves.png",
    "gradient_flow.png",
    "confusion_matrix.png",
    "classes.csv",
    "classes.png",
    "roc.png",
    "precision_recall.png",
}


def test_the_painter_process_draws_every_picture_of_its_jobs(tmp_path: Path) -> None:
    process = painter.Painter()
    try:
        assert process.submit(jobs(), tmp_path)
        files = process.answer(timeout=60)
        assert files is not None and {f.name for f in files} == EXPECTED
        assert all(f.read_bytes().startswith(PNG) for f in files if f.suffix == ".png")
        assert process.ready and process.alive()  # it said it was ready, and stays for the next run
    finally:
        process.stop()


def test_a_painter_that_dies_leaves_the_pictures_to_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = painter.Painter()
    monkeypatch.setattr(painter, "_shared", dead)
    assert dead.submit(jobs(), tmp_path)
    dead.process.kill()
    dead.process.wait()
    pending = painter.Pending(jobs(), [], tmp_path, dead)
    assert {f.name for f in pending.wait()} == EXPECTED  # drawn here instead
    assert painter._shared is None  # the next run starts a new one


def test_a_painter_still_starting_takes_every_picture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    starting = painter.Painter()  # not ready yet: python and matplotlib are still loading
    monkeypatch.setattr(painter, "_shared", starting)
    try:
        assert not starting.is_ready()
        pending = painter.submit(jobs(), tmp_path)
        assert pending.painter is starting and pending.own == []  # the run draws none itself
        assert {f.name for f in pending.wait()} == EXPECTED
    finally:
        starting.stop()


def test_split_gives_each_process_about_half_the_drawing() -> None:
    first, second = painter.split(jobs())
    assert [j[0] for j in first] == ["classification"]  # 4 pictures, against 1 + 1
    assert sorted(j[0] for j in second) == ["curves", "gradient_flow"]


# Run in a fresh interpreter: the painter forks, which the test process (threads of pytest-xdist) should not.
FORKED = """
import json, os, sys
from pathlib import Path
from plugins import painter

directory = Path(sys.argv[1])
parent = os.getpid()

def draw(job, where):
    if sys.argv[2] == "crash" and os.getpid() != parent:
        os._exit(3)  # the fork dies without a word
    path = where / f"{job[0]}-{os.getpid()}.txt"
    path.write_text(job[0])
    return [path]

painter.draw = draw
jobs = [(kind, {}, {}) for kind in ("classification", "regression", "curves", "gradient_flow")]
fork = sys.argv[2] != "busy"  # a busy machine: the painter does not fork
print(json.dumps({"parent": parent, "reply": painter._draw_forked(jobs, directory, fork=fork)}))
"""


@pytest.mark.parametrize("fork", ["works", "crash", "busy"])
def test_the_painter_draws_in_two_processes_and_redraws_what_a_dead_fork_did_not(tmp_path: Path, fork: str) -> None:
    root = Path(painter.__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", FORKED, str(tmp_path), fork], capture_output=True, text=True, timeout=60, cwd=root
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    files = [Path(f) for f in out["reply"]["files"]]
    kinds = sorted(f.name.split("-")[0] for f in files)
    assert kinds == ["classification", "curves", "gradient_flow", "regression"]  # each job drawn exactly once
    drawers = {int(f.stem.split("-")[1]) for f in files}
    if fork == "works":
        assert len(drawers) == 2 and out["parent"] in drawers  # both processes drew
    else:  # crash: the fork's share drawn again by the painter itself; busy: no fork at all
        assert drawers == {out["parent"]}
    assert out["reply"]["problems"] == []


def test_idle_cores_between_two_readings_of_the_machines_clock_ticks() -> None:
    # (idle ticks, all ticks, cores): 2 cores, 400 ticks pass, 200 of them idle: one core idle on average.
    assert painter.idle_cores((100, 1000, 2), (300, 1400, 2)) == pytest.approx(1.0)
    assert painter.idle_cores((100, 1000, 4), (130, 1400, 4)) == pytest.approx(4 * 30 / 400)
    assert painter.idle_cores(None, (300, 1400, 2)) is None  # no /proc/stat: fork as before
    assert painter.idle_cores((100, 1000, 2), (100, 1000, 2)) is None  # no time passed


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="Linux's /proc/stat")
def test_cpu_times_reads_this_machines_clock_ticks_and_cores() -> None:
    first = painter.cpu_times()
    end = time.monotonic() + 0.2
    while time.monotonic() < end:  # keep one core busy for a moment: the ticks move on
        pass
    second = painter.cpu_times()
    assert first is not None and second is not None
    assert second[2] == first[2] >= 1 and len(os.sched_getaffinity(0)) <= second[2]
    assert 0 <= second[0] - first[0] <= second[1] - first[1] and second[1] > first[1]
    idle = painter.idle_cores(first, second)
    assert idle is not None and 0 <= idle <= second[2] - 0.5  # this test's own core was busy


def test_the_warm_up_entry_point_starts_the_painter_unless_tracking_is_disabled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from framework import warmup

    monkeypatch.setattr(painter, "_shared", None)
    assert warmup.start(["tracking"]) == []  # `--disable-plugin tracking`: no painter
    assert painter._shared is None
    assert warmup.start() == ["tracking"]  # installed by backprop's own pyproject.toml
    started = painter._shared
    try:
        assert started is not None and started.alive()
        assert warmup.start() == ["tracking"] and painter._shared is started  # one painter per process
    finally:
        if started is not None:
            started.stop()


UNTRACKED = """
import sys
import time
from framework.cli import app
try:
    app(["run", sys.argv[1], "--no-track", "--quiet"])
except SystemExit:
    pass
module = sys.modules.get("plugins.painter")  # imported with the tracking plugin, which every run loads
print("PAINTER", module is not None and module._shared is not None)
"""


def test_an_untracked_run_starts_no_painter() -> None:
    root = Path(painter.__file__).resolve().parents[1]
    xor = root / "experiments" / "xor.toml"
    done = subprocess.run([sys.executable, "-c", UNTRACKED, str(xor)], capture_output=True, text=True, timeout=120)
    assert "PAINTER False" in done.stdout, done.stdout + done.stderr
