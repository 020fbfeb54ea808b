"""The pictures of a tracked run, drawn in a separate process while the run trains and logs (issue 16).

Importing matplotlib takes about half a second and drawing a run's pictures about as long again: a tracked run
of a second would spend most of its wall time on them, on one core, while the other waits. So the tracking
callback starts a painter when the run starts (`warm`): a Python process that imports matplotlib and renders a
first figure (fonts, caches) on the other core while the run builds its model and trains. When the run ends,
the callback computes the numbers of each picture in its own process (predictions need the model:
`framework.diagnostics.plan`), hands them over (`submit`), logs the model meanwhile, and collects the PNG files
(`Pending.wait`). One painter serves every run of a process in turn (a sweep's worker runs many trials).

The hand-over is files, not pickles: each job is `<name>.json` (kind and options) and `<name>.npz` (its
arrays, read back with `allow_pickle=False`) in the run's temporary folder, announced by one line of JSON on
the painter's stdin; it answers with one line naming the files written, or the error. Whatever goes wrong with
the painter (it cannot start, dies, answers late), the pictures are drawn in the run's own process instead:
slower, never lost.
"""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import numpy as np

from framework.diagnostics import Job

log = logging.getLogger(__name__)

WAIT_S = 120.0
"""How long a run waits for its pictures before drawing them itself."""
READY = b"ready\n"
"""The painter's first line: matplotlib is imported and warmed up."""
COST = {"classification": 4.0, "regression": 3.0, "surface": 1.5}
"""What a job costs to draw, in pictures (others: 1); a painter that is not ready yet gets half of it."""
CHILD = "import sys; sys.path.insert(0, sys.argv[1]); from plugins.tracking.painter import main; main()"

_shared: Painter | None = None


def draw(job: Job, directory: Path) -> list[Path]:
    """One job, drawn here: the evaluation pictures of `framework.diagnostics` and the tracking's own two."""
    from framework import diagnostics
    from plugins.tracking import artifacts, gradients

    kind, options, arrays = job
    if kind == "curves":
        history = _Series(options["epochs"], {k: arrays[f"m{i}"].tolist() for i, k in enumerate(options["keys"])})
        png = artifacts.curves_png(history, directory / artifacts.CURVES_PNG)  # type: ignore[arg-type]
        return [png] if png is not None else []
    if kind == "gradient_flow":
        stats = _Series(options["names"], {k: arrays[f"m{i}"].tolist() for i, k in enumerate(options["keys"])})
        flow = gradients.gradient_flow_png(stats, options["epochs"], directory / options["file"])
        return [flow] if flow is not None else []
    return diagnostics.draw(job, directory)


class _Series:
    """What the two drawing functions read of a History (epochs, metrics) or of GradientStats (names, history)."""

    def __init__(self, first: list[Any], series: dict[str, list[float]]) -> None:
        self.epochs = self.names = first
        self.metrics = self.history = series


def curves_job(epochs: list[int], metrics: dict[str, list[float]]) -> Job:
    keys = list(metrics)
    arrays = {f"m{i}": np.asarray(metrics[k], dtype=np.float64) for i, k in enumerate(keys)}
    return "curves", {"epochs": list(epochs), "keys": keys}, arrays


def gradient_flow_job(names: list[str], history: dict[str, list[float]], epochs: list[int], file: str) -> Job:
    keys = list(history)
    arrays = {f"m{i}": np.asarray(history[k], dtype=np.float64) for i, k in enumerate(keys)}
    return "gradient_flow", {"names": list(names), "keys": keys, "epochs": list(epochs), "file": file}, arrays


class Pending:
    """Pictures being drawn into `directory`: the painter's `jobs`, and `own` ones that `wait()` draws here (all of
    them when the painter fails) before it collects the painter's files."""

    def __init__(self, jobs: list[Job], own: list[Job], directory: Path, painter: Painter | None) -> None:
        self.jobs, self.own, self.directory, self.painter = jobs, own, directory, painter

    def wait(self) -> list[Path]:
        mine = [path for job in self.own for path in _draw_logged(job, self.directory)]
        if self.painter is not None:
            files = self.painter.answer()
            if files is not None:
                return files + mine
        return [path for job in self.jobs for path in _draw_logged(job, self.directory)] + mine


def split(jobs: list[Job]) -> tuple[list[Job], list[Job]]:
    """(the painter's, the run's own): about half the drawing each, the costliest first, each to the side with
    less so far (the painter on ties)."""
    sides: tuple[list[Job], list[Job]] = ([], [])
    load = [0.0, 0.0]
    for job in sorted(jobs, key=lambda job: -COST.get(job[0], 1.0)):
        side = 0 if load[0] <= load[1] else 1
        sides[side].append(job)
        load[side] += COST.get(job[0], 1.0)
    return sides


def _draw_logged(job: Job, directory: Path) -> list[Path]:
    try:
        return draw(job, directory)
    except Exception as exc:  # a plotting problem is not a tracking problem
        log.warning("MLflow: the %s picture was not drawn: %s", job[0], exc)
        return []


