"""Evaluation pictures of a finished run, logged under `diagnostics/` (issue 16).

On the validation split (the training data when there is none), after training:

- classification: `confusion_matrix.png` (counts and row-normalised), `classes.csv` (precision, recall, F1 and
  support per class), `roc.png` and `precision_recall.png` with their areas (binary: one curve; multiclass: one
  curve per class, one-vs-rest);
- regression: `predicted_vs_actual.png` (with the identity line), `residuals.png` (residual against
  prediction) and `residual_histogram.png`, in the targets' own units;
- any task with 2 input features: `decision_surface.png` (the class, or the positive class's probability, the
  model predicts over the plane of the two features) or the prediction surface of a regression, with the data
  drawn on it, in the features' own units.

Pictures are drawn for finished runs and for interrupted or failed ones whose model still predicts finite
numbers (they show the weights the run ended with).

The numbers behind each picture are the small numpy functions below (tests check them against counts by hand and
the rank formula of the AUC); matplotlib (Agg) is imported only when drawing.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from framework.model import Model
    from framework.trainer import Trainer

log = logging.getLogger(__name__)
Array = Any

CONFUSION_PNG = "confusion_matrix.png"
CLASSES_CSV = "classes.csv"
ROC_PNG = "roc.png"
PR_PNG = "precision_recall.png"
PREDICTED_PNG = "predicted_vs_actual.png"
RESIDUALS_PNG = "residuals.png"
HISTOGRAM_PNG = "residual_histogram.png"
CLASSES_PNG = "classes.png"
SURFACE_PNG = "decision_surface.png"
SURFACE_STEPS = 200  # grid points per axis of the decision surface


TITLE: dict[str, Any] = {"y": 1.0}
"""Keywords of every picture's title: a fixed height. Left to itself, matplotlib moves each title above the axes'
top decorations, and measures every tick label of the axes once more to find them: a tenth of the drawing time.
These axes have nothing at the top, so the pictures are the same, pixel for pixel."""


def confusion_matrix(y_true: Array, y_pred: Array, classes: int) -> Array:
    """counts[i, j] = the number of samples of class i predicted as class j."""
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return counts


def per_class(counts: Array) -> dict[str, Array]:
    """precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2PR / (P + R), support = TP + FN (0 when undefined)."""
    tp = np.diag(counts).astype(np.float64)
    predicted, actual = counts.sum(axis=0), counts.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(tp), where=total > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": actual}


def roc_curve(positive: Array, score: Array) -> tuple[Array, Array]:
    """False and true positive rates as the threshold falls through the distinct scores, from (0, 0) to (1, 1)."""
    fp, tp = _cumulative(positive, score)
    return fp / max(fp[-1], 1), tp / max(tp[-1], 1)


def precision_recall_curve(positive: Array, score: Array) -> tuple[Array, Array]:
    """Recall and precision as the threshold falls through the distinct scores (precision 1 at recall 0)."""
    fp, tp = _cumulative(positive, score)
    predicted = tp + fp
    precision = np.divide(tp, predicted, out=np.ones_like(tp), where=predicted > 0)
    return tp / max(tp[-1], 1), precision


def area(x: Array, y: Array) -> float:
    """The area under a curve by the trapezoid rule (the ROC AUC, or the area under precision-recall)."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def _cumulative(positive: Array, score: Array) -> tuple[Array, Array]:
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    hits, ranked = np.asarray(positive, dtype=bool)[order], np.asarray(score, dtype=np.float64)[order]
    # One point per distinct score: ties move together (the last index of each run of equal scores).
    last = np.r_[np.nonzero(np.diff(ranked))[0], len(ranked) - 1]
    tp, fp = np.cumsum(hits)[last], np.cumsum(~hits)[last]
    return np.r_[0, fp].astype(np.float64), np.r_[0, tp].astype(np.float64)


def evaluation_split(trainer: Trainer) -> tuple[str, Array, Array]:
    """("validation" or "training", features as the model sees them, raw labels or targets)."""
    split = trainer.val if trainer.val is not None and len(trainer.val) else trainer.train
    return ("validation" if split is trainer.val else "training"), split.X, split.y


def predictions(model: Model, X: Array) -> Array:
    """The model's predictions for already preprocessed features: the link, then the targets' own units."""
    out = model.outputs(X)
    result = np.asarray(model.link(out)) if model.link is not None else np.asarray(out)
    if model.target_scaler is not None:
        result = model.target_scaler.inverse_transform(result)
    return result


Job = tuple[str, dict[str, Any], dict[str, Array]]
"""A picture to draw: (kind, JSON-able options, numpy arrays). Planned where the model is (`plan`), drawn
anywhere (`draw`): the tracking plugin draws them in a separate process while the run logs its model."""


