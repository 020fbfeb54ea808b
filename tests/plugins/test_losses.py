"""The built-in losses (plugins/losses): gradients against finite differences, values against formulas written
out here with `math`, float32 stability up to |o| = 1e4, their links, and their refusals through the CLI.

`tests/plugins/test_gradients.py` runs the generic contract over every registered loss with default params;
this file adds the params (label_smoothing, class_weight, focal's gamma and alpha, huber's delta), the
awkward points (|o| = 30, 200, 1e4; saturation; kinks) and the data errors.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from framework import Experiment
from framework.build import prepare_run
from framework.cli import app
from framework.components import Array, Loss, Task
from framework.errors import ConfigError
from framework.functional import LOSS_LINKS
from framework.pluginmanager import create_plugin_manager
from framework.registry import Registry
from framework.testing.numeric import numerical_gradient
from plugins.losses import BUILTIN
from tests.helpers import EXPERIMENTS

REGISTRY = Registry.from_host(create_plugin_manager(strict=True))
F64, F32 = np.dtype(np.float64), np.dtype(np.float32)


def make(name: str, **params: Any) -> Loss:
    loss = REGISTRY.get("loss", name)(REGISTRY.params("loss", name, params, where="loss"))
    assert isinstance(loss, Loss)
    return loss


def prepared(loss: Loss, y: Any, n_outputs: int, task: Task, dtype: np.dtype[Any] = F64) -> Array:
    """The targets as the core prepares them: `adapt` on the raw targets first (classes named "0", "1", ...)."""
    classes = [] if task == "regression" else [str(i) for i in range(max(2, n_outputs))]
    loss.adapt(np.asarray(y), task, classes)
    return loss.prepare_targets(np.asarray(y), n_outputs, dtype)


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def log_softmax(row: list[float]) -> list[float]:
    top = max(row)
    log_sum = top + math.log(sum(math.exp(v - top) for v in row))
    return [v - log_sum for v in row]


# -- Gradients against central finite differences, in float64, at large |o| and in saturation --------------------------

BIG = [-200.0, -30.0, -2.5, -0.3, 0.4, 3.0, 30.0, 200.0]
REGRESSION_OUT = np.array(BIG).reshape(4, 2)
REGRESSION_Y = np.array([[0.5, -1.0], [2.0, 0.1], [-3.0, 4.0], [1.0, 1.5]])
COUNTS_Y = np.array([[0.0, 1.0], [2.0, 3.0], [5.0, 0.0], [4.0, 7.0]])
BINARY_OUT = np.array(BIG).reshape(8, 1)
BINARY_Y = np.array([0, 1, 0, 1, 0, 1, 0, 1])  # each |o| once right and once wrong, saturated at ±30, ±200
MULTI_OUT = np.array(
    [[200.0, -200.0, 0.0], [-30.0, 30.0, 5.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [-200.0, 0.0, 200.0], [0.5, -1, 30]]
)
MULTI_Y = np.array([0, 0, 2, 1, 1, 2])
DISTRIBUTIONS = np.array(
    [[0.2, 0.8, 0.0], [1.0, 0.0, 0.0], [0.1, 0.3, 0.6], [1 / 3, 1 / 3, 1 / 3], [0.0, 0.5, 0.5], [0.7, 0.0, 0.3]]
)
TABLE = {"0": 1.0, "1": 3.0}

# problem: (outputs, raw targets, task)
PROBLEMS: dict[str, tuple[Array, Array, Task]] = {
    "values": (REGRESSION_OUT, REGRESSION_Y, "regression"),
    "counts": (REGRESSION_OUT, COUNTS_Y, "regression"),
    "binary": (BINARY_OUT, BINARY_Y, "binary"),
    "binary-5-3": (BINARY_OUT, BINARY_Y[[0, 1, 2, 3, 4, 5, 6, 6]], "binary"),  # unbalanced: 5 of class 0
    "multiclass": (MULTI_OUT, MULTI_Y, "multiclass"),
    "distributions": (MULTI_OUT, DISTRIBUTIONS, "regression"),
    # rows summing to 1 + 8e-6 (accepted as rounding) show that the gradient keeps softmax(o)·Σ_j t_j
    "rounded-distributions": (MULTI_OUT, DISTRIBUTIONS * (1 + 8e-6), "regression"),
}
# id: (loss, params, problem)
CASES: dict[str, tuple[str, dict[str, Any], str]] = {
    "mse": ("mse", {}, "values"),
    "mae": ("mae", {}, "values"),
    "huber": ("huber", {}, "values"),
    "huber-delta-0.25": ("huber", {"delta": 0.25}, "values"),
    "log_cosh": ("log_cosh", {}, "values"),
    "poisson": ("poisson", {}, "counts"),
    "bce": ("binary_cross_entropy", {}, "binary"),
    "bce-smoothing": ("binary_cross_entropy", {"label_smoothing": 0.1}, "binary"),
    "bce-table": ("binary_cross_entropy", {"class_weight": TABLE}, "binary"),
    "bce-balanced-smooth": ("binary_cross_entropy", {"class_weight": "balanced", "label_smoothing": 0.2}, "binary-5-3"),
    "ce": ("cross_entropy", {}, "multiclass"),
    "ce-smoothing": ("cross_entropy", {"label_smoothing": 0.1}, "multiclass"),
    "ce-table": ("cross_entropy", {"class_weight": TABLE}, "multiclass"),
    "ce-balanced-smoothing": ("cross_entropy", {"class_weight": "balanced", "label_smoothing": 0.3}, "multiclass"),
    "focal-binary-gamma-0": ("focal", {"gamma": 0.0}, "binary"),
    "focal-binary-gamma-2": ("focal", {}, "binary"),
    "focal-binary-gamma-0.5-alpha": ("focal", {"gamma": 0.5, "alpha": 0.25}, "binary"),
    "focal-softmax-gamma-0": ("focal", {"gamma": 0.0}, "multiclass"),
    "focal-softmax-gamma-2-alpha": ("focal", {"alpha": 0.25}, "multiclass"),
    "focal-softmax-gamma-0.5": ("focal", {"gamma": 0.5}, "multiclass"),
    "hinge": ("hinge", {}, "binary"),
    "squared_hinge": ("squared_hinge", {}, "binary"),
    "kl-distributions": ("kl_divergence", {}, "distributions"),
    "kl-rounded-rows": ("kl_divergence", {}, "rounded-distributions"),
    "kl-labels": ("kl_divergence", {}, "multiclass"),
}


def test_every_builtin_loss_has_a_gradient_case_and_a_functional_link() -> None:
    assert {name for name, *_ in CASES.values()} == {cls.name for cls in BUILTIN} == set(LOSS_LINKS)


@pytest.mark.parametrize("case", list(CASES))
def test_gradient_matches_finite_differences(case: str) -> None:
    name, params, problem = CASES[case]
    outputs, y, task = PROBLEMS[problem]
    loss = make(name, **params)
    outputs = outputs.copy()
    targets = prepared(loss, y, outputs.shape[1], task)
    analytic = loss.gradient(outputs, targets).copy()
    numeric = numerical_gradient(lambda: loss.value(outputs, targets), outputs)
    # Central differences of a value f lose about |f|·1e-16 / 1e-6 to rounding: mse at |o| = 200 is ~1e4.
    atol = 1e-7 + 1e-9 * abs(loss.value(outputs, targets))
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=atol)
    np.testing.assert_allclose(np.mean(loss.per_sample(outputs, targets)), loss.value(outputs, targets), rtol=1e-12)


def test_kinks_take_the_documented_subgradient() -> None:
    # mae at r = 0: sign(0) = 0; hinge at y·o = 1 (o = 1 for class 1, o = -1 for class 0): 0, as relu's.
    mae = make("mae")
    assert mae.gradient(np.array([[2.0, 1.0]]), np.array([[2.0, 0.0]])).tolist() == [[0.0, 0.5]]
    hinge = make("hinge")
    np.testing.assert_array_equal(hinge.gradient(np.array([[1.0], [-1.0]]), prepared(hinge, [1, 0], 1, "binary")), 0)


# -- Values against the formulas, written out with math at hand-picked points ------------------------------------------


def value(name: str, outputs: Any, y: Any, task: Task, **params: Any) -> float:
    loss = make(name, **params)
    o = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    return loss.value(o, prepared(loss, y, o.shape[1], task))


def test_regression_losses_by_hand() -> None:
    # residuals r = o - t: 0.5, -3, 3, 0.
    outputs, targets = [[1.5, -1.0], [4.0, 2.0]], [[1.0, 2.0], [1.0, 2.0]]
    residuals = [0.5, -3.0, 3.0, 0.0]
    assert value("mae", outputs, targets, "regression") == pytest.approx((0.5 + 3 + 3 + 0) / 4, rel=1e-15)
    huber = [0.5**2 / 2, 1 * (3 - 1 / 2), 1 * (3 - 1 / 2), 0.0]  # δ = 1: quadratic at 0.5, linear at 3
    assert value("huber", outputs, targets, "regression") == pytest.approx(sum(huber) / 4, rel=1e-15)
    huber_4 = [0.5**2 / 2, 3**2 / 2, 3**2 / 2, 0.0]  # δ = 4: all quadratic
    assert value("huber", outputs, targets, "regression", delta=4.0) == pytest.approx(sum(huber_4) / 4, rel=1e-15)
    log_cosh = sum(math.log(math.cosh(r)) for r in residuals) / 4
    assert value("log_cosh", outputs, targets, "regression") == pytest.approx(log_cosh, rel=1e-14)
    # poisson: e^o - t·o per element, at o = log 2 (rate 2) with count 3, and o = 0 with count 0
    expected = ((2 - 3 * math.log(2)) + 1.0) / 2
    assert value("poisson", [[math.log(2)], [0.0]], [[3.0], [0.0]], "regression") == pytest.approx(expected, rel=1e-14)


def test_log_cosh_is_accurate_for_tiny_and_huge_residuals() -> None:
    # tiny r: the series r²/2 - r⁴/12 (math.cosh rounds to 1 + r²/2 and its log loses digits); huge r: cosh
    # overflows, log cosh r = |r| - log 2 + log(1 + e^(-2|r|)).
    for r in (1e-4, 3e-7):
        expected = r * r / 2 - r**4 / 12
        assert value("log_cosh", [[r]], [[0.0]], "regression") == pytest.approx(expected, rel=1e-9, abs=0)
    assert value("log_cosh", [[-800.0]], [[0.0]], "regression") == pytest.approx(800 - math.log(2), rel=1e-15)


def test_margin_losses_by_hand() -> None:
    # scores 0.3 and 2 for class 1 (y = 1), 0.5 and -3 for class 0 (y = -1): margins 1 - y·o = 0.7, -1, 1.5, -2
    outputs, labels = [0.3, 2.0, 0.5, -3.0], [1, 1, 0, 0]
    assert value("hinge", outputs, labels, "binary") == pytest.approx((0.7 + 0 + 1.5 + 0) / 4, rel=1e-15)
    assert value("squared_hinge", outputs, labels, "binary") == pytest.approx((0.49 + 2.25) / 4, rel=1e-15)
    hinge = make("hinge")  # -1/1 labels are the same labels as 0/1
    np.testing.assert_array_equal(
        hinge.prepare_targets(np.array([1, 1, -1, -1]), 1, F64), hinge.prepare_targets(np.array(labels), 1, F64)
    )


def test_kl_divergence_by_hand() -> None:
    o, t = [[1.0, 2.0, 3.0], [0.0, 4.0, -1.0]], [[0.2, 0.8, 0.0], [0.5, 0.25, 0.25]]
    expected = 0.0
    for row, target in zip(o, t, strict=True):
        expected += sum(tj * (math.log(tj) - lp) for tj, lp in zip(target, log_softmax(row), strict=True) if tj > 0)
    assert value("kl_divergence", o, t, "regression") == pytest.approx(expected / 2, rel=1e-14)
    cross_entropy = value("cross_entropy", o, [2, 1], "multiclass")  # KL from a one-hot row is the cross entropy
    assert value("kl_divergence", o, [2, 1], "multiclass") == pytest.approx(cross_entropy, rel=1e-14)


def weighted_ce(rows: list[list[float]], labels: list[int], weights: list[float], eps: float = 0.0) -> float:
    """-Σ_j w_j t'_j log softmax(o)_j per row, averaged over the rows."""
    total = 0.0
    for row, label in zip(rows, labels, strict=True):
        k = len(row)
        smooth = [(1 - eps) * (j == label) + eps / k for j in range(k)]
        total -= sum(w * s * lp for w, s, lp in zip(weights, smooth, log_softmax(row), strict=True))
    return total / len(rows)


