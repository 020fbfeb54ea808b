"""The link of each built-in loss (`Loss.link`: outputs -> predictions), by the loss's name.

The numpy-only pyfunc loader applies these to a saved model's outputs; `tests/plugins` checks that each equals
the loss's own `link`, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

from .core import Array, sigmoid, softmax


def identity(outputs: Array) -> Array:
    """Predictions are the outputs themselves (regression)."""
    return outputs


def logistic(outputs: Array) -> Array:
    """P(class 1) = σ(o), for one logit per sample."""
    return sigmoid(outputs)


def probabilities(outputs: Array) -> Array:
    """P(class j) = softmax(o)_j, for one logit per class."""
    return softmax(outputs)


LOSS_LINKS: dict[str, Callable[[Array], Array]] = {
    "mse": identity,
    "binary_cross_entropy": logistic,
    "cross_entropy": probabilities,
}
"""Every built-in loss's link, by the loss's registered name."""