class Painter:
    """The run's side of the painter process."""

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parents[2])  # where this `plugins` package is importable from
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD, root],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=0,  # unbuffered: a line read never hides the next one from select()
            env=env,
            start_new_session=True,  # Ctrl-C stops the run, which then still gets its pictures
        )

        self.ready = False

    def alive(self) -> bool:
        return self.process.poll() is None

    def is_ready(self) -> bool:
        """Whether the painter has said it is ready (without waiting)."""
        if not self.ready:
            stdout: IO[bytes] = self.process.stdout  # type: ignore[assignment]
            if select.select([stdout], [], [], 0)[0]:
                line = stdout.readline()
                self.ready = line == READY
        return self.ready

    def submit(self, jobs: list[Job], directory: Path) -> bool:
        names = []
        for i, (kind, options, arrays) in enumerate(jobs):
            name = f"picture-{i}"
            (directory / f"{name}.json").write_text(json.dumps({"kind": kind, "options": options}))
            np.savez(directory / f"{name}.npz", **arrays)
            names.append(name)
        stdin: IO[bytes] = self.process.stdin  # type: ignore[assignment]
        try:
            stdin.write(json.dumps({"dir": str(directory), "jobs": names}).encode() + b"\n")
            stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            return False
        return True

    def answer(self, timeout: float = WAIT_S) -> list[Path] | None:
        """The files of the last submission, or None (the painter failed; it is stopped, the next run starts one)."""
        stdout: IO[bytes] = self.process.stdout  # type: ignore[assignment]
        line = b""
        deadline = time.monotonic() + timeout
        while not line or line == READY:
            if not select.select([stdout], [], [], max(0.0, deadline - time.monotonic()))[0]:
                line = b""
                break
            line = stdout.readline()
            if not line:
                break  # the painter died
            self.ready = True
        try:
            reply = json.loads(line) if line else {"error": f"no answer in {timeout:.0f} s"}
        except ValueError:
            reply = {"error": f"unreadable answer {line[:80]!r}"}
        if "files" in reply:
            for problem in reply.get("problems", []):
                log.warning("MLflow: %s", problem)
            return [Path(f) for f in reply["files"]]
        log.info("MLflow: the painter process failed (%s); drawing the pictures here", reply["error"])
        self.stop()
        return None

    def stop(self) -> None:
        global _shared
        if _shared is self:
            _shared = None
        self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


def warm() -> Painter | None:
    """The process's painter, started now if there is none (it gets ready while the run trains)."""
    global _shared
    if _shared is None or not _shared.alive():
        try:
            _shared = Painter()
        except OSError as exc:
            log.info("MLflow: no painter process (%s); the pictures are drawn in the run's process", exc)
            _shared = None
    return _shared


def submit(jobs: list[Job], directory: Path) -> Pending:
    """Start drawing `jobs` into `directory`. A ready painter takes them all; one still starting (a short run)
    takes about half, and the run draws the rest itself at `wait()`, so that both cores draw."""
    painter = warm() if jobs else None
    theirs, mine = (jobs, []) if painter is None or painter.is_ready() else split(jobs)
    if painter is not None and not painter.submit(theirs, directory):
        painter.stop()
        painter = None
    return Pending(theirs, mine, directory, painter)


# -- the painter process ------------------------------------------------------------------------------------


def _load(directory: Path, name: str) -> Job:
    spec = json.loads((directory / f"{name}.json").read_text())
    with np.load(directory / f"{name}.npz", allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    return spec["kind"], spec["options"], arrays


def _warm_up() -> None:
    """Import matplotlib and render one figure with text: fonts, caches and the Agg canvas are ready."""
    import importlib
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    for module in ("framework.diagnostics", "plugins.tracking.artifacts", "plugins.tracking.gradients"):
        importlib.import_module(module)

    figure = Figure(figsize=(2, 2), dpi=50)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    axes.plot([1, 2], [1, 2], label="x")
    axes.set_title("x")
    axes.legend()
    figure.savefig(io.BytesIO(), format="png")


def main() -> None:
    """Draw the jobs announced on stdin, one line each; answer on stdout; exit when stdin closes."""
    _warm_up()
    out = sys.stdout.buffer
    out.write(READY)
    out.flush()
    for line in sys.stdin.buffer:
        try:
            request = json.loads(line)
            directory = Path(request["dir"])
            files: list[str] = []
            problems: list[str] = []
            for name in request["jobs"]:
                job = _load(directory, name)
                try:
                    files += [str(p) for p in draw(job, directory)]
                except Exception as exc:  # one picture's problem: the others are still drawn
                    problems.append(f"the {job[0]} picture was not drawn: {type(exc).__name__}: {exc}")
            reply: dict[str, Any] = {"files": files, "problems": problems}
        except Exception as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply).encode() + b"\n")
        out.flush()
