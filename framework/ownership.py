"""Who owns a RUNNING run, and whether that owner is still alive (issue 19: stale runs are found and ended).

A tracked run records its owner as tags when it starts (or resumes):

    backprop.owner.host     the host name (`socket.gethostname()`)
    backprop.owner.pid      the process id
    backprop.owner.started  the process's start: `<boot id>:<clock ticks since boot>` on Linux (from /proc), else
                            psutil's create_time; a PID reused by another process has another start
    backprop.owner.cwd      the working directory (checkpoints are found from it: `training.checkpoint_dir`)
    backprop.heartbeat      milliseconds since the epoch, renewed every HEARTBEAT_EVERY_S by a daemon thread
                            (its own connection to the store; the training thread never waits on it)

A RUNNING run is STALE when its owner is gone: on the same host, the PID is dead or has another start time; on
another host, its heartbeat is older than STALE_AFTER_S. A RUNNING run without owner tags (made by another tool,
or by an older backprop) is never called stale.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HOST = "backprop.owner.host"
PID = "backprop.owner.pid"
STARTED = "backprop.owner.started"
CWD = "backprop.owner.cwd"
HEARTBEAT = "backprop.heartbeat"
HEARTBEAT_EVERY_S = 5.0
"""How often a running run renews its heartbeat tag."""
STALE_AFTER_S = 120.0
"""A run owned by another host is stale when its heartbeat is older than this (24 missed beats)."""
END_REASON = "backprop.end_reason"
LAST_EPOCH = "backprop.last_epoch"
LAST_CHECKPOINT = "backprop.last_checkpoint"
PROCESS_DIED = "process died"
OWNER_KEYS = (HOST, PID, STARTED, CWD, HEARTBEAT)


@functools.cache
def _boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def _linux_start(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
        boot = _boot_id()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the command name (in parentheses) may hold spaces
    return f"{boot}:{fields[19]}"  # field 22 of proc(5): starttime, clock ticks after boot


def process_started(pid: int) -> str | None:
    """A token for when process `pid` started (the same for the same process, never for a reused PID), or
    None when there is no such process."""
    if Path("/proc/self/stat").exists():
        return _linux_start(pid)
    try:
        import psutil  # type: ignore[import-untyped]

        return f"{psutil.Process(pid).create_time():.3f}"
    except ImportError:  # pragma: no cover - psutil is a dependency of mlflow, so installed
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "alive"
    except Exception:  # psutil.NoSuchProcess and its kin
        return None


def owner_tags() -> dict[str, str]:
    """The owner tags of the current process."""
    pid = os.getpid()
    return {
        HOST: socket.gethostname(),
        PID: str(pid),
        STARTED: process_started(pid) or "",
        CWD: str(Path.cwd()),
        HEARTBEAT: str(int(time.time() * 1000)),
    }


def stale_reason(tags: Mapping[str, str], now_ms: int | None = None) -> str | None:
    """Why the owner of a RUNNING run with `tags` is gone, or None if it is alive (or unknown)."""
    host, pid, started = tags.get(HOST), tags.get(PID), tags.get(STARTED)
    if not host or not pid or not pid.isdigit():
        return None
    if host == socket.gethostname():
        now = process_started(int(pid))
        if now is None:
            return f"process {pid} on {host} is dead"
        if started and now != "alive" and now != started:
            return f"process {pid} on {host} is another process now"
        return None
    beat = tags.get(HEARTBEAT, "")
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if beat.isdigit() and now_ms - int(beat) > STALE_AFTER_S * 1000:
        return f"no heartbeat from {host} for {(now_ms - int(beat)) / 1000:.0f} s"
    return None


@dataclass
class RunningRun:
    run_id: str
    experiment_id: str
    tags: dict[str, str]


def running_runs_local(database: Path | str) -> list[RunningRun]:
    """The RUNNING runs of a local SQLite store with their backprop tags: one query, a few milliseconds."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    try:
        rows = connection.execute(
            "SELECT r.run_uuid, r.experiment_id, t.key, t.value FROM runs r LEFT JOIN tags t "
            f"ON t.run_uuid = r.run_uuid AND t.key IN ({', '.join('?' * len(OWNER_KEYS))}) "
            "WHERE r.status = 'RUNNING' AND r.lifecycle_stage = 'active'",
            OWNER_KEYS,
        ).fetchall()
    finally:
        connection.close()
    runs: dict[str, RunningRun] = {}
    for run_id, experiment_id, key, value in rows:
        run = runs.setdefault(run_id, RunningRun(run_id, str(experiment_id), {}))
        if key is not None:
            run.tags[key] = value
    return list(runs.values())


def running_runs_client(client: Any) -> list[RunningRun]:
    """The RUNNING runs of any store, through MLflow's client (all experiments)."""
    ids = [e.experiment_id for e in client.search_experiments()]
    if not ids:
        return []
    found = client.search_runs(ids, filter_string="attributes.status = 'RUNNING'", max_results=1000)
    return [RunningRun(r.info.run_id, str(r.info.experiment_id), dict(r.data.tags)) for r in found]


