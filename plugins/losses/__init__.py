"""The built-in losses, grouped by task:

- `regression`: mse;
- `classification`: binary_cross_entropy and cross_entropy (on logits, their link fused in).

Each class's docstring states L and dL/do; `value` is the mean over the batch and `gradient` carries its 1/n.
"""

from __future__ import annotations

from framework.components import Loss
from framework.markers import hookimpl
from plugins.losses.classification import BinaryCrossEntropy, CrossEntropy
from plugins.losses.regression import MSE

BUILTIN: list[type[Loss]] = [MSE, BinaryCrossEntropy, CrossEntropy]


@hookimpl
def register_losses() -> list[type[Loss]]:
    return list(BUILTIN)
