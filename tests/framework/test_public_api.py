"""The public API of `framework`: every exported name resolves, and importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys

import framework


def test_every_exported_name_resolves() -> None:
    assert set(framework.__all__) == {*framework._EXPORTS, "__version__"}
    for name in framework.__all__:
        assert getattr(framework, name) is not None, name


def test_importing_the_cli_does_not_import_numpy_or_pydantic() -> None:
    code = "import sys, framework.cli; print(sorted(m for m in ('numpy', 'pydantic', 'mlflow') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
