"""The built-in losses, grouped by kind:

- `regression`: mse, mae, huber, log_cosh, poisson (element-wise means over the outputs);
- `classification`: binary_cross_entropy and cross_entropy (on logits, their link fused in), both with
  `label_smoothing` and `class_weight` (`weights`: "balanced" or a table by class);
- `focal`: focal, the cross entropy that down-weights confident right answers (one logit, or one per class);
- `margin`: hinge and squared_hinge, on one score per sample for two classes;
- `distribution`: kl_divergence, from target distributions (or one-hot labels) to the softmax.

Each class's docstring states L and dL/do; `value` is the mean over the batch and `gradient` carries its 1/n.
Each loss's `link` is the function `framework.functional.LOSS_LINKS` lists under its name.
"""

from __future__ import annotations

from framework.components import Loss
from framework.markers import hookimpl
from plugins.losses.classification import BinaryCrossEntropy, CrossEntropy
from plugins.losses.distribution import KLDivergence
from plugins.losses.focal import Focal
from plugins.losses.margin import Hinge, SquaredHinge
from plugins.losses.regression import MAE, MSE, Huber, LogCosh, Poisson

__all__ = [
    "BUILTIN",
    "MAE",
    "MSE",
    "BinaryCrossEntropy",
    "CrossEntropy",
    "Focal",
    "Hinge",
    "Huber",
    "KLDivergence",
    "LogCosh",
    "Poisson",
    "SquaredHinge",
]

BUILTIN: list[type[Loss]] = [
    MSE,
    MAE,
    Huber,
    LogCosh,
    Poisson,
    BinaryCrossEntropy,
    CrossEntropy,
    Focal,
    Hinge,
    SquaredHinge,
    KLDivergence,
]


@hookimpl
def register_losses() -> list[type[Loss]]:
    return list(BUILTIN)
