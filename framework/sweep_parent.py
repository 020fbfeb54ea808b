"""A sweep's parent MLflow run: found again by the sweep's identity, so that a re-run resumes it.

The parent holds the definition (params `sweep.*` and `sweep.json`) and, at the end, the best trial (tags
`backprop.best_run_id` and `backprop.best.<key>`, metric `best_<metric>`), the counts of finished, pruned,
failed and killed trials, what pruning saved, the description that ranks the children (`framework.sweep_report`)
and `diagnostics/parallel_coordinates.png`.

It also keeps its children honest: a child left RUNNING (its worker was killed, the sweep was interrupted
before the trial could end its run) is ended as KILLED, with `backprop.retried_as` naming the run that
finished the same trial when there is one. A re-run first ends FAILED ("process died", as `backprop runs
repair` does) each child whose owner process is gone, and runs its trial again.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from framework.components import ComponentSpec, spec_name
from framework.config import Experiment
from framework.sweep import SweepSection, Trial
from framework.sweep_report import PNG, description, parameters_png, savings

log = logging.getLogger(__name__)

NOTE = "mlflow.note.content"
DIAGNOSTICS = "diagnostics"
MAX_TAG = 8000
MAX_PARAM = 6000


def command_line() -> str | None:
    """The command that started the sweep, as `backprop sweep ...`; None when the sweep came from Python."""
    launcher = Path(sys.argv[0]).name if sys.argv else ""
    if launcher not in {"backprop", "__main__.py"} or "sweep" not in sys.argv[1:]:
        return None
    return shlex.join(["backprop", *sys.argv[1:]])


class ParentRun:
    """The sweep's parent run in `experiment`'s MLflow experiment, created or found by `sweep_hash`."""

    def __init__(
        self, client: Any, experiment: Experiment, sweep: SweepSection, sweep_hash: str, tags: dict[str, str]
    ) -> None:
        from mlflow.entities import Param

        self.client = client
        name = experiment.tracking.experiment or experiment.name
        found = client.get_experiment_by_name(name)
        self.experiment_id: str = found.experiment_id if found is not None else client.create_experiment(name)
        self.hash = sweep_hash
        runs = client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`backprop.sweep_hash` = '{self.hash}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if runs:
            self.run_id: str = runs[0].info.run_id
            client.update_run(self.run_id, status="RUNNING")
            self.resumed = True
            self.repair_stale_children()
            return
        self.resumed = False
        stamp = time.strftime("%Y%m%d-%H%M%S")
        command = command_line()
        run = client.create_run(
            self.experiment_id,
            run_name=f"{experiment.name}-sweep-{stamp}",
            tags={
                "backprop.sweep_hash": self.hash,
                "backprop.sweep": "parent",
                "backprop.seed": str(sweep.seed),
                **({"backprop.command": command[:MAX_TAG]} if command else {}),
                **tags,
            },
        )
        self.run_id = run.info.run_id
        params = [Param(f"sweep.grid.{k}", json.dumps(v)[:MAX_PARAM]) for k, v in sweep.grid.items()]
        params += [Param(f"sweep.param.{k}", v[:MAX_PARAM]) for k, v in sweep.params.items()]
        params += [Param("sweep.trials", str(sweep.trials)), Param("sweep.seed", str(sweep.seed))]
        for key in ("sampler", "prune"):
            spec: ComponentSpec | None = getattr(sweep, key, None)
            if spec is not None:
                params.append(Param(f"sweep.{key}", json.dumps(spec)[:MAX_PARAM] if isinstance(spec, dict) else spec))
        for i in range(0, len(params), 100):
            client.log_batch(self.run_id, params=params[i : i + 100])
        client.log_dict(self.run_id, {"base": experiment.to_dict(), "sweep": sweep.model_dump()}, "sweep.json")

    def children(self, status: str | None = None) -> list[Any]:
        """The child runs (every status, or one)."""
        where = f"tags.mlflow.parentRunId = '{self.run_id}'"
        if status is not None:
            where += f" and attributes.status = '{status}'"
        return list(self.client.search_runs([self.experiment_id], filter_string=where, max_results=50000))

    def finished_children(self) -> dict[str, dict[str, Any]]:
        """The FINISHED children of a resumed parent by trial hash: run id, metrics and tags."""
        if not self.resumed:
            return {}
        return {
            run.data.tags["backprop.trial_hash"]: {
                "run_id": run.info.run_id,
                "metrics": dict(run.data.metrics),
                "tags": dict(run.data.tags),
                "seconds": ((run.info.end_time or 0) - (run.info.start_time or 0)) / 1000,
            }
            for run in self.children("FINISHED")
            if "backprop.trial_hash" in run.data.tags
        }

    def tag(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, v[:MAX_TAG]) for k, v in tags.items()])

    def repair_stale_children(self) -> int:
        """End FAILED ("process died") each child left RUNNING by a sweep process or worker that died, so that a
        re-run never counts it as running; the trial runs again. Children of a live owner are left alone."""
        from framework import ownership

        running = [
            ownership.RunningRun(run.info.run_id, self.experiment_id, dict(run.data.tags))
            for run in self.children("RUNNING")
        ]
        found = ownership.stale(running)
        for run, reason in found:
            ownership.end_stale(self.client, run, reason)
        if found:
            log.warning(
                "%d trial run(s) of this sweep were left RUNNING by a process that died: ended FAILED", len(found)
            )
        return len(found)

    def end_orphans(self) -> int:
        """End every child still RUNNING as KILLED; name the run that finished the same trial, if one did."""
        running = self.children("RUNNING")
        if not running:
            return 0
        finished = {r.data.tags.get("backprop.trial_hash"): r.info.run_id for r in self.children("FINISHED")}
        for run in running:
            tags = {"backprop.stop_reason": run.data.tags.get("backprop.stop_reason", "interrupted: sweep stopped")}
            retried = finished.get(run.data.tags.get("backprop.trial_hash"))
            if retried is not None:
                tags = {
                    "backprop.stop_reason": "its worker was lost; the trial ran again",
                    "backprop.retried_as": retried,
                }
            self.tag(run.info.run_id, tags)
            self.client.set_terminated(run.info.run_id, "KILLED")
        return len(running)

    def finish(
        self,
        trials: list[Trial],
        best: Trial | None,
        *,
        metric: str,
        direction: str,
        status: str,
        sampler: ComponentSpec,
        pruner: ComponentSpec | None,
        log_keys: list[str],
        tracking_uri: str,
    ) -> None:
        """Record the outcome and end the run with `status`; the summary never costs the status."""
        try:
            self.end_orphans()
            counts = {s: sum(t.status == s for t in trials) for s in ("finished", "pruned", "failed", "killed")}
            tags = {f"backprop.trials_{s}": str(n) for s, n in counts.items()}
            saved = savings(trials)
            if pruner is not None:
                tags.update(
                    {
                        "backprop.epochs_run": str(saved.epochs_run),
                        "backprop.epochs_saved": str(saved.epochs_saved),
                        "backprop.seconds_saved": f"{saved.seconds_saved:.3g}",
                    }
                )
            if best is not None and best.metric is not None:
                tags["backprop.best_run_id"] = best.run_id or ""
                tags.update({f"backprop.best.{k}": str(v) for k, v in best.overrides.items()})
                self.client.log_metric(self.run_id, f"best_{metric}", best.metric, step=counts["finished"])
            tags[NOTE] = description(
                trials,
                metric=metric,
                direction=direction,
                experiment_id=self.experiment_id,
                tracking_uri=tracking_uri,
                sampler=spec_name(sampler),
                pruner=spec_name(pruner) if pruner is not None else None,
                command=self.client.get_run(self.run_id).data.tags.get("backprop.command"),
                status=status,
            )
            self.tag(self.run_id, tags)
            keys = list(dict.fromkeys(k for t in trials for k in t.overrides))
            with tempfile.TemporaryDirectory(prefix="backprop-sweep-") as tmp:
                png = parameters_png(trials, keys, metric, direction, Path(tmp) / PNG, log_keys)
                if png is not None:
                    self.client.log_artifact(self.run_id, str(png), DIAGNOSTICS)
        except Exception as exc:  # the summary is a convenience; never lose the status because of it
            log.warning("could not log the sweep summary: %s", exc)
        finally:
            self.client.set_terminated(self.run_id, status)
