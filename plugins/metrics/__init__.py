"""The built-in metrics, registered by one plugin (the `metrics` entry point), grouped by what they read:

- `classification`: the predicted class: accuracy, balanced_accuracy, macro precision, recall and f1, and
  log_loss (the probability of the true class);
- `ranking`: the order of the predicted probabilities: roc_auc and top_k_accuracy (param `k`);
- `regression`: mae, rmse, mape, r2 and explained_variance.

Each takes the dataset's targets (`y_true`: class labels, or regression values of shape (n,) or (n, k)) and
the loss's link applied to the model's outputs (`y_pred`: probabilities, or values of shape (n, k)), computes
in float64 and returns a Python float. Metrics with params take them from the experiment:
``training.metrics = ["accuracy", {name = "top_k_accuracy", k = 3}]``.
"""

from __future__ import annotations

from framework.components import Metric
from framework.markers import hookimpl
from plugins.metrics.classification import (
    CLASSIFICATION,
    F1,
    Accuracy,
    BalancedAccuracy,
    LogLoss,
    Precision,
    Recall,
)
from plugins.metrics.ranking import RANKING, RocAuc, TopKAccuracy
from plugins.metrics.regression import MAE, MAPE, R2, REGRESSION, RMSE, ExplainedVariance

__all__ = [
    "F1",
    "MAE",
    "MAPE",
    "R2",
    "RMSE",
    "Accuracy",
    "BalancedAccuracy",
    "ExplainedVariance",
    "LogLoss",
    "Precision",
    "Recall",
    "RocAuc",
    "TopKAccuracy",
    "register_metrics",
]


@hookimpl
def register_metrics() -> list[type[Metric]]:
    return [*CLASSIFICATION, *RANKING, *REGRESSION]
