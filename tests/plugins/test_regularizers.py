"""Dense's regularisers: the l1/l2 penalty (in the gradient and in the reported loss) and the max_norm constraint.

The code is in `framework/model.py` (Dense.penalty, _add_penalty_gradient, constrain) and `framework/trainer.py`
(the penalty added to the reported losses, the constraint after every step). Every expected number is
recomputed here from the weights with the rule written out: finite differences for the gradient, and one
step of full-batch gradient descent (or Adam) done by hand on a four-sample data set.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pytest

from framework import DataBundle, Dataset, hookimpl
from framework.build import prepare_run
from framework.config import Experiment
from framework.model import Dense
from framework.testing import check_layer
from framework.testing.layer_check import attach_installed_components
from framework.testing.numeric import assert_gradient, numerical_gradient

# Six samples of two features and one target: four train the model, two validate it (the run's split).
X_TINY = np.array([[1.0, 2.0], [0.0, -1.0], [3.0, 1.0], [-2.0, 0.5], [1.5, -0.5], [0.5, 0.5]])
Y_TINY = np.array([1.0, -0.5, 2.0, 0.0, 0.75, 0.25])


class TinyRegression(Dataset):
    """Six fixed samples, small enough to recompute every number of a run by hand."""

    name: ClassVar[str] = "tiny_regression"

    def load(self, rng: np.random.Generator) -> DataBundle:
        return DataBundle(X_TINY.copy(), Y_TINY.copy(), "regression", ["a", "b"], ["y"])


class TinyPlugin:
    @hookimpl
    def register_datasets(self) -> list[type[Dataset]]:
        return [TinyRegression]


def tiny_run(
    layers: list[dict[str, Any]],
    optimizer: dict[str, Any],
    epochs: int = 1,
    callbacks: tuple[object, ...] = (),
    **training: Any,
) -> Any:
    """A built run on the tiny data: full batch (4 training samples), no shuffle, float64, untrained."""
    experiment = Experiment.from_dict(
        {
            "name": "regularizers",
            "seed": 0,
            "dtype": "float64",
            "data": {"name": "tiny_regression", "validation_split": 1 / 3, "standardize": False},
            "model": {"layers": layers},
            "loss": {"name": "mse"},
            "optimizer": optimizer,
            "training": {"epochs": epochs, "batch_size": 64, "shuffle": False, **training},
            "tracking": {"enabled": False},
        }
    )
    return prepare_run(experiment, callbacks, track=False, plugins=[TinyPlugin()])


def built_dense(**params: Any) -> Dense:
    layer = Dense(**params)
    attach_installed_components(layer)
    layer.build(4, np.dtype(np.float64), np.random.default_rng(0))
    return layer


def penalty_by_hand(W: np.ndarray, l1: float, l2: float) -> float:
    """λ₁·Σ|w| + λ₂·Σw², one element at a time."""
    return l1 * math.fsum(abs(w) for w in W.flat) + l2 * math.fsum(w * w for w in W.flat)


# ---------------------------------------------------------------------------------------------------------
# The penalty's gradient
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("l1", "l2"), [(0.3, 0.0), (0.0, 0.7), (0.3, 0.7)])
def test_a_penalised_dense_passes_check_layer(l1: float, l2: float) -> None:
    # check_layer differentiates sum(out · R) + layer.penalty() by central differences.
    check_layer(Dense(units=3, activation="tanh", l1=l1, l2=l2))


def test_the_penalty_gradient_is_l1_sign_plus_twice_l2_w() -> None:
    l1, l2 = 0.3, 0.7
    plain, penalised = built_dense(units=3, activation="tanh"), built_dense(units=3, activation="tanh", l1=l1, l2=l2)
    W = np.array([[0.5, -1.0, 0.0], [2.0, -0.25, 1.5], [-0.75, 0.1, 3.0], [1.0, 0.0, -2.0]])  # two exact zeros
    for layer in (plain, penalised):
        layer.W[...] = W
        layer.b[...] = [0.1, -0.2, 0.3]
    x = np.random.default_rng(1).normal(size=(5, 4))
    upstream = np.random.default_rng(2).normal(size=(5, 3))
    for layer in (plain, penalised):
        layer.forward(x, True)
        layer.backward(upstream.copy())
    sign = np.array([[math.copysign(1.0, w) if w else 0.0 for w in row] for row in W])  # sign(0) = 0: subgradient
    np.testing.assert_allclose(penalised.dW - plain.dW, l1 * sign + 2 * l2 * W, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(penalised.db, plain.db)  # biases are not penalised
    assert math.isclose(penalised.penalty(), penalty_by_hand(W, l1, l2), rel_tol=1e-14)
    assert plain.penalty() == 0.0 and not plain.penalized() and penalised.penalized()


def test_the_penalty_gradient_matches_finite_differences_of_the_penalty_alone() -> None:
    layer = built_dense(units=2, l1=0.2, l2=0.5)
    layer.W[...] = np.random.default_rng(3).uniform(0.1, 2.0, size=layer.W.shape) * [1, -1]  # away from 0
    x = np.zeros((3, 4))  # the data term vanishes: dW is the penalty's gradient alone
    layer.forward(x, True)
    layer.backward(np.zeros((3, 2)))
    assert_gradient("dense penalty", layer.dW, numerical_gradient(layer.penalty, layer.W))


def test_float32_layers_keep_their_dtype_with_penalties() -> None:
    layer = Dense(units=3, activation="relu", l1=0.1, l2=0.1)
    attach_installed_components(layer)
    layer.build(4, np.dtype(np.float32), np.random.default_rng(0))
    layer.forward(np.ones((2, 4), dtype=np.float32), True)
    layer.backward(np.ones((2, 3), dtype=np.float32))
    assert layer.dW.dtype == np.float32 and isinstance(layer.penalty(), float)


# ---------------------------------------------------------------------------------------------------------
# The reported losses of a run
# ---------------------------------------------------------------------------------------------------------


def test_reported_losses_are_the_data_loss_plus_the_penalty_of_the_final_weights() -> None:
    l1, l2_hidden, l2_out, lr = 0.05, 0.02, 0.1, 0.1
    run = tiny_run([{"units": 2, "l1": l1, "l2": l2_hidden}, {"units": 1, "l2": l2_out}], {"name": "sgd", "lr": lr})
    trainer = run.trainer
    hidden, out = trainer.model.layers
    W1, b1, W2, b2 = (a.copy() for a in (hidden.W, hidden.b, out.W, out.b))
    X, T = trainer.train.X, trainer.train.targets
    Xv, Tv = trainer.val.X, trainer.val.targets
    assert len(X) == 4 and len(Xv) == 2

    result = trainer.fit()

    # One step of gradient descent by hand. Forward: h = X W1 + b1, o = h W2 + b2 (identity activations);
    # mse = mean (o - t)², so dL/do = 2 (o - t) / n; backward by the chain rule, plus the penalty's gradient.
    h = X @ W1 + b1
    o = h @ W2 + b2
    g = 2 * (o - T) / len(X)
    dW2 = h.T @ g + 2 * l2_out * W2
    db2 = g.sum(axis=0)
    gh = g @ W2.T
    dW1 = X.T @ gh + l1 * np.sign(W1) + 2 * l2_hidden * W1
    db1 = gh.sum(axis=0)
    final = [W1 - lr * dW1, b1 - lr * db1, W2 - lr * dW2, b2 - lr * db2]
    for got, expected in zip([hidden.W, hidden.b, out.W, out.b], final, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)

    penalty = penalty_by_hand(final[0], l1, l2_hidden) + penalty_by_hand(final[2], 0.0, l2_out)
    # The training loss is the epoch's data loss (the one full batch, before its step) plus the penalty at
    # the weights the epoch ends with; the validation loss is all at the final weights.
    train_data = float(np.mean((o - T) ** 2))
    val_out = (Xv @ final[0] + final[1]) @ final[2] + final[3]
    val_data = float(np.mean((val_out - Tv) ** 2))
    logs = result.history.last()
    assert logs["train_loss"] == pytest.approx(train_data + penalty, rel=1e-12)
    assert logs["val_loss"] == pytest.approx(val_data + penalty, rel=1e-12)
    assert penalty > 1e-3 * val_data  # the penalty is a visible part of the loss, not lost in rounding


# ---------------------------------------------------------------------------------------------------------
# max_norm
# ---------------------------------------------------------------------------------------------------------


def test_constrain_keeps_short_columns_and_rescales_long_ones_to_max_norm() -> None:
    layer = built_dense(units=3, max_norm=1.0)
    W = np.array([[0.3, 0.6, 3.0], [0.0, 0.8, 4.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # norms 0.3, 1, 5
    layer.W[...] = W
    assert layer.constrained()
    layer.constrain()
    np.testing.assert_array_equal(layer.W[:, :2], W[:, :2])  # 0.3 < 1, and 1 is not above 1: untouched
    np.testing.assert_allclose(layer.W[:, 2], [0.6, 0.8, 0.0, 0.0], rtol=1e-15)  # (3, 4) / 5
    assert math.isclose(math.hypot(*layer.W[:, 2]), 1.0, rel_tol=1e-15)


def test_constrain_keeps_float32() -> None:
    layer = Dense(units=2, max_norm=0.5)
    attach_installed_components(layer)
    layer.build(3, np.dtype(np.float32), np.random.default_rng(0))
    layer.W[...] = 2.0
    layer.constrain()
    assert layer.W.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(layer.W, axis=0), 0.5, rtol=1e-6)


def test_without_max_norm_nothing_is_constrained() -> None:
    layer = built_dense(units=2)
    before = layer.W.copy()
    layer.W *= 100
    layer.constrain()
    assert not layer.constrained()
    np.testing.assert_array_equal(layer.W, before * 100)


def test_after_every_step_of_training_no_column_is_longer_than_max_norm() -> None:
    limit = 0.3

    class Norms:
        """Records the longest column of every dense kernel after each optimiser step."""

        def __init__(self) -> None:
            self.longest: list[float] = []

        @hookimpl
        def after_step(self, trainer: Any) -> None:
            self.longest.append(max(float(np.linalg.norm(layer.W, axis=0).max()) for layer in trainer.model.layers))

    layers = [{"units": 4, "activation": "tanh", "max_norm": limit}, {"units": 1, "max_norm": limit}]
    unconstrained = [{k: v for k, v in layer.items() if k != "max_norm"} for layer in layers]
    free = tiny_run(unconstrained, {"name": "sgd", "lr": 0.5}, 5)
    free.trainer.fit()
    assert max(float(np.linalg.norm(layer.W, axis=0).max()) for layer in free.trainer.model.layers) > 2 * limit

    norms = Norms()
    run = tiny_run(layers, {"name": "sgd", "lr": 0.5}, 5, callbacks=(norms,), batch_size=2)
    run.trainer.fit()
    assert len(norms.longest) == 10  # 5 epochs of 2 batches
    assert max(norms.longest) <= limit + 1e-6
    assert max(norms.longest) > limit - 1e-6  # the constraint was active, not merely never reached
    for layer in run.trainer.model.layers:
        assert np.all(np.linalg.norm(layer.W, axis=0) <= limit + 1e-6)


# ---------------------------------------------------------------------------------------------------------
# l2 is not [optimizer] weight_decay
# ---------------------------------------------------------------------------------------------------------


def test_l2_and_adams_weight_decay_give_different_updates() -> None:
    # Dense's l2 = λ adds 2λ·W to dL/dW (the weights only) and λ·ΣW² to the reported loss; weight_decay = λ
    # adds λ·p to the gradient of every parameter, biases included, and nothing to the loss. Adam's first
    # step is p ← p - lr·m̂/(√v̂ + ε) with m̂ = g and √v̂ = |g| (the bias corrections undo (1 - β)); ε = 1 keeps
    # the gradient's size in the step (with ε = 1e-8 it would be lr·sign(g), the same for both).
    lam, lr, eps = 0.5, 0.1, 1.0
    adam = {"name": "adam", "lr": lr, "epsilon": eps}
    layer = {"units": 1, "bias_init": {"name": "constant", "value": 0.5}}
    with_l2 = tiny_run([{**layer, "l2": lam}], adam)
    with_decay = tiny_run([layer], {**adam, "weight_decay": lam})
    W0, b0 = with_l2.trainer.model.layers[0].W.copy(), with_l2.trainer.model.layers[0].b.copy()
    np.testing.assert_array_equal(with_decay.trainer.model.layers[0].W, W0)  # the same start
    X, T = with_l2.trainer.train.X, with_l2.trainer.train.targets

    g = 2 * (X @ W0 + b0 - T) / len(X)  # dL/do of the mse
    dW, db = X.T @ g, g.sum(axis=0)

    def adam_first_step(p: np.ndarray, grad: np.ndarray) -> np.ndarray:
        return p - lr * grad / (np.abs(grad) + eps)

    expected = {
        "l2": (adam_first_step(W0, dW + 2 * lam * W0), adam_first_step(b0, db)),
        "weight_decay": (adam_first_step(W0, dW + lam * W0), adam_first_step(b0, db + lam * b0)),
    }
    for label, run in (("l2", with_l2), ("weight_decay", with_decay)):
        logs = run.trainer.fit().history.last()
        trained = run.trainer.model.layers[0]
        np.testing.assert_allclose(trained.W, expected[label][0], rtol=1e-12, err_msg=label)
        np.testing.assert_allclose(trained.b, expected[label][1], rtol=1e-12, err_msg=label)
        data_loss = float(np.mean((X @ W0 + b0 - T) ** 2))
        penalty = lam * float(np.sum(trained.W**2)) if label == "l2" else 0.0
        assert logs["train_loss"] == pytest.approx(data_loss + penalty, rel=1e-12), label
    l2_layer, decay_layer = with_l2.trainer.model.layers[0], with_decay.trainer.model.layers[0]
    assert not np.allclose(l2_layer.W, decay_layer.W)
    assert not np.allclose(l2_layer.b, decay_layer.b)  # weight decay moved the bias, l2 leaves it to the data
