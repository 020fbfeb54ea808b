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


# ---------------------------------------------------------------------------------------------------------
# The conformance kit, over every registered metric
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", REGISTRY.names("metric"))
def test_every_metric_passes_the_kit(name: str) -> None:
    from framework.testing import check_component

    check_component(REGISTRY.get("metric", name))


def test_the_new_metrics_are_registered_with_their_directions() -> None:
    expected = {
        "roc_auc": "max",
        "top_k_accuracy": "max",
        "balanced_accuracy": "max",
        "mape": "min",
        "explained_variance": "max",
    }
    assert {name: REGISTRY.get("metric", name).direction for name in expected} == expected


# ---------------------------------------------------------------------------------------------------------
# roc_auc
# ---------------------------------------------------------------------------------------------------------


def mann_whitney_auc(labels: list[int], scores: list[float], positive: int = 1) -> float:
    """P(a positive's score > a negative's), a tie counting 1/2, over every (positive, negative) pair."""
    pos = [s for s, t in zip(scores, labels, strict=True) if t == positive]
    neg = [s for s, t in zip(scores, labels, strict=True) if t != positive]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_roc_auc_by_hand() -> None:
    from plugins.metrics import RocAuc

    # Positives score 0.35 and 0.8, negatives 0.1 and 0.4: of the four pairs, 0.35 < 0.4 is the only loss.
    assert RocAuc()(np.array([0, 0, 1, 1]), np.array([[0.1], [0.4], [0.35], [0.8]])) == 0.75
    # Positives 0.5 and 0.9, negatives 0.5 and 0.2: wins 0.5 > 0.2, 0.9 > 0.5, 0.9 > 0.2 and the tie 0.5 = 0.5.
    assert RocAuc()(np.array([1, 0, 0, 1]), np.array([[0.5], [0.5], [0.2], [0.9]])) == 3.5 / 4


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_auc_binary_against_mann_whitney_and_sklearn(seed: int) -> None:
    from plugins.metrics import RocAuc

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=80)
    scores = np.round(rng.uniform(size=80) + 0.3 * labels, 1)  # rounded: many ties
    result = RocAuc()(labels, scores.reshape(-1, 1))
    assert type(result) is float
    assert result == pytest.approx(mann_whitney_auc(labels.tolist(), scores.tolist()), rel=1e-12)
    assert result == pytest.approx(skm.roc_auc_score(labels, scores), rel=1e-12)
    # Two columns (a softmax over two classes): the second is P(class 1).
    two = np.column_stack([1 - scores, scores])
    assert RocAuc()(labels, two) == pytest.approx(result, rel=1e-12)


@pytest.mark.parametrize("n_classes", [3, 5])
def test_roc_auc_multiclass_is_the_one_vs_rest_macro_average(n_classes: int) -> None:
    from plugins.metrics import RocAuc

    rng = np.random.default_rng(n_classes)
    labels = np.arange(120) % n_classes
    logits = np.round(rng.normal(size=(120, n_classes)) + np.eye(n_classes)[labels], 1)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    result = RocAuc()(labels, probs)
    by_class = [mann_whitney_auc(labels.tolist(), probs[:, c].tolist(), positive=c) for c in range(n_classes)]
    assert result == pytest.approx(sum(by_class) / n_classes, rel=1e-12)
    assert result == pytest.approx(skm.roc_auc_score(labels, probs, multi_class="ovr", average="macro"), rel=1e-12)


def test_roc_auc_multiclass_averages_over_the_classes_present() -> None:
    from plugins.metrics import RocAuc

    rng = np.random.default_rng(7)
    labels = np.array([0, 2, 0, 2, 2, 0, 2, 0])  # class 1 never occurs: its AUC is undefined and left out
    probs = rng.dirichlet(np.ones(3), size=8)
    expected = (
        mann_whitney_auc(labels.tolist(), probs[:, 0].tolist(), 0)
        + mann_whitney_auc(labels.tolist(), probs[:, 2].tolist(), 2)
    ) / 2
    assert RocAuc()(labels, probs) == pytest.approx(expected, rel=1e-12)