def test_label_smoothing_is_the_smoothed_target_formula() -> None:
    eps = 0.1
    # binary: t' = t(1 - ε) + ε/2 for t = 1 at o = 2 and t = 0 at o = -1
    expected = 0.0
    for o, t in ((2.0, 1.0), (-1.0, 0.0)):
        smooth = t * (1 - eps) + eps / 2
        expected -= smooth * math.log(sigmoid(o)) + (1 - smooth) * math.log(1 - sigmoid(o))
    got = value("binary_cross_entropy", [2.0, -1.0], [1, 0], "binary", label_smoothing=eps)
    assert got == pytest.approx(expected / 2, rel=1e-14)
    # multiclass: t' = (1 - ε)·one_hot + ε/k with k = 3
    rows, labels = [[1.0, 2.0, 3.0], [0.5, -2.0, 0.0]], [2, 0]
    got = value("cross_entropy", rows, labels, "multiclass", label_smoothing=eps)
    assert got == pytest.approx(weighted_ce(rows, labels, [1.0, 1.0, 1.0], eps), rel=1e-14)


def test_class_weights_are_the_weighted_formula() -> None:
    rows, labels = [[1.0, 2.0, 3.0], [0.5, -2.0, 0.0], [0.0, 1.0, 0.0]], [2, 0, 1]
    got = value("cross_entropy", rows, labels, "multiclass", class_weight={"0": 2.0, "1": 3.0})
    assert got == pytest.approx(weighted_ce(rows, labels, [2.0, 3.0, 1.0]), rel=1e-14)  # class 2 left out: 1
    got = value("cross_entropy", rows, labels, "multiclass", class_weight={"1": 3.0}, label_smoothing=0.2)
    assert got == pytest.approx(weighted_ce(rows, labels, [1.0, 3.0, 1.0], eps=0.2), rel=1e-14)
    # binary: -[w₁ t' log σ(o) + w₀ (1 - t') log(1 - σ(o))]
    expected = -(3.0 * math.log(sigmoid(0.7)) + 0.5 * math.log(1 - sigmoid(-1.2))) / 2
    got = value("binary_cross_entropy", [0.7, -1.2], [1, 0], "binary", class_weight={"0": 0.5, "1": 3.0})
    assert got == pytest.approx(expected, rel=1e-14)


