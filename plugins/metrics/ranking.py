"""Metrics of the predicted probabilities' order rather than of one predicted class: roc_auc, top_k_accuracy.

`y_true` holds integer class labels; `y_pred` the loss's link: one column of P(class 1) for a binary task,
or one column per class.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from framework.components import Array, Direction, Metric, Params, Task
from plugins.metrics.classification import labels_and_probabilities


def average_ranks(scores: Array) -> Array:
    """The 1-based rank of each score in ascending order, tied scores sharing the mean of their ranks.

    Sorted, the scores fall into runs of equal values; a run covering ranks a..b gives each of its members
    (a + b) / 2. With `np.unique`, the run of value v ends at rank c (the count of scores <= v) and has m
    members, so their rank is c - (m - 1) / 2.
    """
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def binary_auc(positive: Array, scores: Array) -> float:
    """The area under the ROC curve of `scores` for the boolean labels `positive`, or NaN without both classes.

    By the Mann–Whitney identity it is the probability that a random positive scores above a random negative
    (a tie counting 1/2): AUC = (R₊ - n₊(n₊ + 1)/2) / (n₊·n₋), R₊ the sum of the positives' ranks.
    """
    n_pos = int(np.count_nonzero(positive))
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    rank_sum = float(np.sum(average_ranks(scores)[positive]))
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


class RocAuc(Metric):
    """Area under the ROC curve: the chance that a random sample of a class is scored above one of another.

    Binary: the AUC of P(class 1) (the one column, or the second of two). Multiclass: one-vs-rest, macro
    averaged, as scikit-learn's `roc_auc_score(multi_class="ovr")`: for each class c present in y_true, the
    AUC of column c for "label is c" against the rest, then their mean. Tied scores get the average of
    their ranks (a tie between a positive and a negative counts 1/2). NaN when y_true holds a single class
    (the AUC is then undefined; scikit-learn raises), as r2 does for a single sample.
    """

    name: ClassVar[str] = "roc_auc"
    direction: ClassVar[Direction] = "max"
    tasks: ClassVar[tuple[Task, ...]] = ("binary", "multiclass")

    def __call__(self, y_true: Array, y_pred: Array) -> float:
        labels, probs = labels_and_probabilities(self.name, y_true, y_pred)
        k = probs.shape[1]
        if k <= 2:
            if labels.max() > 1:
                raise ValueError(f"{self.name}: labels above 1 for a binary prediction of {k} column(s)")
            return binary_auc(labels == 1, probs[:, k - 1])
        if labels.max() >= k:
            raise ValueError(f"{self.name}: labels outside 0..{k - 1}")
        present = np.unique(labels)
        if len(present) < 2:
            return float("nan")
        # One binary AUC per class present (a loop over classes, not samples).
        return float(np.mean([binary_auc(labels == c, probs[:, c]) for c in present]))


class TopKAccuracyParams(Params):
    k: int = Field(5, ge=1, description="How many of the most probable classes may hold the label.")


class TopKAccuracy(Metric):
    """Top-k accuracy: the fraction of samples whose label is among the k classes of highest probability.

    A label tied with other classes at the k-th place counts as among them (as Keras's `in_top_k`): the
    label's rank is the number of classes with a strictly higher probability, and a hit is a rank below k.
    With k >= the number of classes every sample is a hit and the score is 1 whatever the model (scikit-learn
    warns the same); k = 1 is accuracy, except on ties. A binary prediction (one column p) is the two
    classes' probabilities 1 - p and p.
    """

    name: ClassVar[str] = "top_k_accuracy"
    direction: ClassVar[Direction] = "max"
    tasks: ClassVar[tuple[Task, ...]] = ("binary", "multiclass")
    Params: ClassVar[type[Params]] = TopKAccuracyParams
    params: TopKAccuracyParams

    def __call__(self, y_true: Array, y_pred: Array) -> float:
        labels, probs = labels_and_probabilities(self.name, y_true, y_pred)
        if probs.shape[1] == 1:
            probs = np.column_stack([1.0 - probs[:, 0], probs[:, 0]])
        if labels.max() >= probs.shape[1]:
            raise ValueError(f"{self.name}: labels outside 0..{probs.shape[1] - 1}")
        p_label = probs[np.arange(len(labels)), labels]
        higher = np.count_nonzero(probs > p_label[:, None], axis=1)  # the label's rank, from 0
        return float(np.mean(higher < self.params.k))


RANKING: list[type[Metric]] = [RocAuc, TopKAccuracy]
