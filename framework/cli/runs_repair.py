"""`backprop runs repair` and `backprop runs sync`: nothing is lost when a process dies (issue 19).

`repair` ends each STALE run (RUNNING, its owner process gone: `framework.ownership`) FAILED with the tags
`backprop.end_reason = "process died"`, `backprop.last_epoch` (epochs completed, from its logged metrics) and
`backprop.last_checkpoint` (its newest whole checkpoint), and prints how to continue it.

`sync` sends what a run saved under `backprop-unsent/<run_id>/` when its tracking server was away: the metric
points the server does not have yet (a point is its key, step, timestamp and value: sending twice, or after a
partial send, adds nothing), the tags, `history.csv`, the model (as `backprop_model/`, the format `backprop
evaluate` reads) and the final status. A folder is removed only after the server holds every one of its points.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer

from framework.cli.common import user_errors

UNSENT_DIR = "backprop-unsent"
BATCH = 1000  # MLflow's limit of metric points per log_batch request
SPOOLED_MODEL = "backprop_model"


def repair(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be done.")] = False,
) -> None:
    """End every STALE run (RUNNING, but its process died) FAILED, and print how to continue each."""
    with user_errors():
        from rich.console import Console

        from framework import ownership
        from framework.cli import store

        console = Console(highlight=False, soft_wrap=True)
        client = store.client(store.tracking_uri())
        found = ownership.stale(ownership.running_runs_client(client))
        if not found:
            console.print("no stale runs")
            return
        for run, reason in found:
            run_id = run.run_id
            cwd = Path(run.tags.get(ownership.CWD, "."))
            unsent = cwd / UNSENT_DIR / run_id
            if (unsent / "status.json").exists():
                console.print(f"{run_id}: {reason}; its data waits in {unsent}: send it with `backprop runs sync`")
                continue
            epochs, checkpoint = ownership.end_stale(client, run, reason, dry_run=dry_run)
            verb = "would end" if dry_run else "ended"
            console.print(
                f"{run_id}: {reason}; {verb} FAILED after {epochs} epoch(s); last checkpoint: {checkpoint or 'none'}"
            )
            where = "" if cwd == Path.cwd() else f"cd {cwd} && "
            if checkpoint is not None:
                console.print(f"  continue with: {where}backprop run --resume {run_id}")
            else:
                console.print("  no checkpoint to continue from: run its experiment again")


# -- sync ---------------------------------------------------------------------------------------------------


def _spooled_points(folder: Path) -> list[tuple[str, float, int, int]]:
    with open(folder / "metrics.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))[1:]
    points = [(key, float(value), int(ts), int(step)) for key, value, ts, step in rows]
    return list(dict.fromkeys(points))


def _missing(client: Any, run_id: str, points: list[tuple[str, float, int, int]]) -> list[tuple[str, float, int, int]]:
    """The points the server does not hold yet."""
    held: set[tuple[str, str, int, int]] = set()  # repr: NaN equals NaN, and floats are exact
    for key in sorted({p[0] for p in points}):
        history = client.get_metric_history(run_id, key)
        held |= {(key, repr(float(m.value)), int(m.timestamp), int(m.step)) for m in history}
    return [p for p in points if (p[0], repr(p[1]), p[2], p[3]) not in held]


def sync_folder(client: Any, folder: Path) -> tuple[int, int]:
    """Send one run's spooled folder; return (points sent, points already there). Removes the folder after."""
    from mlflow.entities import Metric

    from framework.cli import store

    run_id = folder.name
    store.get_run(client, run_id)  # a one-line error when the run is not on this server
    points = _spooled_points(folder)
    missing = _missing(client, run_id, points)
    for i in range(0, len(missing), BATCH):
        batch = [Metric(k, v, ts, step) for k, v, ts, step in missing[i : i + BATCH]]
        client.log_batch(run_id, metrics=batch)
    tags = json.loads((folder / "tags.json").read_text(encoding="utf-8"))
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    present = {a.path for a in client.list_artifacts(run_id)}
    if "history.csv" not in present and (folder / "history.csv").exists():
        client.log_artifact(run_id, str(folder / "history.csv"))
    if SPOOLED_MODEL not in present and (folder / "model").is_dir():
        client.log_artifacts(run_id, str(folder / "model"), SPOOLED_MODEL)
    status = json.loads((folder / "status.json").read_text(encoding="utf-8"))
    if status.get("error"):
        client.set_tag(run_id, "backprop.error", str(status["error"])[:1000])
    client.set_terminated(run_id, status["status"])
    still = _missing(client, run_id, points)  # confirmed by the server before anything is removed
    if still:
        raise RuntimeError(f"the server holds {len(points) - len(still)} of the {len(points)} points of {run_id}")
    shutil.rmtree(folder)
    return len(missing), len(points) - len(missing)


def sync(
    directory: Annotated[Path, typer.Argument(help="The folder of unsent runs (default: ./backprop-unsent).")] = Path(
        UNSENT_DIR
    ),
) -> None:
    """Send what runs saved in DIR when the tracking server was away; safe to repeat."""
    with user_errors():
        from rich.console import Console

        from framework.cli import store
        from framework.errors import UserError

        console = Console(highlight=False, soft_wrap=True)
        if not directory.is_dir():
            raise UserError(f"{directory}: no such folder; `backprop run` saves unsent data in ./{UNSENT_DIR}/")
        folders = sorted(p for p in directory.iterdir() if (p / "status.json").exists())
        if not folders:
            console.print(f"nothing to send in {directory}")
            return
        client = store.client(store.tracking_uri())
        for folder in folders:
            sent, had = sync_folder(client, folder)
            console.print(f"{folder.name}: sent {sent} metric point(s) ({had} were already there); removed {folder}")


def unsent_runs(directory: Path = Path(UNSENT_DIR)) -> list[str]:
    """The run ids with data waiting in `directory`."""
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if (p / "status.json").exists())