def test_roc_auc_of_a_single_class_is_nan() -> None:
    from plugins.metrics import RocAuc

    assert math.isnan(RocAuc()(np.array([1, 1, 1]), np.array([[0.2], [0.6], [0.9]])))
    assert math.isnan(RocAuc()(np.array([2, 2]), np.array([[0.1, 0.2, 0.7], [0.3, 0.3, 0.4]])))


# ---------------------------------------------------------------------------------------------------------
# top_k_accuracy
# ---------------------------------------------------------------------------------------------------------


def test_top_k_accuracy_by_hand() -> None:
    from plugins.metrics import TopKAccuracy

    probs = np.array(
        [
            [0.1, 0.2, 0.3, 0.4],  # label 2: second highest -> in the top 2, not the top 1
            [0.5, 0.1, 0.3, 0.1],  # label 0: the highest
            [0.25, 0.3, 0.4, 0.05],  # label 0: third -> in the top 3 only
            [0.1, 0.6, 0.2, 0.1],  # label 3: tied with class 0 for third place -> in the top 3 (ties count)
        ]
    )
    labels = np.array([2, 0, 0, 3])
    assert TopKAccuracy(k=1)(labels, probs) == 1 / 4
    assert TopKAccuracy(k=2)(labels, probs) == 2 / 4
    assert TopKAccuracy(k=3)(labels, probs) == 4 / 4


def test_top_k_accuracy_with_k_at_least_the_classes_is_one() -> None:
    from plugins.metrics import TopKAccuracy

    probs = np.array([[0.9, 0.07, 0.03], [0.0, 0.0, 1.0]])
    wrong = np.array([2, 0])  # each label the least probable class (the second tied with class 1)
    assert TopKAccuracy(k=3)(wrong, probs) == 1.0
    assert TopKAccuracy()(wrong, probs) == 1.0  # the default k = 5 > 3 classes
    assert TopKAccuracy(k=2)(wrong, probs) == 0.5  # label 2 third of three; label 0 tied for second: a hit


def test_top_k_accuracy_of_one_column_reads_it_as_two_classes() -> None:
    from plugins.metrics import TopKAccuracy

    # P(class 1) = 0.2 and 0.7 for two samples of class 1: classes' probabilities (0.8, 0.2) and (0.3, 0.7).
    assert TopKAccuracy(k=1)(np.array([1, 1]), np.array([[0.2], [0.7]])) == 0.5
    assert TopKAccuracy(k=2)(np.array([1, 1]), np.array([[0.2], [0.7]])) == 1.0


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_accuracy_against_sklearn(k: int) -> None:
    from plugins.metrics import TopKAccuracy

    rng = np.random.default_rng(k)
    labels = rng.integers(0, 5, size=200)
    probs = rng.dirichlet(np.ones(5), size=200)  # continuous: no ties, where sklearn breaks them by index
    expected = skm.top_k_accuracy_score(labels, probs, k=k, labels=list(range(5)))
    assert TopKAccuracy(k=k)(labels, probs) == pytest.approx(expected, rel=1e-12)


def test_top_k_accuracy_refuses_k_below_one() -> None:
    from pydantic import ValidationError

    from plugins.metrics import TopKAccuracy

    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        TopKAccuracy(k=0)


# ---------------------------------------------------------------------------------------------------------
# balanced_accuracy
# ---------------------------------------------------------------------------------------------------------


def test_balanced_accuracy_by_hand() -> None:
    from plugins.metrics import BalancedAccuracy

    # labels 0 0 0 0 1 1 2, predicted 0 0 0 1 1 0 1 (class 2 is never predicted; column 3 never wins):
    #   recall of 0: 3/4, of 1: 1/2, of 2: 0/1 -> (3/4 + 1/2 + 0) / 3
    labels = np.array([0, 0, 0, 0, 1, 1, 2])
    probs = np.eye(4)[[0, 0, 0, 1, 1, 0, 1]] * 0.7 + 0.075
    assert BalancedAccuracy()(labels, probs) == pytest.approx((3 / 4 + 1 / 2 + 0) / 3, rel=1e-15)


