"""Profile backprop's training (and the floor's, for comparison) on a workload with cProfile.

    python benchmarks/profile_backprop.py [W1 W2 W5] [--top 25]

Prints, per workload, the functions with the most own time, for backprop's `fit` and for the floor's
epochs, and writes the raw profiles to benchmarks/results/profile-<wl>-<system>.prof (open them with
`python -m pstats` or snakeviz). cProfile adds a fixed cost to every Python call, so it exaggerates the share
of small Python functions: use it to see where time goes, and the suite for how much.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
from floor import FloorMLP  # noqa: E402
from systems import arrays_plugin  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402
from workloads import WORKLOADS, builtin_dataset, experiment_dict, make_data  # noqa: E402

from framework import Experiment, fit  # noqa: E402


def report(profile: cProfile.Profile, title: str, top: int, out: Path) -> None:
    profile.dump_stats(out)
    stream = io.StringIO()
    stats = pstats.Stats(profile, stream=stream).strip_dirs().sort_stats("tottime")
    stats.print_stats(top)
    print(f"==== {title} (raw profile: {out})")
    text = stream.getvalue()
    print(text[text.index("ncalls") - 3 :] if "ncalls" in text else text)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("workloads", nargs="*", default=["W1", "W2", "W5"])
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    with threadpool_limits(1):
        for wl in [w for w in WORKLOADS if w.id in args.workloads]:
            data = make_data(wl)
            plugins = (
                [] if builtin_dataset(wl) else [arrays_plugin(data, "regression" if wl.loss == "mse" else "multiclass")]
            )
            experiment = Experiment.from_dict(experiment_dict(wl))
            fit(experiment, track=False, plugins=plugins)  # warm up
            profile = cProfile.Profile()
            profile.runcall(fit, experiment, track=False, plugins=plugins)
            report(
                profile,
                f"{wl.id} backprop fit, {wl.epochs} epochs",
                args.top,
                results / f"profile-{wl.id}-backprop.prof",
            )

            rng = np.random.default_rng(0)
            net = FloorMLP(wl.sizes, wl.activations, wl.lr, wl.momentum, np.float32, rng, loss=wl.loss)
            net.epoch(data.X, data.T, wl.batch, rng)
            profile = cProfile.Profile()
            profile.enable()
            for _ in range(wl.epochs):
                net.epoch(data.X, data.T, wl.batch, rng)
            profile.disable()
            report(profile, f"{wl.id} floor, {wl.epochs} epochs", args.top, results / f"profile-{wl.id}-floor.prof")


if __name__ == "__main__":
    main()