def test_balanced_weights_are_n_over_k_times_the_class_count() -> None:
    labels = [0, 0, 0, 1, 2, 2, 0, 2]
    rows = [[0.1 * i, -0.2 * i, 0.3] for i in range(len(labels))]
    counts = Counter(labels)
    weights = [len(labels) / (3 * counts[c]) for c in range(3)]  # 8/12, 8/3, 8/9
    got = value("cross_entropy", rows, labels, "multiclass", class_weight="balanced")
    assert got == pytest.approx(weighted_ce(rows, labels, weights), rel=1e-14)


def test_focal_by_hand() -> None:
    # gamma 0 without alpha is the binary cross entropy, value and gradient
    o = BINARY_OUT.copy()
    focal, bce = make("focal", gamma=0.0), make("binary_cross_entropy")
    targets = prepared(bce, BINARY_Y, 1, "binary")
    assert focal.value(o, targets) == pytest.approx(bce.value(o, targets), rel=1e-14)
    # atol: at o = 200, t = 1 focal keeps (σ(o) - 1)/n = -e^-200/8, where bce's σ(o) - t rounds to 0
    np.testing.assert_allclose(focal.gradient(o, targets), bce.gradient(o, targets), rtol=1e-12, atol=1e-16)
    # -α_t (1 - p_t)^γ log p_t with γ = 2, α = 0.25, at o = 1.5 (class 1) and o = 0.4 (class 0)
    p1, p0 = sigmoid(1.5), 1 - sigmoid(0.4)
    expected = -(0.25 * (1 - p1) ** 2 * math.log(p1) + 0.75 * (1 - p0) ** 2 * math.log(p0)) / 2
    assert value("focal", [1.5, 0.4], [1, 0], "binary", alpha=0.25) == pytest.approx(expected, rel=1e-14)
    # k outputs: -Σ_j t_j (1 - p_j)^γ log p_j, and with gamma 0 the cross entropy
    rows, labels = [[1.0, 2.0, 3.0], [0.5, -2.0, 0.0]], [2, 0]
    expected = 0.0
    for row, label in zip(rows, labels, strict=True):
        lp = log_softmax(row)[label]
        expected -= (1 - math.exp(lp)) ** 2 * lp
    assert value("focal", rows, labels, "multiclass") == pytest.approx(expected / 2, rel=1e-13)
    cross_entropy = value("cross_entropy", rows, labels, "multiclass")
    assert value("focal", rows, labels, "multiclass", gamma=0.0) == pytest.approx(cross_entropy, rel=1e-14)


