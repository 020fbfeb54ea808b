"""Out of space (issue 19): a checkpoint write that hits ENOSPC ends the run FAILED with "no space left on
device" naming the path; the previous checkpoint is intact and the store consistent.

Two ways: a patched write that raises ENOSPC (everywhere), and a real size-limited tmpfs, mounted in a user
and mount namespace of its own (`unshare -rm`: no root needed) where the platform allows it.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from framework.checkpoint import damage
from framework.cli import app
from framework.serialize import load_arrays

EXPERIMENT = """\
name = "full"
seed = 2

[data]
name = "digits"
validation_split = 0.2

[model]
layers = [{ units = 16, activation = "relu" }, { units = 10 }]

[loss]
name = "cross_entropy"

[optimizer]
name = "adam"
lr = 0.01

[training]
epochs = 8
batch_size = 64
checkpoint_every = 1
"""


def store_runs(database: Path) -> list[tuple[str, str | None]]:
    connection = sqlite3.connect(database)
    try:
        return connection.execute(
            "SELECT r.status, t.value FROM runs r LEFT JOIN tags t ON t.run_uuid = r.run_uuid AND "
            "t.key = 'backprop.error' ORDER BY r.start_time"
        ).fetchall()
    finally:
        connection.close()


def test_enospc_while_writing_a_checkpoint_fails_the_run_and_keeps_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import framework.checkpoint as checkpoint

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    (tmp_path / "exp.toml").write_text(EXPERIMENT)
    writes = []
    real = checkpoint.save_arrays

    def fills_up(path: Path, arrays: Any) -> None:
        writes.append(path)
        if len(writes) == 3:  # the third checkpoint: half a file, then the disk is full
            path.write_bytes(b"PK\x03\x04 half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, arrays)

    monkeypatch.setattr(checkpoint, "save_arrays", fills_up)
    result = CliRunner().invoke(app, ["run", "exp.toml", "-q"])
    assert result.exit_code == 2, result.output
    (run_dir,) = (tmp_path / "checkpoints" / "full").iterdir()
    line = result.output.strip().splitlines()[-1]
    assert line == (
        f"error: no space left on device writing {Path('checkpoints') / 'full' / run_dir.name / 'epoch-0003'}; "
        f"the previous checkpoint {Path('checkpoints') / 'full' / run_dir.name / 'epoch-0002'} is intact; "
        "help: free some space on that disk"
    )
    assert sorted(p.name for p in run_dir.iterdir()) == ["epoch-0001", "epoch-0002"]  # no half-written one
    assert damage(run_dir / "epoch-0002") is None
    ((status, error),) = store_runs(tmp_path / "mlflow.db")
    assert status == "FAILED" and error is not None and "no space left on device" in error


def can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = "d=$(mktemp -d) && mount -t tmpfs -o size=64k none $d && umount $d && rmdir $d"
    return subprocess.run(["unshare", "-rm", "sh", "-c", probe], capture_output=True, check=False).returncode == 0


def tmpfs_bytes(directory: Path) -> int:
    """What a folder takes on tmpfs: every file rounded up to whole 4 KiB pages (folders take no pages)."""
    return sum(-(-p.stat().st_size // 4096) * 4096 for p in directory.rglob("*") if p.is_file())


@pytest.mark.slow
@pytest.mark.skipif(not can_mount_tmpfs(), reason="no user namespaces here: tmpfs cannot be mounted without root")
def test_a_real_full_filesystem_fails_the_run_and_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    (tmp_path / "exp.toml").write_text(EXPERIMENT)
    sizing = subprocess.run(
        [sys.executable, "-m", "framework.cli", "run", "exp.toml", "-q", "--set", "training.epochs=1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert sizing.returncode == 0, sizing.stderr
    (one,) = (tmp_path / "checkpoints" / "full").glob("*/epoch-0001")
    size = tmpfs_bytes(one)
    shutil.rmtree(tmp_path / "checkpoints")
    # Room for two checkpoints and most of a third: the third write (before the oldest is pruned) fills it.
    room = 2 * size + size // 2
    script = f"""
        set -u
        mkdir -p disk
        mount -t tmpfs -o size={room} none disk
        {sys.executable} -m framework.cli run exp.toml -q --set training.checkpoint_dir='"disk"' 2> err.txt
        echo $? > rc.txt
        cp -r disk copied
    """
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=tmp_path, env=env, timeout=180, check=False)
    assert done.returncode == 0
    err = (tmp_path / "err.txt").read_text()
    assert (tmp_path / "rc.txt").read_text().strip() == "2", err
    assert "error: no space left on device writing disk/full/" in err and "is intact" in err, err
    (run_dir,) = (tmp_path / "copied" / "full").iterdir()
    kept = sorted(run_dir.glob("epoch-*"))
    assert len(kept) == 2 and not list(run_dir.glob(".epoch-*"))  # nothing half-written left behind
    for path in kept:
        assert damage(path) is None
        assert all(np.isfinite(a).all() for a in load_arrays(path / "model" / "weights.npz").values())
    assert f"writing disk/full/{run_dir.name}/epoch-{int(kept[-1].name[6:]) + 1:04d}" in err
    statuses = [status for status, _ in store_runs(tmp_path / "mlflow.db")]
    assert statuses == ["FINISHED", "FAILED"]
