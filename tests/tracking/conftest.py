"""A real `mlflow server` on 127.0.0.1 for the tracking tests: started once per session, stopped by its pid."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

STARTUP_TIMEOUT_S = 90.0


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]

    def rest(self, endpoint: str, body: dict[str, Any] | None = None) -> Any:
        """GET (no body) or POST an MLflow REST endpoint under /api/2.0/mlflow/."""
        url = f"{self.url}/api/2.0/mlflow/{endpoint}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def kill(self) -> None:
        """Kill the server and its worker at once (SIGKILL to its process group): a server that dies."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(directory: Path) -> Server:
    """`mlflow server` on a free loopback port, SQLite store and artifacts in `directory`, lean settings."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{directory / 'server.db'}",
        "--artifacts-destination", str(directory / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with open(directory / "server.log", "wb") as log:  # the server keeps its own copy of the file
        # Its own process group: `kill()` can take down the server and its uvicorn worker at once.
        process = subprocess.Popen(
            command, cwd=directory, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {(directory / 'server.log').read_text()[-2000:]}")
        try:
            urllib.request.urlopen(server.url + "/health", timeout=2).close()
            return server
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    server.stop()
    raise RuntimeError("mlflow server did not answer /health in time")


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("mlflow-server"))
    yield server
    server.stop()


@pytest.fixture
def server(mlflow_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Server:
    """The session's server as this test's store; the test runs in its own temporary directory."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    monkeypatch.chdir(tmp_path)
    return mlflow_server