def render(trainer: Trainer, directory: Path) -> list[Path]:
    """Every picture (and `classes.csv`) that fits the run's task, written into `directory`."""
    return draw_all(plan(trainer), directory)


def render_model(model: Model, task: str, X: Array, y: Array, which: str, directory: Path) -> list[Path]:
    """The pictures of `model` on preprocessed features `X` and raw labels or targets `y` ("validation" data...)."""
    return draw_all(plan_model(model, task, X, y, which), directory)


def plan(trainer: Trainer) -> list[Job]:
    """The pictures of a run, on its evaluation split, as jobs: the numbers computed, nothing drawn."""
    which, X, y = evaluation_split(trainer)
    return plan_model(trainer.model, trainer.task, X, y, which)


def plan_model(model: Model, task: str, X: Array, y: Array, which: str) -> list[Job]:
    """The jobs of `render_model`: the model's predictions (and its surface over two varying features)."""
    predicted = predictions(model, X)
    if not np.isfinite(predicted).all():
        log.info("no evaluation pictures: the model predicts non-finite numbers")
        return []
    jobs: list[Job] = []
    if task == "regression":
        arrays = {"y": np.asarray(y, dtype=np.float64), "predicted": predicted.astype(np.float64)}
        jobs.append(("regression", {"which": which}, arrays))
    else:
        arrays = {"y": np.asarray(y, dtype=np.int64), "proba": predicted.astype(np.float64)}
        jobs.append(("classification", {"which": which}, arrays))
    varying = np.flatnonzero(np.ptp(X, axis=0) > 0) if len(X) else np.array([])
    if len(varying) == 2:  # two features, or two beside constant ones (xor's bias column)
        jobs.append(surface_job(model, task, X, y, which, (int(varying[0]), int(varying[1]))))
    return jobs


def draw(job: Job, directory: Path) -> list[Path]:
    """Draw one job into `directory` (matplotlib, Agg); the files written."""
    kind, options, arrays = job
    which = str(options["which"])
    if kind == "classification":
        return classification_pictures(arrays["y"], arrays["proba"], which, directory)
    if kind == "regression":
        return regression_pictures(arrays["y"], arrays["predicted"], which, directory)
    if kind == "surface":
        return [surface_png(options, arrays, directory / SURFACE_PNG)]
    raise ValueError(f"unknown picture {kind!r}")


def draw_all(jobs: list[Job], directory: Path) -> list[Path]:
    return [path for job in jobs for path in draw(job, directory)]


def surface_grid(raw: Array, steps: int = SURFACE_STEPS) -> tuple[Array, Array, Array]:
    """A `steps` x `steps` grid over the data's range plus a 5 % margin: (xs, ys, points as rows)."""
    low, high = raw.min(axis=0), raw.max(axis=0)
    margin = 0.05 * np.where(high > low, high - low, 1.0)
    xs = np.linspace(low[0] - margin[0], high[0] + margin[0], steps)
    ys = np.linspace(low[1] - margin[1], high[1] + margin[1], steps)
    gx, gy = np.meshgrid(xs, ys)
    return xs, ys, np.c_[gx.ravel(), gy.ravel()]


def surface_job(model: Model, task: str, X: Array, y: Array, which: str, columns: tuple[int, int]) -> Job:
    """What the model predicts over the plane of two features (any others held at their constant value), in the
    features' own units, with the data to draw on top."""
    scaler = model.preprocess
    every = np.asarray(scaler.inverse_transform(X) if scaler is not None else X, dtype=np.float64)
    raw = every[:, list(columns)]
    xs, ys, points = surface_grid(raw)
    inputs = np.repeat(every[:1], len(points), axis=0)
    inputs[:, list(columns)] = points
    inputs = inputs.astype(X.dtype)
    surface = predictions(model, scaler.transform(inputs) if scaler is not None else inputs)
    names = (
        model.feature_names if len(model.feature_names) == X.shape[1] else [f"feature {i}" for i in range(X.shape[1])]
    )
    options = {"task": task, "which": which, "labels": [names[c] for c in columns]}
    arrays = {"xs": xs, "ys": ys, "surface": surface.astype(np.float64), "raw": raw, "y": np.asarray(y)}
    return "surface", options, arrays


