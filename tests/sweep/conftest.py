"""A real cluster for the sweep tests: `dask scheduler`, two `dask worker` processes and an `mlflow server`.

All of them are separate processes on 127.0.0.1, started with their own command lines (as a user starts them
by hand) and stopped by their pids when the module's tests are done; a test that kills a worker gets it back
from `Cluster.ensure_workers()`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import digits_config
from tests.tracking.conftest import Server, free_port, start_server

BACKPROP = [sys.executable, "-m", "framework.cli"]
DASK = str(Path(sys.executable).parent / "dask")
STARTUP_TIMEOUT_S = 60.0


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 20 s; always reaped."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Cluster:
    """A Dask scheduler and its workers, each a `dask` process started here."""

    directory: Path
    port: int
    scheduler: subprocess.Popen[bytes] | None = None
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    started: int = 0

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        env.pop("MLFLOW_TRACKING_URI", None)  # the sweep tells every trial where to log
        log = open(self.directory / f"{name}.log", "ab")  # noqa: SIM115 (the process keeps it)
        try:
            return subprocess.Popen([DASK, *args], cwd=self.directory, env=env, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()

    def start(self) -> None:
        self.scheduler = self._spawn(
            "scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"
        )
        self.ensure_workers()

    def ensure_workers(self, count: int = 2) -> None:
        """Start workers until `count` are alive (one thread each, no nanny: a killed worker stays dead)."""
        for name, process in list(self.workers.items()):
            if process.poll() is not None:
                del self.workers[name]
        while len(self.workers) < count:
            self.started += 1
            name = f"w{self.started}"
            self.workers[name] = self._spawn(
                name, "worker", self.address, "--name", name, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                "--host", "127.0.0.1", "--death-timeout", "60",
            )  # fmt: skip
        self.wait_for(count)

    def client(self) -> Any:
        from distributed import Client

        return Client(self.address, timeout=20)

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        with self.client() as client:
            while time.monotonic() < deadline:
                alive = {w["name"] for w in client.scheduler_info(n_workers=-1)["workers"].values()}
                if set(self.workers) <= alive and len(alive) >= count:
                    return
                time.sleep(0.2)
        raise RuntimeError(f"the Dask workers did not join: {(self.directory / 'scheduler.log').read_text()[-2000:]}")

    def worker_running_a_task(self, timeout: float = 120.0) -> str:
        """The name of a worker that is processing a task (waits for one)."""
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while time.monotonic() < deadline:
                names = {a: w["name"] for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}
                busy = [names[a] for a, keys in client.processing().items() if keys and a in names]
                if busy:
                    return str(busy[0])
                time.sleep(0.1)
        raise RuntimeError("no worker started a task in time")

    def stop(self) -> None:
        for process in self.workers.values():
            stop_process(process)
        self.workers.clear()
        if self.scheduler is not None:
            stop_process(self.scheduler)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("dask"), free_port())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("mlflow-server"))
    try:
        yield server
    finally:
        server.stop()


def experiment_file(tmp_path: Path, *, epochs: int, name: str = "cluster-sweep", units: int = 16) -> Path:
    config = digits_config(training={"epochs": epochs, "batch_size": 64})
    config["model"]["layers"][0]["units"] = units
    config["optimizer"] = {"name": "momentum", "lr": 0.05}
    config["tracking"] = {"enabled": True, "experiment": name}
    path = tmp_path / "exp.json"
    path.write_text(json.dumps(config))
    return path


def sweep_command(path: Path, *args: str) -> list[str]:
    return [*BACKPROP, "sweep", str(path), "--quiet", *args]


def run_sweep(path: Path, *args: str, uri: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    return subprocess.run(sweep_command(path, *args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def parent_id(stdout: str) -> str:
    return next(line.split(": ")[1].strip() for line in stdout.splitlines() if line.startswith("parent run id:"))


def children(uri: str, experiment: str, parent: str) -> list[Any]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    return list(client.search_runs([found.experiment_id], f"tags.mlflow.parentRunId = '{parent}'", max_results=1000))
