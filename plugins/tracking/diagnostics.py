"""Evaluation pictures of a finished run, logged under `diagnostics/` (issue 16).

On the validation split (the training data when there is none), after training:

- classification: `confusion_matrix.png` (counts and row-normalised), `classes.csv` (precision, recall, F1 and
  support per class), `roc.png` and `precision_recall.png` with their areas (binary: one curve; multiclass: one
  curve per class, one-vs-rest);
- regression: `predicted_vs_actual.png` (with the identity line), `residuals.png` (residual against
  prediction) and `residual_histogram.png`, in the targets' own units.

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


def predictions(trainer: Trainer, X: Array) -> Array:
    """The model's predictions for already preprocessed features: the link, then the targets' own units."""
    model = trainer.model
    out = model.outputs(X)
    result = np.asarray(model.link(out)) if model.link is not None else np.asarray(out)
    if model.target_scaler is not None:
        result = model.target_scaler.inverse_transform(result)
    return result


def render(trainer: Trainer, directory: Path) -> list[Path]:
    """Every picture (and `classes.csv`) that fits the run's task, written into `directory`."""
    which, X, y = evaluation_split(trainer)
    predicted = predictions(trainer, X)
    if trainer.task == "regression":
        return regression_pictures(np.asarray(y, dtype=np.float64), predicted.astype(np.float64), which, directory)
    return classification_pictures(np.asarray(y, dtype=np.int64), predicted.astype(np.float64), which, directory)


def _figure(width: float = 6.4, height: float = 4.8) -> tuple[Any, Any]:
    # A Figure without pyplot (its import and global state are not needed to write a PNG), and a fixed layout:
    # tight_layout would draw every figure twice, and these are drawn while the user waits.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    axes = figure.subplots(gridspec_kw={"left": 0.12, "right": 0.95, "bottom": 0.11, "top": 0.92})
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
        axes.set_title(f"{title} on the {which} data ({'one-vs-rest' if k > 2 else 'binary'})")
        axes.legend(
            fontsize="small", ncol=2 if len(curves) > 5 else 1, loc="lower right" if name == ROC_PNG else "lower left"
        )
        written.append(_save(figure, directory / name))
    return written


def _confusion_png(counts: Array, which: str, path: Path) -> Path:
    """One panel: each cell's colour is its share of the true class, its text the count (and the share)."""
    k = len(counts)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    figure, axes = _figure(7.2, 6.0)
    image = axes.imshow(share, cmap="Blues", vmin=0, vmax=1)
    bar = figure.colorbar(image, ax=axes, fraction=0.046)
    bar.ax.set_title("share of\ntrue class", fontsize=8)
    axes.set(xlabel="predicted class", ylabel="true class", xticks=range(k), yticks=range(k))
    axes.set_title(f"Confusion matrix, counts ({which} data)")
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
    axes.set_title(f"Predicted against actual ({which} data)")
    axes.legend()
    written.append(_save(figure, directory / PREDICTED_PNG))
    figure, axes = _figure()
    axes.scatter(guess.ravel(), residual.ravel(), s=8, alpha=0.5, label="samples")
    axes.axhline(0, color="black", linewidth=1, label="zero error")
    axes.set(xlabel="predicted target (target units)", ylabel="residual = actual - predicted (target units)")
    axes.set_title(f"Residuals against prediction ({which} data)")
    axes.legend()
    written.append(_save(figure, directory / RESIDUALS_PNG))
    figure, axes = _figure()
    axes.hist(residual.ravel(), bins=40, color="tab:blue", alpha=0.8, label=f"{residual.size} residuals")
    axes.axvline(0, color="black", linewidth=1, label="zero error")
    axes.set(xlabel="residual = actual - predicted (target units)", ylabel="number of samples")
    axes.set_title(f"Residual histogram ({which} data)")
    axes.legend()
    written.append(_save(figure, directory / HISTOGRAM_PNG))
    return written
