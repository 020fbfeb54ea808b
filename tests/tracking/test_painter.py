"""The painter process (plugins/tracking/painter.py): a run's pictures drawn on the other core, never lost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plugins.tracking import painter

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


def test_a_painter_that_is_not_ready_gets_about_half_the_drawing(tmp_path: Path) -> None:
    theirs, mine = painter.split(jobs())
    assert [j[0] for j in theirs] == ["classification"]  # 4 pictures, against 1 + 1
    assert sorted(j[0] for j in mine) == ["curves", "gradient_flow"]
    process = painter.Painter()
    try:
        assert process.submit(theirs, tmp_path)
        pending = painter.Pending(theirs, mine, tmp_path, process)
        assert {f.name for f in pending.wait()} == EXPECTED
    finally:
        process.stop()
