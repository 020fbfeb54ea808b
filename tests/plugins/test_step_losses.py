"""Per-step batch losses: one vectorised call gives each batch's own loss."""

from __future__ import annotations

import numpy as np
import pytest

from plugins.losses import MSE, BinaryCrossEntropy, CrossEntropy
from plugins.tracking.sender import batch_losses


def by_hand(name: str, out: np.ndarray, t: np.ndarray) -> float:
    """Each loss's definition, written out independently of the plugin."""
    if name == "mse":
        return float(np.mean((out - t) ** 2))
    if name == "binary_cross_entropy":
        p = 1 / (1 + np.exp(-out))
        return float(np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p))))
    log_softmax = out - np.log(np.exp(out).sum(axis=1, keepdims=True))
    return float(np.mean(-(t * log_softmax).sum(axis=1)))


@pytest.mark.parametrize(("loss", "width"), [(MSE(), 3), (BinaryCrossEntropy(), 1), (CrossEntropy(), 4)])
def test_batch_losses_equal_each_batchs_own_loss(loss: object, width: int) -> None:
    rng = np.random.default_rng(0)
    sizes = [8, 8, 8, 5]  # the last batch is smaller
    outputs = [rng.normal(size=(n, width)) for n in sizes]
    if width == 1:
        targets = [rng.integers(0, 2, size=(n, 1)).astype(float) for n in sizes]
    elif loss.name == "cross_entropy":  # type: ignore[attr-defined]
        targets = [np.eye(width)[rng.integers(0, width, size=n)] for n in sizes]
    else:
        targets = [rng.normal(size=(n, width)) for n in sizes]
    got = batch_losses(loss, np.concatenate(outputs), np.concatenate(targets), batch_size=8)
    expected = [by_hand(loss.name, o, t) for o, t in zip(outputs, targets, strict=True)]  # type: ignore[attr-defined]
    np.testing.assert_allclose(got, expected, rtol=1e-10)