def surface_png(options: dict[str, Any], arrays: dict[str, Array], path: Path) -> Path:
    """The surface of `surface_job`, the data on top."""
    task, which, labels = options["task"], options["which"], options["labels"]
    xs, ys, surface, raw, y = (arrays[k] for k in ("xs", "ys", "surface", "raw", "y"))
    figure, axes = _figure(7.0, 5.6)
    shape = (len(ys), len(xs))
    if task == "regression":
        actual = np.asarray(y, dtype=np.float64).reshape(len(y), -1)[:, 0]
        low, high = min(surface[:, 0].min(), actual.min()), max(surface[:, 0].max(), actual.max())
        image = axes.pcolormesh(xs, ys, surface[:, 0].reshape(shape), cmap="viridis", vmin=low, vmax=high,
                                shading="auto")  # fmt: skip
        figure.colorbar(image, ax=axes).set_label("target (target units): predicted behind, actual in the dots")
        axes.scatter(raw[:, 0], raw[:, 1], c=actual, cmap="viridis", vmin=low, vmax=high, edgecolors="white",
                     linewidths=0.6, s=30)  # fmt: skip
        axes.set_title(f"Prediction surface, {which} data on top (colour: target units)", fontsize=10, **TITLE)
    else:
        truth = np.asarray(y, dtype=np.int64)
        if surface.shape[1] == 1:  # binary: the probability of class 1, and the 0.5 boundary
            field = surface[:, 0].reshape(shape)
            image = axes.pcolormesh(xs, ys, field, cmap="RdBu_r", vmin=0, vmax=1, shading="auto")
            figure.colorbar(image, ax=axes).set_label("predicted probability of class 1")
            axes.contour(xs, ys, field, levels=[0.5], colors="black", linewidths=1.2)
            colours = [(0.13, 0.4, 0.67), (0.7, 0.1, 0.15)]  # the two ends of RdBu_r
        else:
            classes = _class_colours(surface.shape[1])
            field = surface.argmax(axis=1).reshape(shape)
            axes.pcolormesh(xs, ys, field, cmap=classes, vmin=-0.5, vmax=classes.N - 0.5, alpha=0.35, shading="auto")
            colours = [classes(c) for c in range(classes.N)]
        size = 30 if len(truth) > 50 else 90  # a handful of samples (xor) must be easy to see
        for c, colour in enumerate(colours):
            chosen = truth == c
            if chosen.any():
                axes.scatter(raw[chosen, 0], raw[chosen, 1], s=size, color=colour, edgecolors="black",
                             linewidths=0.8, label=f"class {c}")  # fmt: skip
        axes.legend(fontsize="small", loc="best", framealpha=0.8)
        boundary = "black line: probability 0.5" if surface.shape[1] == 1 else "background: predicted class"
        axes.set_title(f"Decision surface, {which} data on top ({boundary})", fontsize=10, **TITLE)
    axes.set(xlabel=labels[0], ylabel=labels[1], xlim=(xs[0], xs[-1]), ylim=(ys[0], ys[-1]))
    return _save(figure, path)


def _class_colours(classes: int) -> Any:
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    palette = colormaps["tab10" if classes <= 10 else "tab20"]
    return ListedColormap([palette(i % palette.N) for i in range(classes)])


def _figure(width: float = 6.4, height: float = 4.8, bottom: float = 0.11) -> tuple[Any, Any]:
    # A Figure without pyplot (its import and global state are not needed to write a PNG), and a fixed layout:
    # tight_layout would draw every figure twice, and these are drawn while the user waits.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    axes = figure.subplots(gridspec_kw={"left": 0.12, "right": 0.95, "bottom": bottom, "top": 0.92})
    return figure, axes


def _save(figure: Any, path: Path) -> Path:
    figure.savefig(path, pil_kwargs={"compress_level": 1})  # fast to write; the pictures are small anyway
    return path


def classification_pictures(y: Array, proba: Array, which: str, directory: Path) -> list[Path]:
    """Confusion matrix, per-class table, ROC and precision-recall curves for labels `y` and probabilities."""
    scores = np.c_[1 - proba[:, 0], proba[:, 0]] if proba.shape[1] == 1 else proba
    k = scores.shape[1]
    counts = confusion_matrix(y, scores.argmax(axis=1), k)
    stats = per_class(counts)
    written = [_confusion_png(counts, which, directory / CONFUSION_PNG)]
    with open(directory / CLASSES_CSV, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["class", "precision", "recall", "f1", "support"])
        for c in range(k):
            out.writerow([c, *(f"{stats[key][c]:.6g}" for key in ("precision", "recall", "f1")), stats["support"][c]])
    written.append(directory / CLASSES_CSV)
    written.append(_classes_png(stats, which, directory / CLASSES_PNG))
    curves = [1] if k == 2 else list(range(k))  # binary: the positive class only
    for name, curve, labels in (
        (ROC_PNG, roc_curve, ("false positive rate", "true positive rate")),
        (PR_PNG, precision_recall_curve, ("recall", "precision")),
    ):
        figure, axes = _figure()
        for c in curves:
            x, v = curve(y == c, scores[:, c])
            axes.plot(x, v, label=f"class {c} (area {area(x, v):.3f})", linewidth=1.2)
        if name == ROC_PNG:
            axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8, label="chance")
        axes.set(xlabel=labels[0], ylabel=labels[1], xlim=(0, 1), ylim=(0, 1.02))
        title = "ROC" if name == ROC_PNG else "Precision-recall"
        axes.set_title(f"{title} on the {which} data ({'one-vs-rest' if k > 2 else 'binary'})", **TITLE)
        axes.legend(
            fontsize="small", ncol=2 if len(curves) > 5 else 1, loc="lower right" if name == ROC_PNG else "lower left"
        )
        written.append(_save(figure, directory / name))
    return written


