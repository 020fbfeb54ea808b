"""The git tags of a run: the commit of the config file's work tree, and whether it had uncommitted changes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow

from tests.helpers import xor_config

GIT = ["git", "-c", "user.name=backprop tests", "-c", "user.email=tests@example.invalid", "-c", "commit.gpgsign=false"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run([*GIT, "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def run_in(repo: Path, config: Path) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "framework.cli", "run", str(config), "--quiet"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    run_id = next(line for line in done.stdout.splitlines() if line.startswith("run id: ")).split()[-1]
    return dict(mlflow.MlflowClient().get_run(run_id).data.tags)


def test_the_commit_and_the_dirty_flag_of_the_work_tree(store: str, tmp_path: Path) -> None:
    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q")
    config = repo / "xor.json"
    config.write_text(json.dumps(xor_config(name="git-tags", tracking={"enabled": True})))
    (repo / "notes.txt").write_text("first\n")
    git(repo, "add", "xor.json", "notes.txt")
    git(repo, "commit", "-q", "-m", "an experiment")
    head = git(repo, "rev-parse", "HEAD")

    clean = run_in(repo, config)
    assert clean["backprop.git_commit"] == head == clean["mlflow.source.git.commit"]
    assert clean["backprop.git_dirty"] == "false"

    (repo / "notes.txt").write_text("changed\n")  # a tracked file changed, not committed
    dirty = run_in(repo, config)
    assert dirty["backprop.git_commit"] == head
    assert dirty["backprop.git_dirty"] == "true"