# -- float32 stability for |o| up to 1e4, and the links ----------------------------------------------------------------

HUGE = [-1e4, -200.0, 0.0, 200.0, 1e4]
LABELS_10 = np.repeat([0, 1], 5)
HUGE_PROBLEMS: dict[str, tuple[Array, Array, Task]] = {
    "values": (np.array(HUGE * 2).reshape(5, 2), np.ones((5, 2)), "regression"),
    "log-rates": (np.array([[-1e4], [-200.0], [0.0], [30.0], [88.0]]), np.full((5, 1), 3.0), "regression"),
    "binary": (np.array(HUGE * 2).reshape(10, 1), LABELS_10, "binary"),
    "multiclass": (np.array([HUGE[:3], HUGE[2:], HUGE[::2]]), np.array([1, 0, 2]), "multiclass"),
    "distributions": (np.array([HUGE[:3], HUGE[2:]]), np.array([[0.5, 0.5, 0.0], [0.1, 0.0, 0.9]]), "regression"),
}
STABLE: dict[str, tuple[str, dict[str, Any], str]] = {
    **{name: (name, {}, "values") for name in ("mse", "mae", "huber", "log_cosh")},
    "poisson": ("poisson", {}, "log-rates"),
    "bce": ("binary_cross_entropy", {"label_smoothing": 0.1, "class_weight": TABLE}, "binary"),
    "focal-binary": ("focal", {"gamma": 0.5}, "binary"),
    "focal-binary-alpha": ("focal", {"alpha": 0.25}, "binary"),
    "hinge": ("hinge", {}, "binary"),
    "squared_hinge": ("squared_hinge", {}, "binary"),
    "ce": ("cross_entropy", {"label_smoothing": 0.1, "class_weight": "balanced"}, "multiclass"),
    "focal-softmax": ("focal", {"gamma": 0.5}, "multiclass"),
    "kl_divergence": ("kl_divergence", {}, "distributions"),
}


