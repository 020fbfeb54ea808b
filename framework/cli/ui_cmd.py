"""`backprop ui`: the MLflow UI on the store that `backprop run` logs to, started lean and local.

`mlflow server` with one worker and the GenAI job runner off starts in 7-10 s with 2 processes instead of
15 (research/mlflow.md §2, §4). It binds to 127.0.0.1 unless told otherwise; the default port is 5000
(Chromium refuses 5060 and 5061 as unsafe). Once it answers, the URL of the newest experiment in the
model-training view is printed (MLflow 3 opens on a GenAI overview otherwise, §7).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from typing import Annotated, Any

import typer

from framework.cli.common import user_errors
from framework.mlflow_store import experiment_url, run_url

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
STARTUP_TIMEOUT_S = 120.0
UNSAFE_PORTS = {5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6697, 10080}  # browsers refuse these


def ui(
    run_id: Annotated[
        str | None, typer.Argument(help="A run to open: its page's URL is printed (default: the experiments).")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0 shares it on the network).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535, help="Port to listen on.")] = 5000,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in the default web browser.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show the MLflow server's own messages.")] = False,
) -> None:
    """Start the MLflow UI on this directory's runs (or MLFLOW_TRACKING_URI's) and print where to open it."""
    with user_errors():
        from framework.cli import store
        from framework.errors import UserError

        uri = store.tracking_uri()
        if store.is_http(uri):
            target = uri
            if run_id is not None:
                found = store.get_run(store.client(uri), run_id)
                target = run_url(uri.rstrip("/"), found.info.experiment_id, run_id)
            elif experiments := _experiments(uri.rstrip("/")):  # the newest one's charts, as for a local store
                target = experiment_url(uri.rstrip("/"), experiments[0]["experiment_id"])
            typer.echo(f"MLFLOW_TRACKING_URI is a tracking server with its own UI: open {target}")
            if open_browser:
                _open(target)
            return
        store.check_store(uri)
        experiment_of_run = _experiment_of(uri, run_id) if run_id is not None else None
        if port in UNSAFE_PORTS:
            raise UserError(f"--port {port}: browsers refuse to open this port; choose another, e.g. 5000")
        if host not in LOOPBACK:
            typer.echo(
                f"warning: binding to {host} makes the UI (and every run in it) reachable from other machines, "
                "without authentication; remote browsers also need the name they use in --allowed-hosts "
                "(run `mlflow server` yourself for that; see docs/tracking.md)",
                err=True,
            )
        _check_port_free(host, port)
        env = {
            **os.environ,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no GenAI job runner: 2 processes, not 15
            "MLFLOW_DISABLE_TELEMETRY": os.environ.get("MLFLOW_DISABLE_TELEMETRY", "true"),
        }
        command = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", uri,
            "--host", host,
            "--port", str(port),
            "--workers", "1",
        ]  # fmt: skip
        typer.echo(f"starting the MLflow UI on {uri} ...", err=True)
        # MLflow's start-up noise (deprecation warnings, "Registry store URI not provided") goes to a file,
        # shown only if the server fails to start, unless --verbose.
        noise = None if verbose else tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed in `finally`)
        server = subprocess.Popen(command, env=env, stdout=noise, stderr=noise)
        try:
            shown = "localhost" if host in {"0.0.0.0", "::"} else host
            base = f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}"
            if not _wait_healthy(base, server):
                said = ""
                if noise is not None:
                    noise.seek(0)
                    said = ": " + " | ".join(noise.read().strip().splitlines()[-5:])
                raise UserError(f"the MLflow UI did not start (exit code {server.poll()}){said}")
            experiments = _experiments(base)
            if experiment_of_run is not None and run_id is not None:
                page = run_url(base, experiment_of_run, run_id)
                typer.echo(f"MLflow UI: {page}  (run {run_id})")
            elif experiments:
                newest = experiments[0]
                typer.echo(f"MLflow UI: {experiment_url(base, newest['experiment_id'])}  ({newest['name']})")
                for other in experiments[1:]:
                    typer.echo(f"           {experiment_url(base, other['experiment_id'])}  ({other['name']})")
            else:
                page = f"{base}/#/experiments?workflowType=machine_learning"
                typer.echo(f"MLflow UI: {page}")
            if experiments and experiment_of_run is None:
                page = experiment_url(base, experiments[0]["experiment_id"])
            sys.stdout.flush()  # the URL now, also when stdout is a pipe or a file
            if open_browser:
                _open(page)
            typer.echo("press Ctrl-C to stop it", err=True)
            try:
                server.wait()
            except KeyboardInterrupt:  # Ctrl-C (or SIGTERM): stop the server, not an error
                typer.echo("stopping the MLflow UI", err=True)
        finally:
            _stop(server)
            if noise is not None:
                noise.close()


def _open(url: str) -> None:
    import webbrowser

    if not webbrowser.open(url):
        typer.echo(f"could not open a browser; open {url}", err=True)


def _experiment_of(uri: str, run_id: str) -> str:
    """The experiment of run `run_id` in the local store at `uri` (read with sqlite3: no MLflow import)."""
    import sqlite3
    from contextlib import closing

    from framework.cli import store
    from framework.errors import UserError

    path = store.sqlite_path(uri)
    row = None
    if path is not None:
        with closing(sqlite3.connect(path)) as db:
            row = db.execute("SELECT experiment_id FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()
    if row is None:
        raise UserError(f"MLflow run {run_id!r} not found in {uri}; `backprop runs list` shows the runs")
    return str(row[0])


def _check_port_free(host: str, port: int) -> None:
    from framework.errors import UserError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As the server itself binds (uvicorn sets it too): connections a just-stopped UI left in TIME_WAIT
        # do not make the port look taken for a minute; a port something listens on still does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UserError(
                f"--port {port}: cannot listen on {host}:{port} ({exc.strerror}); choose another port"
            ) from None


def _wait_healthy(base: str, server: subprocess.Popen[bytes]) -> bool:
    import urllib.error
    import urllib.request  # here, not at the top: every command imports this module (15 ms)

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return False
        try:
            urllib.request.urlopen(base + "/health", timeout=2).close()
            return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    return False


def _experiments(base: str) -> list[dict[str, Any]]:
    """The experiments other than MLflow's empty "Default" (if there are any), most recently updated first."""
    import urllib.error
    import urllib.request

    body = json.dumps({"max_results": 50, "order_by": ["last_update_time DESC"]}).encode()
    request = urllib.request.Request(
        base + "/api/2.0/mlflow/experiments/search", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            found: list[dict[str, Any]] = json.loads(response.read()).get("experiments", [])
    except (urllib.error.URLError, OSError, ValueError):
        return []
    named = [e for e in found if e.get("name") != "Default"]
    return named or found


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.terminate()  # uvicorn stops its worker on SIGTERM (1-2 s with the job runner off)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