def test_balanced_accuracy_leaves_out_classes_absent_from_y_true() -> None:
    from plugins.metrics import BalancedAccuracy

    # Class 2 is predicted once but never a label: it has no recall and is not averaged (macro recall would).
    labels = np.array([0, 0, 1, 1])
    probs = np.eye(3)[[0, 2, 1, 1]]
    assert BalancedAccuracy()(labels, probs) == pytest.approx((1 / 2 + 1) / 2, rel=1e-15)
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):  # sklearn leaves it out too
        assert BalancedAccuracy()(labels, probs) == pytest.approx(skm.balanced_accuracy_score(labels, [0, 2, 1, 1]))


@pytest.mark.parametrize("n_classes", [2, 4])
def test_balanced_accuracy_against_sklearn(n_classes: int) -> None:
    from plugins.metrics import BalancedAccuracy

    rng = np.random.default_rng(10 + n_classes)
    labels = rng.choice(n_classes, size=300, p=np.linspace(1, 3, n_classes) / np.linspace(1, 3, n_classes).sum())
    probs = rng.dirichlet(np.ones(n_classes), size=300)
    if n_classes == 2:
        probs = probs[:, 1:]
        predicted = (probs[:, 0] > 0.5).astype(int)
    else:
        predicted = probs.argmax(axis=1)
    expected = skm.balanced_accuracy_score(labels, predicted)
    assert BalancedAccuracy()(labels, probs) == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------------------------------------------------
# mape and explained_variance
# ---------------------------------------------------------------------------------------------------------


def test_mape_by_hand() -> None:
    from plugins.metrics import MAPE

    # |2 - 1.5| / 2 = 25 %, |-4 - -5| / 4 = 25 %, |10 - 10| / 10 = 0 %: the mean is 50/3 %.
    result = MAPE()(np.array([2.0, -4.0, 10.0]), np.array([[1.5], [-5.0], [10.0]]))
    assert type(result) is float and result == pytest.approx(50 / 3, rel=1e-14)


def test_mape_divides_a_zero_target_by_epsilon() -> None:
    from plugins.metrics import MAPE

    # A zero target's term is 100 · |0 - 0.01| / 1e-7 = 10⁷ %; the other term is 0.
    assert MAPE()(np.array([0.0, 1.0]), np.array([[0.01], [1.0]])) == pytest.approx(100 * 0.01 / 1e-7 / 2)
    assert MAPE()(np.array([0.0, 1.0]), np.array([[0.0], [1.0]])) == 0.0


@pytest.mark.parametrize("n_outputs", [1, 3])
def test_mape_is_sklearns_fraction_in_percent(n_outputs: int) -> None:
    from plugins.metrics import MAPE

    rng = np.random.default_rng(20 + n_outputs)
    t = rng.uniform(0.5, 5.0, size=(40, n_outputs)) * rng.choice([-1, 1], size=(40, n_outputs))
    p = t + rng.normal(scale=0.3, size=t.shape)
    assert MAPE()(t, p) == pytest.approx(100 * skm.mean_absolute_percentage_error(t, p), rel=1e-12)


def test_explained_variance_by_hand() -> None:
    from plugins.metrics import ExplainedVariance

    # y = 1, 2, 3, 4: Var(y) = 1.25. Residuals y - ŷ = 0, 0, 0, -1: mean -0.25, Var = (3·0.0625 + 0.5625)/4 =
    # 0.1875, so 1 - 0.1875/1.25 = 0.85 (r2 of the same predictions is 0.8: it also counts the mean error).
    result = ExplainedVariance()(np.array([1.0, 2.0, 3.0, 4.0]), np.array([[1.0], [2.0], [3.0], [5.0]]))
    assert type(result) is float and result == pytest.approx(0.85, rel=1e-14)


def test_explained_variance_ignores_a_constant_offset_where_r2_does_not() -> None:
    from plugins.metrics import ExplainedVariance

    y = np.array([1.0, 3.0, 2.0, 5.0])
    shifted = (y + 2.0).reshape(-1, 1)
    assert ExplainedVariance()(y, shifted) == 1.0
    assert R2()(y, shifted) < 0


