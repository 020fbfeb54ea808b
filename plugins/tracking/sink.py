"""A child process that writes metric points to a local MLflow store, so that training does not pay for it.

With a local store (SQLite, or a file store) the store's work happens in the process that logs: MLflow's
ORM spends ~100 µs of Python per metric point (research/mlflow.md §3). A sender thread doing that in the
training process holds the interpreter lock for it, and the training thread waits: on digits, whose epochs
take 2 ms, per-epoch metrics alone slowed training by ~45 % once runs lasted longer than a few seconds
(benchmarks/bench_tracking.py). This process does that work on the machine's other core instead, at the
lowest CPU priority, so that it takes the time training leaves idle rather than time from training.

It is started by the sender thread only when a run is long enough to need it (its first batch of metrics
before the end of the run), never for short runs, where everything is sent once at the end. The protocol,
one line each way per batch:

- out, on stdout, first: `{"ready": true}` once it has opened the store (a parent that ends the run before
  that kills it and sends the points itself: importing MLflow takes the child seconds);
- in, on stdin: a JSON array of `[key, value, timestamp_ms, step]` points;
- out, on stdout: `{"ok": true}` once the batch is in the store, or `{"error": "..."}`. After the first
  error it stops writing and answers every later batch with that error: the parent keeps those points.

At the end of stdin it exits. It has a session of its own, so Ctrl-C in the terminal stops training but
not the writing of what training already logged; if the parent dies, stdin ends and so does this process.

    python -m plugins.tracking.sink URI RUN_ID
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import IO, Any

from plugins.tracking.sender import Point, send_points

log = logging.getLogger(__name__)

CHILD = "import sys; sys.path.append(sys.argv.pop(1)); from plugins.tracking.sink import run; run(sys.argv[1:])"
"""The child's command: `root` is appended to its path (not put first: that could shadow the standard library
with site-packages), for the case where the parent found `plugins` through a path of its own (a script's
`sys.path.insert`)."""

NICENESS = 19
"""The writer yields the CPU to training: on a busy 2-core machine it runs in the time training leaves."""


class SinkProcess:
    """The parent's side: writes batches to the child, and matches its answers to them in a reader thread."""

    def __init__(self, uri: str, run_id: str) -> None:
        root = str(Path(__file__).resolve().parents[2])  # where this `plugins` package is importable from
        env = {
            **os.environ,
            "OPENBLAS_NUM_THREADS": "1",  # the writer does no linear algebra: no thread pool competing with training
            "MLFLOW_DISABLE_TELEMETRY": os.environ.get("MLFLOW_DISABLE_TELEMETRY", "true"),
        }
        self._process = subprocess.Popen(
            [sys.executable, "-c", CHILD, root, uri, run_id],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        self._in_flight: deque[list[Point]] = deque()  # written to the child, not answered yet
        self.ready = threading.Event()  # the child has opened the store (importing MLflow takes seconds)
        self.failed: list[Point] = []
        self.error: str | None = None
        self.answered = 0  # batches the child has answered (written, or refused)
        self._reader = threading.Thread(target=self._read, name=f"backprop-mlflow-sink-{run_id}", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    def write(self, points: list[Point]) -> bool:
        """Hand `points` to the child; False if it is gone (the caller then keeps `points` itself)."""
        self._in_flight.append(points)  # before writing: the answer may come at once
        try:
            stdin: IO[bytes] = self._process.stdin  # type: ignore[assignment]
            stdin.write(json.dumps(points).encode() + b"\n")
            stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            self._in_flight.pop()  # never (wholly) written, so never answered: not the child's any more
            return False
        return True

    def backlog(self) -> int:
        """How many points the child has been given and not written yet."""
        return sum(map(len, list(self._in_flight)))  # list(): a copy made in one step, under the GIL

    def close(self) -> list[Point]:
        """Wait until the child has written everything; return the points that are not in the store.

        A child that is not ready yet (the run ended within seconds of starting it) is stopped instead: it
        has written nothing, and the caller sends its points sooner than it could.
        """
        if not self.ready.is_set():
            self._process.kill()
        try:
            if self._process.stdin is not None:
                self._process.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        code = self._process.wait()
        self._reader.join()
        if self._process.stdout is not None:
            self._process.stdout.close()
        if self._in_flight and self.ready.is_set():  # never answered: the child died
            self.error = self.error or f"the metric writer process exited with code {code}"
        if self._in_flight:
            while self._in_flight:
                self.failed.extend(self._in_flight.popleft())
        return self.failed

    def _read(self) -> None:
        stdout: IO[bytes] = self._process.stdout  # type: ignore[assignment]
        for line in stdout:
            try:
                answer = json.loads(line)
            except ValueError:
                continue  # not ours (something printed to stdout): ignore
            if "ready" in answer:
                self.ready.set()
                log.debug("MLflow: metric writer process %d ready", self.pid)
                continue
            if not self._in_flight:
                continue
            batch = self._in_flight.popleft()
            self.answered += 1
            if "error" in answer:
                self.error = self.error or str(answer["error"])
                self.failed.extend(batch)


def main(argv: list[str]) -> int:
    """The child: write each batch from stdin to the store, answer on stdout."""
    uri, run_id = argv
    if hasattr(os, "nice"):  # POSIX
        with contextlib.suppress(OSError):
            os.nice(NICENESS)
    logging.basicConfig(level=logging.ERROR)  # MLflow's INFO lines (store migrations) are not for the terminal
    from framework.mlflow_store import open_client

    client: Any = None
    error: str | None = None
    out, sys.stdout = sys.stdout, sys.stderr  # stdout is the protocol's: anything else printed goes to stderr
    try:
        client = open_client(uri)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin.buffer:
        points = [tuple(p) for p in json.loads(line)]
        if error is None:
            try:
                send_points(client, run_id, points)  # type: ignore[arg-type]
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
        out.write(json.dumps({"error": error} if error else {"ok": True}) + "\n")
        out.flush()
    return 0


def run(argv: list[str]) -> None:
    """`main`, then an immediate exit: everything is committed and answered, and a normal exit would spend
    ~0.9 s in MLflow's and SQLAlchemy's shutdown handlers while the training process waits for it."""
    code = main(argv)
    sys.__stdout__.flush()  # type: ignore[union-attr]
    os._exit(code)


if __name__ == "__main__":
    run(sys.argv[1:])
