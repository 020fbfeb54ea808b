"""The built-in metrics against hand-computed values and against scikit-learn, an independent oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from framework.components import Metric
from framework.pluginmanager import create_plugin_manager
from framework.registry import Registry
from plugins.metrics import MAE, R2, Accuracy

# Every plugin of the `backprop` entry-point group, built-ins included, exactly as a run loads them.
REGISTRY = Registry.from_host(create_plugin_manager(strict=True))


@pytest.mark.parametrize("name", REGISTRY.names("metric"))
def test_every_metric_declares_a_direction_and_its_tasks(name: str) -> None:
    cls = REGISTRY.get("metric", name)
    assert issubclass(cls, Metric)
    assert cls.direction in ("min", "max")
    assert cls.tasks and set(cls.tasks) <= {"regression", "binary", "multiclass"}
    assert cls.summary()


def test_builtin_directions() -> None:
    assert (Accuracy.direction, MAE.direction, R2.direction) == ("max", "min", "max")
    assert {"accuracy", "mae", "r2"} <= set(REGISTRY.names("metric"))


# ---------------------------------------------------------------------------------------------------------
# accuracy
# ---------------------------------------------------------------------------------------------------------


def test_accuracy_multiclass_by_hand() -> None:
    # Predicted classes (argmax of each row) 0, 2, 2, 1 against labels 0, 1, 2, 1: three of four right.
    y_pred = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.2, 0.6], [0.1, 0.8, 0.1]])
    assert Accuracy()(np.array([0, 1, 2, 1]), y_pred) == 0.75


@pytest.mark.parametrize(
    "y_true", [np.array([0, 1, 1, 0]), np.array([[0.0], [1.0], [1.0], [0.0]])], ids=["int-labels", "float-column"]
)
def test_accuracy_binary_by_hand(y_true: np.ndarray) -> None:
    # P(class 1) 0.2, 0.7, 0.5, 0.9 → classes 0, 1, 0 (0.5 is not above the threshold), 1: two of four right.
    y_pred = np.array([[0.2], [0.7], [0.5], [0.9]])
    result = Accuracy()(y_true, y_pred)
    assert type(result) is float and result == 0.5


def test_accuracy_against_sklearn() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=200)
    probs = rng.dirichlet(np.ones(4), size=200)
    assert Accuracy()(labels, probs) == pytest.approx(skm.accuracy_score(labels, probs.argmax(axis=1)))
    binary = rng.integers(0, 2, size=200)
    p1 = rng.uniform(size=(200, 1))
    assert Accuracy()(binary, p1) == pytest.approx(skm.accuracy_score(binary, (p1[:, 0] > 0.5).astype(int)))


# ---------------------------------------------------------------------------------------------------------
# mae and r2
# ---------------------------------------------------------------------------------------------------------


def test_mae_by_hand() -> None:
    # |1 - 1.5| + |2 - 2| + |3 - 1| = 2.5 over three samples.
    result = MAE()(np.array([1.0, 2.0, 3.0]), np.array([[1.5], [2.0], [1.0]]))
    assert type(result) is float and result == pytest.approx(2.5 / 3, rel=1e-15)


def test_r2_by_hand() -> None:
    # SS_res = 1 (only the last sample is off, by 1); the mean is 2.5, so SS_tot = 2.25 + 0.25 + 0.25 + 2.25 = 5.
    result = R2()(np.array([1.0, 2.0, 3.0, 4.0]), np.array([[1.0], [2.0], [3.0], [5.0]]))
    assert type(result) is float and result == pytest.approx(0.8, rel=1e-15)


@pytest.mark.parametrize("n_outputs", [1, 3])
def test_mae_and_r2_against_sklearn(n_outputs: int) -> None:
    rng = np.random.default_rng(n_outputs)
    y_true = rng.normal(size=(50, n_outputs)) * [1.0, 10.0, 0.1][:n_outputs]
    y_pred = (y_true + rng.normal(scale=0.5, size=y_true.shape)).astype(np.float32)
    targets = y_true[:, 0] if n_outputs == 1 else y_true  # a single target comes as (n,)
    assert MAE()(targets, y_pred) == pytest.approx(skm.mean_absolute_error(y_true, y_pred), rel=1e-12)
    assert R2()(targets, y_pred) == pytest.approx(skm.r2_score(y_true, y_pred), rel=1e-12)


def test_r2_of_a_constant_column_follows_sklearn() -> None:
    # sklearn's default (force_finite): a constant target scores 1 if predicted exactly, else 0.
    y_true = np.array([[1.0, 2.0], [1.0, 3.0], [1.0, 5.0]])
    exact = np.array([[1.0, 2.5], [1.0, 3.0], [1.0, 4.0]])
    wrong = np.array([[1.5, 2.5], [1.0, 3.0], [1.0, 4.0]])
    assert R2()(y_true, exact) == pytest.approx(skm.r2_score(y_true, exact), rel=1e-12)
    assert R2()(y_true, wrong) == pytest.approx(skm.r2_score(y_true, wrong), rel=1e-12)
    assert R2()(y_true, exact) != R2()(y_true, wrong)


def test_r2_of_one_sample_is_nan() -> None:
    assert math.isnan(R2()(np.array([1.0]), np.array([[2.0]])))


def test_shape_mismatches_are_errors() -> None:
    with pytest.raises(ValueError, match="mae"):
        MAE()(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="accuracy"):
        Accuracy()(np.zeros(3), np.zeros((4, 2)))


# -- macro precision, recall, F1, log loss, rmse -----------------------------------------------------------


def test_macro_scores_by_hand() -> None:
    from plugins.metrics import F1, Precision, Recall

    # labels 0 0 1 1 2, predicted 0 1 1 1 0 (one-hot-ish probabilities):
    #   class 0: TP 1, predicted 2, actual 2 -> precision 1/2, recall 1/2, F1 1/2
    #   class 1: TP 2, predicted 3, actual 2 -> precision 2/3, recall 1,   F1 4/5
    #   class 2: TP 0, predicted 0, actual 1 -> precision 0 (zero division), recall 0, F1 0
    y = np.array([0, 0, 1, 1, 2])
    p = np.eye(3)[[0, 1, 1, 1, 0]] * 0.8 + 0.05
    assert Precision()(y, p) == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    assert Recall()(y, p) == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert F1()(y, p) == pytest.approx((1 / 2 + 4 / 5 + 0) / 3)
    assert (Precision.direction, Recall.direction, F1.direction) == ("max", "max", "max")


@pytest.mark.parametrize("n_classes", [2, 4])
def test_classification_scores_against_sklearn(n_classes: int) -> None:
    from plugins.metrics import F1, LogLoss, Precision, Recall

    rng = np.random.default_rng(n_classes)
    y = rng.integers(0, n_classes, 200)
    logits = rng.normal(size=(200, n_classes)) + 2 * np.eye(n_classes)[y]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    if n_classes == 2:
        probs = probs[:, 1:]  # one column: P(class 1), as binary_cross_entropy's link gives
        predicted = (probs[:, 0] > 0.5).astype(int)
        sk_probs = np.column_stack([1 - probs[:, 0], probs[:, 0]])
    else:
        predicted = probs.argmax(axis=1)
        sk_probs = probs
    kw = {"average": "macro", "zero_division": 0}
    assert Precision()(y, probs) == pytest.approx(skm.precision_score(y, predicted, **kw), rel=1e-12)
    assert Recall()(y, probs) == pytest.approx(skm.recall_score(y, predicted, **kw), rel=1e-12)
    assert F1()(y, probs) == pytest.approx(skm.f1_score(y, predicted, **kw), rel=1e-12)
    expected = skm.log_loss(y, sk_probs, labels=list(range(n_classes)))
    assert LogLoss()(y, probs) == pytest.approx(expected, rel=1e-9)
    assert LogLoss.direction == "min"


@pytest.mark.parametrize("n_outputs", [1, 3])
def test_rmse_against_sklearn(n_outputs: int) -> None:
    from plugins.metrics import RMSE

    rng = np.random.default_rng(5)
    t, p = rng.normal(size=(50, n_outputs)), rng.normal(size=(50, n_outputs))
    assert RMSE()(t, p) == pytest.approx(skm.root_mean_squared_error(t, p), rel=1e-12)
    assert RMSE()(np.array([1.0, 2.0]), np.array([[1.0], [4.0]])) == pytest.approx(math.sqrt(2))  # √((0 + 4)/2)
    assert RMSE.direction == "min"