def stale(runs: list[RunningRun]) -> list[tuple[RunningRun, str]]:
    """The runs whose owner is gone, each with the reason."""
    now_ms = int(time.time() * 1000)
    alive: dict[tuple[str, ...], str | None] = {}  # many runs of one owner (a sweep): one look at /proc
    found: list[tuple[RunningRun, str]] = []
    for run in runs:
        owner = tuple(run.tags.get(key, "") for key in (HOST, PID, STARTED))
        if owner not in alive or owner[0] != socket.gethostname():
            alive[owner] = stale_reason(run.tags, now_ms)
        reason = alive[owner]
        if reason is not None:
            found.append((run, reason))
    return found


def checkpoint_of(run_id: str, params: Mapping[str, str], cwd: Path) -> Path | None:
    """The newest whole checkpoint of a run (under its owner's working directory), or None."""
    from framework.checkpoint import latest_in, sanitize

    root = Path(params.get("training.checkpoint_dir", "checkpoints"))
    run_dir = (root if root.is_absolute() else cwd / root) / sanitize(params.get("name", "")) / sanitize(run_id)
    return latest_in(run_dir) if run_dir.is_dir() else None


def epochs_done(client: Any, run_id: str) -> int:
    """Epochs completed by a run, from its per-epoch `train_loss` (steps count from 0)."""
    steps = [m.step for m in client.get_metric_history(run_id, "train_loss")]
    return max(steps) + 1 if steps else 0


def end_stale(client: Any, run: RunningRun, reason: str, dry_run: bool = False) -> tuple[int, Path | None]:
    """End a stale run FAILED ("process died", its last epoch and checkpoint as tags); return (epochs done, the
    checkpoint to continue from). With `dry_run`, only find them."""
    params = dict(client.get_run(run.run_id).data.params)
    checkpoint = checkpoint_of(run.run_id, params, Path(run.tags.get(CWD, ".")))
    # The metrics lag the training by a batch of the sender; a checkpoint is named by its epochs done.
    epochs = max(epochs_done(client, run.run_id), int(checkpoint.name.split("-")[1]) if checkpoint else 0)
    if not dry_run:
        tags = {END_REASON: PROCESS_DIED, LAST_EPOCH: str(epochs), "backprop.stop_reason": f"{PROCESS_DIED} ({reason})"}
        if checkpoint is not None:
            tags[LAST_CHECKPOINT] = str(checkpoint)
        for key, value in tags.items():
            client.set_tag(run.run_id, key, value)
        client.set_terminated(run.run_id, "FAILED")
    return epochs, checkpoint


class Heartbeat:
    """A daemon thread that sets the run's heartbeat tag every HEARTBEAT_EVERY_S until `stop()`."""

    def __init__(self, beat: Callable[[str], None], every: float | None = None) -> None:
        self._beat = beat
        self._every = HEARTBEAT_EVERY_S if every is None else every
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="backprop-heartbeat", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopped.wait(self._every):
            try:
                self._beat(str(int(time.time() * 1000)))
            except Exception as exc:  # a missed beat is not worth a run; the next one may get through
                log.debug("heartbeat failed: %s", exc)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=2)


def sqlite_beat(database: Path | str, run_id: str) -> Callable[[str], None]:
    """A beat that updates the heartbeat tag with its own short connection (never the callback's)."""

    def beat(value: str) -> None:
        connection = sqlite3.connect(database, timeout=1)
        try:
            with connection:
                connection.execute(
                    "UPDATE tags SET value = ? WHERE key = ? AND run_uuid = ?", (value, HEARTBEAT, run_id)
                )
        finally:
            connection.close()

    return beat


def claim(store: Any, run_id: str, tagged: bool = False) -> Heartbeat:
    """Record this process as the owner of `run_id` (unless `tagged`: created with `owner_tags()`) and start
    its heartbeat."""
    if not tagged:
        store.set_tags(run_id, owner_tags())
    local = getattr(store, "store", None)
    database = getattr(local, "database", None)
    if database is not None:
        return Heartbeat(sqlite_beat(database, run_id))
    client = store.client
    return Heartbeat(lambda value: client.set_tag(run_id, HEARTBEAT, value))


def warn_if_stale(store: Any) -> int:
    """Log one line when the store holds stale runs; return how many. Cheap: one query on a local store."""
    try:
        local = getattr(store, "store", None)
        database = getattr(local, "database", None)
        runs = running_runs_local(database) if database is not None else running_runs_client(store.client)
        found = stale(runs)
    except Exception as exc:  # a check that cannot be made is not worth a run
        log.debug("could not look for stale runs: %s", exc)
        return 0
    if found:
        log.warning(
            "%d run(s) in %s are RUNNING but their process died (%s); end them with `backprop runs repair`",
            len(found),
            store.tracking_uri,
            ", ".join(run.run_id for run, _ in found[:3]) + (", ..." if len(found) > 3 else ""),
        )
    return len(found)