def _classes_png(stats: dict[str, Array], which: str, path: Path) -> Path:
    """Precision, recall and F1 of each class side by side, with the class's support under its name."""
    k = len(stats["support"])
    figure, axes = _figure(max(6.4, 0.6 * k + 2), 4.8, bottom=0.17)
    width = 0.27
    for offset, key in zip((-width, 0.0, width), ("precision", "recall", "f1"), strict=True):
        axes.bar(np.arange(k) + offset, stats[key], width, label=key)
    axes.set_xticks(range(k), [f"{c}\n(n={stats['support'][c]})" for c in range(k)], fontsize=8)
    axes.set(xlabel="class (support: samples of that class)", ylabel="score (0 to 1)", ylim=(0, 1.12))
    axes.set_title(f"Per-class precision, recall and F1 ({which} data)", **TITLE)
    axes.legend(ncol=3, fontsize="small", loc="upper center")
    axes.grid(axis="y", alpha=0.3)
    return _save(figure, path)


def _confusion_png(counts: Array, which: str, path: Path) -> Path:
    """One panel: each cell's colour is its share of the true class, its text the count (and the share)."""
    k = len(counts)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    figure, axes = _figure(7.2, 6.0)
    image = axes.imshow(share, cmap="Blues", vmin=0, vmax=1)
    bar = figure.colorbar(image, ax=axes, fraction=0.046)
    bar.ax.set_title("share of\ntrue class", fontsize=8, **TITLE)
    axes.set(xlabel="predicted class", ylabel="true class", xticks=range(k), yticks=range(k))
    axes.set_title(f"Confusion matrix, counts ({which} data)", **TITLE)
    if k <= 12:  # past that the numbers no longer fit their cells
        for i, j in zip(*np.nonzero(counts), strict=True):
            color = "white" if share[i, j] > 0.5 else "black"
            axes.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8, color=color)
    return _save(figure, path)


def regression_pictures(y: Array, predicted: Array, which: str, directory: Path) -> list[Path]:
    """Predicted against actual, residuals against predicted, and the residuals' histogram (target units)."""
    actual, guess = y.reshape(len(y), -1), predicted.reshape(len(predicted), -1)
    residual = actual - guess
    written = []
    figure, axes = _figure()
    axes.scatter(actual.ravel(), guess.ravel(), s=8, alpha=0.5, label="samples")
    low, high = float(min(actual.min(), guess.min())), float(max(actual.max(), guess.max()))
    axes.plot([low, high], [low, high], color="black", linewidth=1, label="identity (perfect prediction)")
    axes.set(xlabel="actual target (target units)", ylabel="predicted target (target units)")
    axes.set_title(f"Predicted against actual ({which} data)", **TITLE)
    axes.legend()
    written.append(_save(figure, directory / PREDICTED_PNG))
    figure, axes = _figure()
    axes.scatter(guess.ravel(), residual.ravel(), s=8, alpha=0.5, label="samples")
    axes.axhline(0, color="black", linewidth=1, label="zero error")
    axes.set(xlabel="predicted target (target units)", ylabel="residual = actual - predicted (target units)")
    axes.set_title(f"Residuals against prediction ({which} data)", **TITLE)
    axes.legend()
    written.append(_save(figure, directory / RESIDUALS_PNG))
    figure, axes = _figure()
    axes.hist(residual.ravel(), bins=40, color="tab:blue", alpha=0.8, label=f"{residual.size} residuals")
    axes.axvline(0, color="black", linewidth=1, label="zero error")
    axes.set(xlabel="residual = actual - predicted (target units)", ylabel="number of samples")
    axes.set_title(f"Residual histogram ({which} data)", **TITLE)
    axes.legend()
    written.append(_save(figure, directory / HISTOGRAM_PNG))
    return written
