"""Installed plugins for tests: fake distributions on sys.path, and real installs into a throwaway venv."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest


def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, modules: tuple[str, ...]) -> Iterator[Path]:
    """A directory on sys.path for `fake_distribution`s; afterwards the test's modules (names starting with
    one of `modules`) are forgotten, so the next test imports its own."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delenv("BACKPROP_DISABLE_PLUGINS", raising=False)
    before = set(sys.modules)
    yield root
    for name in set(sys.modules) - before:
        if name.startswith(modules):
            del sys.modules[name]


def fake_distribution(root: Path, dist: str, module: str, body: str, entry_name: str | None = None) -> None:
    """An installed distribution in `root`: a module plus its dist-info with a `backprop` entry point."""
    (root / f"{module}.py").write_text(body)
    # The folder name holds the normalised name ('-' -> '_'): importlib.metadata reads the name up to the
    # first '-', so "backprop-x-1.2.dist-info" would pass for (and hide) backprop itself.
    info = root / f"{dist.replace('-', '_')}-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text(f"[backprop]\n{entry_name or module} = {module}\n")


def make_venv(path: Path) -> Path:
    """A new virtual environment that also sees this one's packages (backprop and its dependencies).

    `python -m venv --system-site-packages` would expose the *base* interpreter's packages, not this
    venv's, so a `.pth` file adds this environment's site directory instead (processing its `.pth` files
    too, which is where backprop's own editable install lives). Returns the new environment's python.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    python = path / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    parent = sysconfig.get_paths()["purelib"]
    Path(purelib, "_backprop_parent_env.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    return python


def pip_install_editable(python: Path, *packages: Path) -> None:
    """`pip install -e` offline into the environment of `python` (no build isolation, no dependencies)."""
    args = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-build-isolation"]
    args += ["--no-deps", "--no-input", "--disable-pip-version-check"]
    for package in packages:
        args += ["-e", str(package)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


def run_in(python: Path, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python *args` with a clean plugin environment (no disabled plugins from the caller)."""
    full = {k: v for k, v in os.environ.items() if k != "BACKPROP_DISABLE_PLUGINS"}
    full.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", **(env or {})})
    return subprocess.run([str(python), *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=600)