@pytest.mark.parametrize("n_outputs", [1, 3])
def test_explained_variance_against_sklearn(n_outputs: int) -> None:
    from plugins.metrics import ExplainedVariance

    rng = np.random.default_rng(30 + n_outputs)
    t = rng.normal(size=(60, n_outputs)) * [1.0, 5.0, 0.2][:n_outputs]
    p = 0.8 * t + 0.3 + rng.normal(scale=0.4, size=t.shape)
    targets = t[:, 0] if n_outputs == 1 else t
    assert ExplainedVariance()(targets, p) == pytest.approx(skm.explained_variance_score(t, p), rel=1e-12)


def test_explained_variance_of_a_constant_column_follows_sklearn() -> None:
    from plugins.metrics import ExplainedVariance

    y = np.array([[1.0, 2.0], [1.0, 3.0], [1.0, 5.0]])
    exact = np.array([[1.0, 2.5], [1.0, 3.0], [1.0, 4.0]])  # the constant column predicted exactly: 1
    wrong = np.array([[1.5, 2.5], [1.0, 3.0], [1.0, 4.0]])  # residuals 0.5, 0, 0 vary: 0
    for pred in (exact, wrong):
        assert ExplainedVariance()(y, pred) == pytest.approx(skm.explained_variance_score(y, pred), rel=1e-12)
    assert ExplainedVariance()(y, exact) != ExplainedVariance()(y, wrong)
    assert math.isnan(ExplainedVariance()(np.array([1.0]), np.array([[2.0]])))


# ---------------------------------------------------------------------------------------------------------
# Metrics with params, from the experiment
# ---------------------------------------------------------------------------------------------------------


def iris_experiment(metrics: list[object]) -> dict[str, object]:
    return {
        "name": "metric-params",
        "seed": 0,
        "dtype": "float64",
        "data": {"name": "iris", "validation_split": 0.3},
        "model": {"layers": [{"units": 4, "activation": "tanh"}, {"units": 3}]},
        "loss": {"name": "cross_entropy"},
        "optimizer": {"name": "sgd", "lr": 0.05},
        "training": {"epochs": 1, "batch_size": 16, "metrics": metrics},
        "tracking": {"enabled": False},
    }


def test_metric_params_from_the_experiment_reach_the_metric() -> None:
    from framework.build import prepare_run
    from framework.config import Experiment

    metrics = ["accuracy", {"name": "top_k_accuracy", "k": 2}, "roc_auc", "balanced_accuracy"]
    run = prepare_run(Experiment.from_dict(iris_experiment(metrics)), track=False)
    assert run.experiment.training.metrics == [
        "accuracy",
        {"name": "top_k_accuracy", "k": 2},
        "roc_auc",
        "balanced_accuracy",
    ]
    assert run.trainer.metrics["top_k_accuracy"].params.k == 2
    logs = run.trainer.fit().history.last()
    trainer = run.trainer
    probs = trainer.loss.link(trainer.model.outputs(trainer.val.X))
    y = trainer.val.y
    # The logged values against scikit-learn on the final model's validation predictions.
    assert logs["val_top_k_accuracy"] == pytest.approx(skm.top_k_accuracy_score(y, probs, k=2, labels=[0, 1, 2]))
    assert logs["val_roc_auc"] == pytest.approx(skm.roc_auc_score(y, probs, multi_class="ovr"), rel=1e-12)
    assert logs["val_balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, probs.argmax(axis=1)))
    assert logs["val_accuracy"] <= logs["val_top_k_accuracy"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "top_k_accuracy", "k": 0}, r"^training\.metrics\.1\.k: .*greater than or equal to 1"),
        ({"name": "top_k_accuracy", "kk": 3}, r"^training\.metrics\.1\.kk: unknown key 'kk'. Allowed: k"),
        ({"name": "roc_auc", "k": 3}, r"^training\.metrics\.1\.k: unknown key 'k'"),
    ],
)
def test_bad_metric_params_name_their_key(spec: dict[str, object], message: str) -> None:
    from framework.build import prepare_run
    from framework.config import Experiment
    from framework.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        prepare_run(Experiment.from_dict(iris_experiment(["accuracy", spec])), track=False)
