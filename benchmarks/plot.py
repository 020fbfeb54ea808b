"""Draw a suite result as a bar chart: time per epoch as a multiple of the numpy floor, per workload and system.

python benchmarks/plot.py [benchmarks/results/latest.json] [-o docs/performance.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["floor", "backprop", "backprop_tracked", "sklearn", "torch"]
LABELS = {
    "floor": "numpy floor",
    "backprop": "backprop",
    "backprop_tracked": "backprop + MLflow",
    "sklearn": "scikit-learn",
    "torch": "PyTorch eager",
}
COLOURS = {
    "floor": "#9e9e9e",
    "backprop": "#1f77b4",
    "backprop_tracked": "#6baed6",
    "sklearn": "#ff7f0e",
    "torch": "#d62728",
}


def plot(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(result["workloads"])
    systems = [s for s in ORDER if any(s in w["systems"] for w in result["workloads"].values())]
    width = 0.8 / len(systems)
    fig, ax = plt.subplots(figsize=(10, 4.8), dpi=110)
    for j, system in enumerate(systems):
        xs, ys = [], []
        for i, wl in enumerate(workloads):
            row = result["workloads"][wl]["systems"].get(system)
            if row is not None:
                xs.append(i + (j - (len(systems) - 1) / 2) * width)
                ys.append(row["ratio_to_floor"])
        bars = ax.bar(xs, ys, width, label=LABELS[system], color=COLOURS[system])
        ax.bar_label(bars, labels=[f"{y:.2f}" if y < 10 else f"{y:.0f}" for y in ys], fontsize=7, padding=1)
    ax.set_yscale("log")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(workloads)))
    info = result["workloads"]
    steps = {wl: f"{info[wl]['steps_per_epoch']} step{'s' * (info[wl]['steps_per_epoch'] > 1)}" for wl in workloads}
    ax.set_xticklabels([f"{wl}\n{steps[wl]} of {info[wl]['batch']}" for wl in workloads])
    ax.set_ylabel("time per epoch / numpy floor (log scale)")
    env = result["environment"]
    blas = [t for t in env["threadpools"] if t["user_api"] == "blas"]
    versions = "/".join(sorted({str(t["version"]) for t in blas}, reverse=True))
    kernels = "/".join(sorted({str(t["architecture"]) for t in blas}))
    ax.set_title(
        "Training time relative to a hand-written numpy loop "
        f"(1 thread, float32, median of {result['rounds']} rounds)\n"
        f"{env['cpus']} vCPU {env['machine']}, numpy {env['numpy']}, OpenBLAS {versions} ({kernels} kernel), "
        f"scikit-learn {env['sklearn']}" + (f", torch {env['torch']}" if "torch" in env else ""),
        fontsize=9,
    )
    ax.legend(fontsize=8, ncols=len(systems), loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("result", nargs="?", type=Path, default=HERE / "results" / "latest.json")
    parser.add_argument("-o", "--out", type=Path, default=HERE.parent / "docs" / "performance.png")
    args = parser.parse_args()
    plot(json.loads(args.result.read_text()), args.out)


if __name__ == "__main__":
    main()
