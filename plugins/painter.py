"""The pictures of a tracked run, drawn in a separate process while the run trains and logs (issue 16).

It is part of the tracking plugin, kept outside the `plugins.tracking` package so that `backprop run` can start
the painter first thing (its `backprop.warm_up` entry point, framework/warmup.py) without importing the
tracking plugin: this module imports the standard library only until it draws or hands over.

Importing matplotlib takes about half a second and drawing a run's pictures about as long again: a tracked run
of a second would spend most of its wall time on them, on one core, while the other waits. So the tracking
callback starts a painter when the run starts (`warm`): a Python process that imports matplotlib and renders a
first figure (fonts, caches) on the other core while the run builds its model and trains. When the run ends,
the callback computes the numbers of each picture in its own process (predictions need the model:
`framework.diagnostics.plan`), hands them over (`submit`), logs the model meanwhile, and collects the PNG files
(`Pending.wait`). The painter draws them on both cores: it forks once per hand-over (matplotlib is imported
by then, so the fork costs milliseconds) and each process draws about half (`split`), when a core was free
since the last hand-over (`FORK_IDLE_CORES`; a parallel sweep keeps both busy, and there it draws alone). The
run never imports matplotlib itself while a painter lives: a painter still starting is waited for, which is
sooner than the run could import matplotlib. One painter serves every run of a process in turn (a sweep's
worker runs many trials); it is stopped when the process exits.

The hand-over is files, not pickles: each job is `<name>.json` (kind and options) and `<name>.npz` (its
arrays, read back with `allow_pickle=False`) in the run's temporary folder, announced by one line of JSON on
the painter's stdin; it answers with one line naming the files written, or the error. Whatever goes wrong with
the painter (it cannot start, dies, answers late), the pictures are drawn in the run's own process instead:
slower, never lost.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from framework.diagnostics import Job

log = logging.getLogger(__name__)

WAIT_S = 120.0
"""How long a run waits for its pictures before drawing them itself."""
READY = b"ready\n"
"""The painter's first line: matplotlib is imported and warmed up."""
COST = {"classification": 4.0, "regression": 3.0, "surface": 1.5}
"""What a job costs to draw, in pictures (others: 1): the painter's two processes take about half each."""
CHILD = "import sys; sys.path.insert(0, sys.argv[1]); from plugins.painter import main; main()"
FORK_IDLE_CORES = 0.5
"""A hand-over is split with a fork only when the machine had at least this many cores idle since the last one:
a fork draws on a free core, but its caches (text layouts, glyphs) are made anew each time: on a machine kept
busy (a parallel sweep's two trials) it gains no time, and its share costs more CPU than in the painter, whose
caches are warm (digits' four classification pictures: about 0.75 s against 0.45 s)."""

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
    import numpy as np

    arrays = {f"m{i}": np.asarray(metrics[k], dtype=np.float64) for i, k in enumerate(keys)}
    return "curves", {"epochs": list(epochs), "keys": keys}, arrays


def gradient_flow_job(names: list[str], history: dict[str, list[float]], epochs: list[int], file: str) -> Job:
    keys = list(history)
    import numpy as np

    arrays = {f"m{i}": np.asarray(history[k], dtype=np.float64) for i, k in enumerate(keys)}
    return "gradient_flow", {"names": list(names), "keys": keys, "epochs": list(epochs), "file": file}, arrays


class Pending:
    """Pictures being drawn into `directory`: the painter's `jobs`, and `own` ones that `wait()` draws here (all of
    them when the painter fails, or when there is none) before it collects the painter's files."""

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
    """Two shares of about half the drawing each: the costliest first, each to the side with less so far (the
    first on ties)."""
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
        self.owner = os.getpid()  # a fork of the run (multiprocessing) must not stop the run's painter
        atexit.register(self.stop)  # its pipes closed, and no painter outlives the run's process

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
        import numpy as np

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
        atexit.unregister(self.stop)
        if os.getpid() != self.owner:
            return
        if self.process.poll() is None:
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
    """Start drawing `jobs` into `directory`: the painter takes them all, also while it is still starting (it is
    ready sooner than the run could import matplotlib); without a painter the run draws them at `wait()`."""
    painter = warm() if jobs else None
    if painter is not None and not painter.submit(jobs, directory):
        painter.stop()
        painter = None
    return Pending(jobs, [] if painter is not None else jobs, directory, painter)


