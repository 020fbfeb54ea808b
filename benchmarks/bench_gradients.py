"""What the gradient-flow statistics cost a run (issue 16: at most 5 % of training time on W2 and W3).

    python benchmarks/bench_gradients.py [--rounds 7]

Each round trains W2 and W3 (benchmarks/workloads.py, tracking off) twice, interleaved: once plain, once with a
callback that computes `plugins.tracking.gradients.GradientStats` after every epoch, exactly what a tracked run
adds to its epochs. The ratio of the two fits' times is the cost; medians of the rounds with min and max.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from systems import arrays_plugin  # noqa: E402
from workloads import WORKLOADS, builtin_dataset, experiment_dict, make_data  # noqa: E402

from framework import Experiment, fit, hookimpl  # noqa: E402
from plugins.tracking.gradients import GradientStats  # noqa: E402


class Stats:
    """The tracking callback's gradient statistics, alone."""

    stats: GradientStats | None = None

    @hookimpl
    def before_fit(self, trainer: Any) -> None:
        self.stats = GradientStats(trainer.model)

    @hookimpl
    def after_epoch(self) -> None:
        assert self.stats is not None
        self.stats.epoch_points()


def timed_fit(wl: Any, data: Any, with_stats: bool) -> float:
    plugins = [] if builtin_dataset(wl) else [arrays_plugin(data, "multiclass")]
    callbacks = [Stats()] if with_stats else []
    experiment = Experiment.from_dict(experiment_dict(wl))
    start = time.perf_counter()
    fit(experiment, callbacks=callbacks, plugins=plugins, track=False)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--epochs", type=int, help="epochs of each fit (default: the workload's)")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    for wl in (w for w in WORKLOADS if w.id in ("W2", "W3")):
        if args.epochs:
            wl = replace(wl, epochs=args.epochs)
        data = make_data(wl)
        timed_fit(wl, data, True)  # warm-up
        ratios = []
        for _ in range(args.rounds):
            plain = timed_fit(wl, data, False)
            ratios.append(timed_fit(wl, data, True) / plain)
        results[wl.id] = {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
        r = results[wl.id]
        print(f"{wl.id}: with gradient statistics / without = {r['median']:.3f} ({r['min']:.3f}-{r['max']:.3f})")
    return results


if __name__ == "__main__":
    main()
