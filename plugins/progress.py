"""The terminal progress display: one line per epoch with its metrics, and a bar for the epochs.

Registered as a callback class; the CLI creates one for each run unless `--quiet` is given. It implements
only per-epoch hooks, so it costs nothing on the per-batch path.
"""

from __future__ import annotations

from typing import Any, ClassVar

from framework import Callback, FitResult, Trainer, hookimpl


def format_logs(logs: dict[str, float]) -> str:
    return "  ".join(f"{k}={v:.4g}" for k, v in logs.items())


class Progress(Callback):
    """Shows training progress on the terminal (rich), one line per epoch."""

    name: ClassVar[str] = "progress"

    def __init__(self, *args: Any, console: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._console = console  # a rich Console; standard error by default
        self._progress: Any = None
        self._task: Any = None
        self._every = 1

    @hookimpl
    def before_fit(self, trainer: Trainer) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = self._console = self._console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        remaining = trainer.epochs - trainer.start_epoch
        # Long runs print every n-th epoch so that the terminal stays readable (about 50 lines at most).
        self._every = max(1, remaining // 50)
        self._task = self._progress.add_task(trainer.experiment.name, total=remaining)
        self._progress.start()

    @hookimpl
    def after_epoch(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if self._progress is None:
            return
        if epoch % self._every == 0 or epoch == trainer.epochs - 1:
            self._progress.console.print(f"epoch {epoch + 1:>4}/{trainer.epochs}  {format_logs(logs)}")
        self._progress.advance(self._task)

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    @hookimpl
    def after_fit(self, trainer: Trainer, result: FitResult) -> None:
        self._stop()
        last = trainer.history.epochs[-1] if len(trainer.history) else None
        if last is not None and last % self._every != 0 and last != trainer.epochs - 1:
            console = self._console
            if console is not None:
                console.print(f"epoch {last + 1:>4}/{trainer.epochs}  {format_logs(result.final_metrics)}")

    @hookimpl
    def on_fit_error(self) -> None:
        self._stop()


@hookimpl
def register_callbacks() -> list[type[Callback]]:
    return [Progress]