# -- the painter process ------------------------------------------------------------------------------------


def _load(directory: Path, name: str) -> Job:
    import numpy as np

    spec = json.loads((directory / f"{name}.json").read_text())
    with np.load(directory / f"{name}.npz", allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    return spec["kind"], spec["options"], arrays


def _warm_up() -> None:
    """Import matplotlib and render one figure with text: fonts, caches and the Agg canvas are ready."""
    import importlib
    import io
    import types

    if "plugins.tracking" not in sys.modules:
        # The drawing modules (artifacts, gradients) import numpy only; the tracking package's __init__ (the
        # callback, the stores: 0.4 s of imports) is not needed to draw, so the package is entered bare.
        package = types.ModuleType("plugins.tracking")
        package.__path__ = [str(Path(__file__).resolve().parent / "tracking")]
        sys.modules["plugins.tracking"] = package

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


def _draw_each(jobs: list[Job], directory: Path) -> dict[str, list[str]]:
    files: list[str] = []
    problems: list[str] = []
    for job in jobs:
        try:
            files += [str(p) for p in draw(job, directory)]
        except Exception as exc:  # one picture's problem: the others are still drawn
            problems.append(f"the {job[0]} picture was not drawn: {type(exc).__name__}: {exc}")
    return {"files": files, "problems": problems}


def cpu_times() -> tuple[int, int, int] | None:
    """(idle, all) clock ticks of the whole machine so far and its number of cores (Linux's /proc/stat), or None."""
    try:
        with open("/proc/stat") as stat:
            lines = stat.read().splitlines()
        ticks = [int(value) for value in lines[0].split()[1:9]]  # user nice system idle iowait irq softirq steal
    except (OSError, ValueError, IndexError):
        return None
    cores = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return ticks[3] + ticks[4], sum(ticks), cores


def idle_cores(before: tuple[int, int, int] | None, after: tuple[int, int, int] | None) -> float | None:
    """How many cores were idle on average between two `cpu_times()`; None when unknown (no /proc, no time)."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return after[2] * (after[0] - before[0]) / (after[1] - before[1])


def _draw_forked(jobs: list[Job], directory: Path, fork: bool = True) -> dict[str, list[str]]:
    """Draw `jobs` in this process and a fork of it, about half each; what the fork could not draw is drawn here.
    Without `fork` (the machine is busy: FORK_IDLE_CORES) everything is drawn here."""
    mine, theirs = split(jobs)
    if not fork or not theirs or not hasattr(os, "fork"):
        return _draw_each(jobs, directory)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the fork: draw, report on the pipe, leave without running the parent's exit handlers
        code = 1
        try:
            os.close(read_end)
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(json.dumps(_draw_each(theirs, directory)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    reply = _draw_each(mine, directory)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read()
    _, status = os.waitpid(pid, 0)
    try:
        forked = json.loads(answer) if status == 0 else None
    except ValueError:
        forked = None
    if forked is None:
        forked = _draw_each(theirs, directory)
    return {key: reply[key] + forked[key] for key in ("files", "problems")}


def main() -> None:
    """Draw the jobs announced on stdin, one line each; answer on stdout; exit when stdin closes."""
    _warm_up()
    out = sys.stdout.buffer
    out.write(READY)
    out.flush()
    since = cpu_times()  # the machine's load from now (our own warm-up left out) to the next hand-over
    for line in sys.stdin.buffer:
        idle = idle_cores(since, cpu_times())
        try:
            request = json.loads(line)
            directory = Path(request["dir"])
            jobs = [_load(directory, name) for name in request["jobs"]]
            reply: dict[str, Any] = _draw_forked(jobs, directory, fork=idle is None or idle >= FORK_IDLE_CORES)
        except Exception as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply).encode() + b"\n")
        out.flush()
        since = cpu_times()  # (our drawing left out too)