@pytest.mark.parametrize("case", list(STABLE))
def test_float32_values_and_gradients_are_finite_up_to_1e4(case: str) -> None:
    name, params, problem = STABLE[case]
    outputs, y, task = HUGE_PROBLEMS[problem]
    loss = make(name, **params)
    o = outputs.astype(F32)
    targets = prepared(loss, y, o.shape[1], task, F32)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        result, grad = loss.value(o, targets), loss.gradient(o, targets)
    assert math.isfinite(result), result
    assert grad.dtype == F32 and np.all(np.isfinite(grad)), grad


def test_poisson_overflows_to_inf_never_nan() -> None:
    # e^o is larger than the largest float above o = 88.72 (float32) and 709.78 (float64): value and gradient
    # are then inf, as the true numbers are not representable; below that they are finite.
    poisson = make("poisson")
    for dtype, finite, beyond in ((F32, 88.0, 89.0), (F64, 709.0, 710.0)):
        targets = np.array([[3.0], [3.0]], dtype=dtype)
        for top, representable in ((finite, True), (beyond, False), (1e4, False)):
            o = np.array([[-1e4], [top]], dtype=dtype)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                result, grad = poisson.value(o, targets), poisson.gradient(o, targets)
            assert math.isfinite(result) is representable and not math.isnan(result)
            assert np.isfinite(grad[1, 0]) is np.bool_(representable) and not np.isnan(grad).any()
            assert grad[0, 0] == pytest.approx(-3.0 / 2)  # e^-1e4 = 0: the gradient is -t/n


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("cls", BUILTIN, ids=lambda cls: cls.name)
def test_link_equals_the_functional_link_bit_for_bit(cls: type[Loss], dtype: np.dtype[Any]) -> None:
    loss = cls()
    rng = np.random.default_rng(7)
    for width in (1, 3):
        outputs = (rng.normal(size=(9, width)) * 40).astype(dtype)
        outputs[0, 0] = 95.0  # e^95 overflows float32: poisson's rate is inf in both
        ours, functional = np.asarray(loss.link(outputs)), np.asarray(LOSS_LINKS[cls.name](outputs))
        assert ours.dtype == functional.dtype == dtype
        assert ours.tobytes() == functional.tobytes()


# -- Refusals: targets, outputs, class weights -------------------------------------------------------------------------


