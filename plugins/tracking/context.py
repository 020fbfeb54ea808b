"""What a run is told about where it runs: tags, git state, run names, and the tracking server's health.

Nothing here imports mlflow at module level (research/mlflow.md §1: 1.2 s).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import framework
from framework.errors import UserError

if TYPE_CHECKING:
    from framework import Trainer

MAX_TAG_LENGTH = 8000
# A down server makes the client retry for about 4 minutes (research/mlflow.md §4), so ask it first.
REACHABILITY_TIMEOUT_S = 5.0
GIT_TIMEOUT_S = 2.0
# For HTTP stores, unless the user set them: a server that goes away costs seconds, not minutes (§4:
# MAX_RETRIES=2 with BACKOFF_FACTOR=1 gave up after 2.2 s). Uploads of a model are small, 30 s is plenty.
HTTP_CLIENT_SETTINGS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def default_run_name(trainer: Trainer) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{trainer.experiment.name}-{trainer.optimizer.name}-lr{trainer.optimizer.lr:g}-{stamp}"


def git_state(directory: Path) -> tuple[str, bool] | None:
    """(commit, dirty) of the git work tree holding `directory`, or None outside one (or without git)."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=True
        )
        return done.stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, subprocess.SubprocessError):
        return None
    return commit, dirty


def mlflow_user() -> str:
    """The `mlflow.user` tag as MLflow's default run context sets it: MLFLOW_TRACKING_USERNAME, else the
    username in ~/.mlflow/credentials, else the login name."""
    import configparser
    import getpass

    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if not user:
        credentials = configparser.ConfigParser()
        with contextlib.suppress(OSError, configparser.Error):
            credentials.read(Path.home() / ".mlflow" / "credentials")
        user = credentials.get("mlflow", "mlflow_tracking_username", fallback=None)
    if not user:
        try:
            user = getpass.getuser()
        except (ImportError, KeyError, OSError):
            user = "unknown"
    return user


def context_tags() -> dict[str, str]:
    """The tags of MLflow's run context (`mlflow.tracking.context.registry.resolve_tags`) for a command-line
    run, computed without importing MLflow: user, source name and type, and MLFLOW_RUN_CONTEXT's tags (git is
    backprop's own, below). The fluent `start_run()` adds these; `MlflowClient.create_run` does not."""
    tags = {
        "mlflow.user": mlflow_user(),
        "mlflow.source.name": sys.argv[0] if sys.argv and sys.argv[0] else "<console>",
        "mlflow.source.type": "LOCAL",
    }
    extra = os.environ.get("MLFLOW_RUN_CONTEXT")
    if extra:
        with contextlib.suppress(ValueError, TypeError):
            tags.update({str(k): str(v) for k, v in json.loads(extra).items()})
    return tags


def run_tags(trainer: Trainer) -> dict[str, str]:
    """The run's tags at creation: MLflow's own context tags (user, source) and backprop's."""
    # Plugins of the run's manager; per-run callback objects (registered as "run-callback-...") are not.
    plugins = [
        f"{name}=={info.version}" if info.version else name
        for name, info in trainer.host.infos.items()
        if info.status == "active" and not name.startswith("run-callback-")
    ]
    tags = {
        "backprop.seed": str(trainer.experiment.seed),
        "backprop.version": framework.__version__,
        "backprop.numpy_version": np.__version__,
        "backprop.python_version": platform.python_version(),
        "backprop.plugins": ", ".join(plugins),
        "backprop.command": " ".join(sys.argv),
    }
    if trainer.experiment.source is not None:
        tags["backprop.config_file"] = str(trainer.experiment.source.resolve())
    # The config file's work tree, else the current directory's (not the script's, as MLflow's own tag).
    base = trainer.experiment.base_dir
    state = git_state(base.resolve() if base is not None else Path.cwd())
    if state is None and base is not None:
        state = git_state(Path.cwd())
    resolved = {**context_tags(), **tags}
    if state is not None:
        resolved["backprop.git_commit"] = resolved["mlflow.source.git.commit"] = state[0]
        resolved["backprop.git_dirty"] = str(state[1]).lower()
    return {k: cut(str(v), MAX_TAG_LENGTH) for k, v in resolved.items()}


def status_of(error: BaseException) -> str:
    """KILLED for an interruption (Ctrl-C, or SystemExit with a shell signal code 128+n), else FAILED."""
    if isinstance(error, KeyboardInterrupt):
        return "KILLED"
    if isinstance(error, SystemExit) and isinstance(error.code, int) and error.code > 128:
        return "KILLED"
    return "FAILED"


def check_reachable(uri: str) -> None:
    """Fail fast when an HTTP tracking server does not answer (else the client retries ~4 min, §4)."""
    if not is_http(uri):
        return
    import ssl
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=REACHABILITY_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return  # it answered (auth, proxies, no /health): reachable
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLError):
            return  # it answered; certificate settings are MLflow's business (MLFLOW_TRACKING_INSECURE_TLS)
        raise UserError(
            f"MLflow tracking server {uri} is not reachable ({exc.reason}); start it, fix "
            "MLFLOW_TRACKING_URI, or train without tracking (--no-track)"
        ) from None
    except (TimeoutError, OSError) as exc:
        raise UserError(
            f"MLflow tracking server {uri} did not answer within {REACHABILITY_TIMEOUT_S:g} s ({exc}); start "
            "it, fix MLFLOW_TRACKING_URI, or train without tracking (--no-track)"
        ) from None


class EnvSettings:
    """Environment variables set for the duration of a run (only those the user has not set), then undone."""

    def __init__(self, values: dict[str, str]) -> None:
        self._added = [key for key in values if key not in os.environ]
        for key in self._added:
            os.environ[key] = values[key]

    def restore(self) -> None:
        for key in self._added:
            os.environ.pop(key, None)
        self._added = []


@contextlib.contextmanager
def url_printing_suppressed() -> Iterator[None]:
    """Stop `set_terminated` writing "View run ... at: <url>" to stdout (HTTP stores; research §4).

    MlflowClient reads MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT on each call, so setting it only around the
    call leaves the user's own MLflow use as it was; an explicit user setting wins.
    """
    settings = EnvSettings({"MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"})
    try:
        yield
    finally:
        settings.restore()
