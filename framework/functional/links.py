"""The link of each built-in loss (`Loss.link`: outputs -> predictions), by the loss's name.

The numpy-only pyfunc loader applies these to a saved model's outputs; each built-in loss's `link` calls the
function listed here, and `tests/plugins/test_losses.py` checks that the two agree bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .core import Array, sigmoid, softmax


def identity(outputs: Array) -> Array:
    """Predictions are the outputs themselves (regression)."""
    return outputs


def logistic(outputs: Array) -> Array:
    """P(class 1) = σ(o), for one logit per sample (for the margin losses: σ of the score, > 1/2 for class 1)."""
    return sigmoid(outputs)


def probabilities(outputs: Array) -> Array:
    """P(class j) = softmax(o)_j, for one logit per class."""
    return softmax(outputs)


def logistic_or_probabilities(outputs: Array) -> Array:
    """σ(o) for one output column (a binary logit), softmax(o) for several (one logit per class)."""
    return sigmoid(outputs) if outputs.shape[1] == 1 else softmax(outputs)


def rates(outputs: Array) -> Array:
    """λ = e^o, the Poisson rate of a log-rate output.

    e^o is infinite above log(max float) (o > 88.7 in float32, 709.8 in float64), where no rate is
    representable: that inf is the answer, not an accident, hence no overflow warning.
    """
    with np.errstate(over="ignore"):
        return np.exp(outputs)


LOSS_LINKS: dict[str, Callable[[Array], Array]] = {
    "mse": identity,
    "mae": identity,
    "huber": identity,
    "log_cosh": identity,
    "poisson": rates,
    "binary_cross_entropy": logistic,
    "cross_entropy": probabilities,
    "focal": logistic_or_probabilities,
    "hinge": logistic,
    "squared_hinge": logistic,
    "kl_divergence": probabilities,
}
"""Every built-in loss's link, by the loss's registered name."""