def test_targets_are_refused_naming_the_first_bad_row() -> None:
    with pytest.raises(ValueError, match=r"poisson: targets must be counts .* row 2 has -0\.5 \(and 1 more row\)"):
        make("poisson").prepare_targets(np.array([1.0, 0.0, -0.5, 3.0, -2.0]), 1, F64)
    kl = make("kl_divergence")
    with pytest.raises(ValueError, match=r"kl_divergence: targets must be distributions .* row 1 sums to 0\.9;"):
        kl.prepare_targets(np.array([[0.5, 0.5], [0.3, 0.6], [1.0, 0.0]]), 2, F64)
    with pytest.raises(ValueError, match=r"row 0 has -0\.1"):
        kl.prepare_targets(np.array([[-0.1, 1.1], [0.5, 0.5]]), 2, F64)
    with pytest.raises(ValueError, match=r"row 1 sums to nan"):
        kl.prepare_targets(np.array([[0.5, 0.5], [np.nan, 0.5]]), 2, F64)
    with pytest.raises(ValueError, match=r"hinge: labels must be 0/1 or -1/1, they mix 0 \(row 1\) and -1 \(row 2\)"):
        make("hinge").prepare_targets(np.array([1, 0, -1]), 1, F64)
    with pytest.raises(ValueError, match=r"squared_hinge: labels must be 0/1 or -1/1, row 1 has 2"):
        make("squared_hinge").prepare_targets(np.array([1, 2, 0]), 1, F64)


def test_outputs_are_refused_with_a_reason() -> None:
    reason = make("hinge").check_outputs(1, "multiclass", 10)
    assert reason is not None and "hinge is a binary loss" in reason and "10 classes; help: use cross_entropy" in reason
    assert make("squared_hinge").check_outputs(2, "binary", 2) is not None
    assert make("kl_divergence").check_outputs(1, "regression", None) is not None
    focal = make("focal")
    assert focal.check_outputs(1, "binary", 2) is None and focal.check_outputs(3, "multiclass", 3) is None
    assert focal.check_outputs(1, "multiclass", 3) is not None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"1": -2.0}, r"^loss\.class_weight\.1: Input should be greater than 0"),
        ("balance", r"^loss\.class_weight: expected \"balanced\" or a table"),
    ],
)
def test_class_weight_params_are_validated(spec: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make("cross_entropy", class_weight=spec)


def test_class_weight_keys_are_checked_against_the_classes() -> None:
    def adapt(spec: Any, classes: list[str], y: Any = (0, 1, 1)) -> None:
        make("cross_entropy", class_weight=spec).adapt(np.array(y), "multiclass", classes)

    adapt({"malignant": 2.0, "1": 3.0}, ["malignant", "benign"])  # a name and an index
    with pytest.raises(ConfigError, match=r"^loss\.class_weight\.benin: unknown class 'benin'; the classes are"):
        adapt({"benin": 2.0}, ["malignant", "benign"])
    with pytest.raises(ConfigError, match=r"^loss\.class_weight\.1: class 'benign' already has a weight"):
        adapt({"benign": 2.0, "1": 3.0}, ["malignant", "benign"])
    with pytest.raises(ConfigError, match=r"^loss\.class_weight\.1: ambiguous"):
        adapt({"1": 2.0}, ["1", "2"])  # the name of class 0, the index of class 1
    with pytest.raises(ConfigError, match=r"^loss\.class_weight: 'balanced' needs every class .* class 'c' has no"):
        adapt("balanced", ["a", "b", "c"])


def test_class_weight_without_adapt() -> None:
    # An index table needs no class names; "balanced" needs the training split, and says so.
    loss = make("cross_entropy", class_weight={"1": 3.0})
    o, targets = np.zeros((2, 2)), loss.prepare_targets(np.array([1, 0]), 2, F64)
    assert loss.value(o, targets) == pytest.approx((3 + 1) * math.log(2) / 2, rel=1e-14)
    with pytest.raises(ValueError, match=r"cross_entropy: class_weight = 'balanced' is counted .* by adapt\(\)"):
        make("cross_entropy", class_weight="balanced").prepare_targets(np.array([1, 0]), 2, F64)
    with pytest.raises(ValueError, match=r"binary_cross_entropy: class_weight key 'yes' is not a class index 0\.\.1"):
        make("binary_cross_entropy", class_weight={"yes": 2.0}).prepare_targets(np.array([1, 0]), 1, F64)


# -- Through the command line and the experiment file ------------------------------------------------------------------


BREAST_CANCER = """\
name = "weights"
data = { name = "breast_cancer" }
model = { layers = [{ units = 8, activation = "relu" }, { units = 2 }] }
optimizer = { name = "adam", lr = 0.01 }
training = { epochs = 2, batch_size = 64 }
tracking = { enabled = false }

[loss]
name = "cross_entropy"
class_weight = {0 = 1.0, 1 = 3.0}
"""


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's directory, made the current one, with the breast_cancer experiment in exp.toml."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exp.toml").write_text(BREAST_CANCER)
    return tmp_path


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, ["run", *args, "--no-track", "-q"])


