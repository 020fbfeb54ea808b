"""A child process that writes metric points to a local MLflow store, so that training does not pay for it.

With a local store the store's work happens in the process that logs: MLflow's ORM spends ~100 µs of
Python per metric point (research/mlflow.md §3), and even the direct SQLite path (`sqlite_points`) 5-10 µs.
A sender thread doing that in the training process holds the interpreter lock for it, and the training
thread waits: on digits, whose epochs take 2 ms, per-epoch metrics alone slowed training by ~45 % once runs
lasted longer than a few seconds, and metrics every step are 22,000 points a second
(benchmarks/bench_tracking.py). This process does that work on the machine's other core instead, at the
lowest CPU priority, so that it takes the time training leaves idle rather than time from training.

There are two programs. For a SQLite store of the layout `sqlite_points` knows, the light one,
`writer.py DATABASE RUN_ID`: the standard library and sqlite3, ready in ~30 ms. For any other local store,
`python -c CHILD ROOT URI RUN_ID` (`main` here), which imports MLflow (seconds) and writes with `log_batch`.
The protocol is the same (`writer.py`): a `{"ready": true}` line once the store is open, then per batch one
message in (a JSON line, then raw float64 bytes) and one line out, `{"ok": true}` or `{"error": "..."}`;
after the first error a child writes nothing more, and the parent keeps the points it refuses.

It is started by the sender thread only when a run is long enough to need it. The child has a session of
its own, so Ctrl-C in the terminal stops training but not the writing of what training already logged; if
the parent dies, stdin ends and so does the child.
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

from plugins.tracking import writer
from plugins.tracking.writer import Item, count, encode

log = logging.getLogger(__name__)

CHILD = "import sys; sys.path.append(sys.argv.pop(1)); from plugins.tracking.sink import run; run(sys.argv[1:])"
"""The child's command: `root` is appended to its path (not put first: that could shadow the standard library
with site-packages), for the case where the parent found `plugins` through a path of its own (a script's
`sys.path.insert`)."""


class SinkProcess:
    """The parent's side: writes batches to the child, and matches its answers to them in a reader thread."""

    def __init__(self, uri: str, run_id: str, database: str | None = None) -> None:
        """A writer for run `run_id` of the store at `uri`: the light one into `database` (a SQLite file of
        the layout `sqlite_points` knows), else the one that imports MLflow."""
        if database is not None:
            # -I: the standard library only (no site-packages, no PYTHON* variables, not the script's folder)
            command = [sys.executable, "-I", writer.__file__, database, run_id]
        else:
            root = str(Path(__file__).resolve().parents[2])  # where this `plugins` package is importable from
            command = [sys.executable, "-c", CHILD, root, uri, run_id]
        env = {
            **os.environ,
            "OPENBLAS_NUM_THREADS": "1",  # the writer does no linear algebra: no thread pool competing with training
            "MLFLOW_DISABLE_TELEMETRY": os.environ.get("MLFLOW_DISABLE_TELEMETRY", "true"),
        }
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        self._pending: list[tuple[list[Item], int]] = []  # batches (and their points) kept until it is ready
        self._in_flight: deque[tuple[list[Item], int]] = deque()  # written to the child, not answered yet
        self.ready = threading.Event()  # the child has opened the store (importing MLflow takes seconds)
        self.failed: list[Item] = []
        self.error: str | None = None
        self.answered = 0  # batches the child has answered (written, or refused)
        self._reader = threading.Thread(target=self._read, name=f"backprop-mlflow-sink-{run_id}", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    def write(self, items: list[Item]) -> bool:
        """Hand `items` to the child; False if it is gone (the caller then keeps `items` itself).

        Until the child is ready, batches wait here, not in the pipe: the child reads nothing while it
        imports MLflow, and a full pipe (64 KiB, a dozen epochs of batch losses) would block the sender
        thread, and with it the end of a short run, until the child is ready.
        """
        self._pending.append((items, count(items)))
        if self._hand_over() if self.ready.is_set() else self._process.poll() is None:
            return True
        self._pending.pop()  # ours, the last one: the caller keeps it (earlier ones come back from close)
        return False

    def _hand_over(self) -> bool:
        """Write the pending batches to the child; False if it is gone (they stay pending)."""
        stdin: IO[bytes] = self._process.stdin  # type: ignore[assignment]
        while self._pending:
            batch = self._pending[0]
            self._in_flight.append(batch)  # before writing: the answer may come at once
            try:
                stdin.write(encode(batch[0]))
                stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                self._in_flight.pop()  # never (wholly) written, so never answered: not the child's any more
                return False
            self._pending.pop(0)
        return True

    def backlog(self) -> int:
        """How many points the child has been given (or will be) and not written yet."""
        batches = list(self._in_flight) + self._pending  # list(): a copy made in one step, under the GIL
        return sum(n for _, n in batches)

    def close(self) -> list[Item]:
        """Wait until the child has written everything; return the points that are not in the store.

        A child that is not ready yet (the run ended within seconds of starting it) is stopped instead: it
        has written nothing, and the caller sends its points sooner than it could.
        """
        if not self.ready.is_set():
            self._process.kill()
        else:
            self._hand_over()
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
        while self._in_flight:
            self.failed += self._in_flight.popleft()[0]
        for batch, _ in self._pending:  # never handed over (the child was not ready, or died)
            self.failed += batch
        self._pending = []
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
            batch, _ = self._in_flight.popleft()
            self.answered += 1
            if "error" in answer:
                self.error = self.error or str(answer["error"])
                self.failed.extend(batch)


def main(argv: list[str]) -> int:
    """The child that imports MLflow: write each batch from stdin with `log_batch`, answer on stdout."""
    uri, run_id = argv
    if hasattr(os, "nice"):  # POSIX
        with contextlib.suppress(OSError):
            os.nice(writer.NICENESS)
    logging.basicConfig(level=logging.ERROR)  # MLflow's INFO lines (store migrations) are not for the terminal
    from framework.mlflow_store import open_client
    from plugins.tracking.sender import point_writer

    answers, sys.stdout = sys.stdout, sys.stderr  # stdout is the protocol's: anything else printed goes to stderr
    write: Any
    try:
        write = point_writer(open_client(uri), run_id)
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"

        def write(points: list[writer.Point]) -> None:
            raise RuntimeError(message)

    answers.write(json.dumps({"ready": True}) + "\n")
    answers.flush()
    writer.serve(write, answers)
    return 0


def run(argv: list[str]) -> None:
    """`main`, then an immediate exit: everything is committed and answered, and a normal exit would spend
    ~0.9 s in MLflow's and SQLAlchemy's shutdown handlers while the training process waits for it."""
    code = main(argv)
    sys.__stdout__.flush()  # type: ignore[union-attr]
    os._exit(code)


if __name__ == "__main__":
    run(sys.argv[1:])