def one_error_line(result: Any, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return str(lines[0])


def test_cli_refuses_hinge_on_digits(here: Path) -> None:
    one_error_line(cli(str(EXPERIMENTS / "digits.toml"), "--set", "loss.name=hinge"), "hinge", "binary", "multiclass")


def test_cli_refuses_poisson_on_standardised_targets(here: Path) -> None:
    diabetes = str(EXPERIMENTS / "diabetes.toml")
    result = cli(diabetes, "--set", "loss.name=poisson", "--set", "data.standardize_target=true")
    one_error_line(result, "loss 'poisson'", "targets must be counts or rates >= 0, row ", "data.standardize_target")


def test_cli_refuses_kl_divergence_on_rows_that_are_not_distributions(here: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(here / "soft.npz", X=rng.normal(size=(40, 4)), y=rng.uniform(size=(40, 3)))
    config = here / "soft.toml"
    config.write_text(
        'name = "soft"\n[data]\nname = "npz"\npath = "soft.npz"\n[model]\nlayers = [{ units = 3 }]\n'
        '[loss]\nname = "kl_divergence"\n[optimizer]\nname = "sgd"\n'
    )
    line = one_error_line(cli(str(config)), "loss 'kl_divergence'", "targets must be distributions", "sums to")
    assert " row " in line


def run_loss(config: Path, *overrides: str) -> tuple[float, list[list[float]], list[int], Any]:
    """The run's loss on its training split before training, with the model's outputs and the labels."""
    trainer = prepare_run(Experiment.from_file(config, list(overrides))).trainer
    outputs = trainer.model.outputs(trainer.train.X)
    value = trainer.loss.value(outputs, trainer.train.targets)
    return value, outputs.astype(np.float64).tolist(), [int(v) for v in trainer.train.y], trainer


def test_class_weight_from_an_experiment_file(here: Path) -> None:
    config = here / "exp.toml"
    got, rows, labels, _ = run_loss(config)
    assert got == pytest.approx(weighted_ce(rows, labels, [1.0, 3.0]), rel=1e-5)
    assert got != pytest.approx(weighted_ce(rows, labels, [1.0, 1.0]), rel=1e-3)  # the weights do matter
    got, rows, labels, _ = run_loss(config, "loss.class_weight={malignant = 2.0}")  # a class by its name
    assert got == pytest.approx(weighted_ce(rows, labels, [2.0, 1.0]), rel=1e-5)
    got, rows, labels, trainer = run_loss(config, "loss.class_weight=balanced")
    counts = Counter(labels)  # the training split's labels
    weights = [len(labels) / (2 * counts[c]) for c in (0, 1)]
    assert got == pytest.approx(weighted_ce(rows, labels, weights), rel=1e-5)
    np.testing.assert_allclose(trainer.loss.class_weights, weights, rtol=1e-15)


def test_label_smoothing_from_the_command_line(here: Path) -> None:
    config = here / "exp.toml"
    _, _, labels, trainer = run_loss(config, "loss.label_smoothing=0.1")
    expected = [[0.9 * (j == label) + 0.05 for j in (0, 1)] for label in labels]
    np.testing.assert_allclose(trainer.train.targets, expected, rtol=1e-7)
    result = cli(str(config), "--set", "loss.label_smoothing=0.1", "--set", "loss.class_weight=balanced")
    assert result.exit_code == 0, result.output


def test_cli_refuses_an_unknown_class_weight_key(here: Path) -> None:
    result = cli(str(here / "exp.toml"), "--set", "loss.class_weight={0 = 1.0, malignnt = 3.0}")
    one_error_line(result, "exp.toml: loss.class_weight.malignnt: unknown class 'malignnt'", "'malignant', 'benign'")
