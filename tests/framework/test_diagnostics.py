"""The evaluation pictures of a tracked run (issue 16): their numbers against independent computations, the
images themselves, and their place in a real MLflow store."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from framework import Experiment, fit
from framework import diagnostics as dg
from tests.helpers import digits_config

# 8 samples of 3 classes, and what a model predicted for them.
TRUE = np.array([0, 0, 0, 1, 1, 2, 2, 2])
PRED = np.array([0, 1, 0, 1, 2, 2, 2, 0])


def test_the_confusion_matrix_is_counted_by_hand() -> None:
    # true 0: predicted 0, 1, 0; true 1: 1, 2; true 2: 2, 2, 0.
    expected = [[2, 1, 0], [0, 1, 1], [1, 0, 2]]
    assert dg.confusion_matrix(TRUE, PRED, 3).tolist() == expected


def test_per_class_precision_recall_f1_by_hand() -> None:
    stats = dg.per_class(dg.confusion_matrix(TRUE, PRED, 3))
    # class 0: TP 2, predicted 3, actual 3; class 1: TP 1, predicted 2, actual 2; class 2: TP 2, predicted 3, actual 3.
    np.testing.assert_allclose(stats["precision"], [2 / 3, 1 / 2, 2 / 3])
    np.testing.assert_allclose(stats["recall"], [2 / 3, 1 / 2, 2 / 3])
    np.testing.assert_allclose(stats["f1"], [2 / 3, 1 / 2, 2 / 3])
    assert stats["support"].tolist() == [3, 2, 3]


def rank_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """The ROC AUC as the probability that a positive outscores a negative (ties count one half)."""
    pos, neg = score[positive], score[~positive]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


@pytest.mark.parametrize("ties", [False, True])
def test_the_roc_area_equals_the_rank_formula(ties: bool) -> None:
    rng = np.random.default_rng(3)
    positive = rng.random(200) < 0.4
    score = rng.normal(size=200) + positive
    if ties:
        score = np.round(score, 1)
    fpr, tpr = dg.roc_curve(positive, score)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert dg.area(fpr, tpr) == pytest.approx(rank_auc(positive, score), abs=1e-12)


def test_precision_recall_points_by_hand() -> None:
    positive = np.array([True, False, True, False])
    score = np.array([0.9, 0.8, 0.7, 0.1])
    recall, precision = dg.precision_recall_curve(positive, score)
    # thresholds 0.9, 0.8, 0.7, 0.1 take in 1, 2, 3, 4 samples with 1, 1, 2, 2 positives.
    np.testing.assert_allclose(recall, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(precision, [1, 1, 0.5, 2 / 3, 0.5])


def pixels(path: Path) -> np.ndarray:
    import matplotlib.image

    return np.asarray(matplotlib.image.imread(path))


def assert_a_real_picture(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = pixels(path)
    assert image.shape[0] >= 400 and image.shape[1] >= 600, image.shape
    assert image[..., :3].std() > 0.05, f"{path.name} is nearly blank"


def test_classification_pictures_and_table(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(3), size=8)
    proba[np.arange(8), PRED] += 2  # the predicted class is the most probable
    proba /= proba.sum(axis=1, keepdims=True)
    written = dg.classification_pictures(TRUE, proba, "validation", tmp_path)
    assert {p.name for p in written} == {dg.CONFUSION_PNG, dg.CLASSES_CSV, dg.CLASSES_PNG, dg.ROC_PNG, dg.PR_PNG}
    for path in written:
        if path.suffix == ".png":
            assert_a_real_picture(path)
    with open(tmp_path / dg.CLASSES_CSV) as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["recall"]) for r in rows] == pytest.approx([2 / 3, 1 / 2, 2 / 3], abs=1e-6)
    assert [int(r["support"]) for r in rows] == [3, 2, 3]


def test_regression_pictures(tmp_path: Path) -> None:
    y = np.linspace(100, 300, 50)
    predicted = y + np.random.default_rng(1).normal(0, 10, size=50)
    written = dg.regression_pictures(y, predicted, "validation", tmp_path)
    assert [p.name for p in written] == [dg.PREDICTED_PNG, dg.RESIDUALS_PNG, dg.HISTOGRAM_PNG]
    for path in written:
        assert_a_real_picture(path)


def test_the_predictions_behind_the_pictures_are_the_models_in_target_units() -> None:
    result = fit(Experiment.from_file("experiments/house_prices.toml", ["training.epochs=2"]), track=False)
    from framework.build import prepare_run

    trainer = prepare_run(result.experiment, track=False).trainer  # type: ignore[arg-type]
    trainer.model = result.model
    _, X, _ = dg.evaluation_split(trainer)
    raw = X * result.model.preprocess.scale + result.model.preprocess.mean if result.model.preprocess else X
    np.testing.assert_allclose(dg.predictions(trainer.model, X), result.model.predict(raw), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (digits_config(), {dg.CONFUSION_PNG, dg.CLASSES_CSV, dg.CLASSES_PNG, dg.ROC_PNG, dg.PR_PNG}),
        (
            {**digits_config(data={"name": "diabetes", "validation_split": 0.2}), "loss": {"name": "mse"}},
            {dg.PREDICTED_PNG, dg.RESIDUALS_PNG, dg.HISTOGRAM_PNG},
        ),
    ],
    ids=["classification", "regression"],
)
def test_a_tracked_run_logs_its_pictures_under_diagnostics(
    config: dict[str, Any], expected: set[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    if config["loss"]["name"] == "mse":
        config["model"] = {"layers": [{"units": 16, "activation": "relu"}, {"units": 1}]}
    config["tracking"] = {"enabled": True, "experiment": "pictures"}
    result = fit(Experiment.from_dict(config), track=True)
    from framework.mlflow_store import open_client

    client = open_client(f"sqlite:///{tmp_path}/mlflow.db")
    names = {Path(a.path).name for a in client.list_artifacts(str(result.run_id), "diagnostics")}
    assert names == expected | {"gradient_flow.png"}


def test_the_surface_grid_covers_the_data_with_a_margin() -> None:
    raw = np.array([[0.0, 10.0], [2.0, 30.0], [1.0, 20.0]])
    xs, ys, points = dg.surface_grid(raw, steps=5)
    np.testing.assert_allclose(xs, np.linspace(-0.1, 2.1, 5))  # 5 % of the range beyond each end
    np.testing.assert_allclose(ys, np.linspace(9.0, 31.0, 5))
    assert points.shape == (25, 2) and points[1].tolist() == [xs[1], ys[0]]  # x varies fastest, as in meshgrid


@pytest.mark.slow
def test_xor_gets_a_decision_surface_over_its_two_varying_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # xor has three inputs, the third a constant 1 (the bias): the plane is that of the two others.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    experiment = Experiment.from_file(Path(__file__).parents[2] / "experiments" / "xor.toml")
    result = fit(experiment, track=True)
    from framework.mlflow_store import open_client

    client = open_client(f"sqlite:///{tmp_path}/mlflow.db")
    names = {Path(a.path).name for a in client.list_artifacts(str(result.run_id), "diagnostics")}
    assert dg.SURFACE_PNG in names
    path = Path(client.download_artifacts(str(result.run_id), f"diagnostics/{dg.SURFACE_PNG}", str(tmp_path)))
    assert_a_real_picture(path)
    # The trained xor network puts (0, 1) and (1, 0) on the class-1 side: the picture's corners are red there
    # and blue at (0, 0) and (1, 1). Read the colours where the four samples are drawn.
    image = pixels(path)[..., :3]
    reds = red_share_at_the_corners(image)
    assert reds["top left"] and reds["bottom right"] and not reds["top right"] and not reds["bottom left"], reds


def red_share_at_the_corners(image: np.ndarray) -> dict[str, bool]:
    """Whether the plot area is red (more red than blue) just inside each of its four corners."""
    # The plot area: the rows and columns where the image is not the white figure background.
    body = image[:, : int(image.shape[1] * 0.78)]  # leave out the colour bar
    coloured = np.abs(body - 1).sum(axis=2) > 0.3
    rows, cols = np.flatnonzero(coloured.mean(axis=1) > 0.5), np.flatnonzero(coloured.mean(axis=0) > 0.5)
    top, bottom, left, right = rows[0], rows[-1], cols[0], cols[-1]
    inset = 25

    def red(r: int, c: int) -> bool:
        patch = body[r - 3 : r + 4, c - 3 : c + 4].reshape(-1, 3).mean(axis=0)
        return bool(patch[0] > patch[2])

    return {
        "top left": red(top + inset, left + inset),
        "top right": red(top + inset, right - inset),
        "bottom left": red(bottom - inset, left + inset),
        "bottom right": red(bottom - inset, right - inset),
    }


def test_every_picture_is_documented_with_its_image() -> None:
    page = (Path(__file__).parents[2] / "docs" / "tracking.md").read_text()
    names = [v for k, v in vars(dg).items() if k.endswith(("_PNG", "_CSV")) and isinstance(v, str)]
    assert len(names) == 9  # and the gradient flow, drawn by the callback itself
    names.append("gradient_flow.png")
    for name in names:
        assert f"`{name}`" in page, name
        if name.endswith(".png"):
            assert f"(images/{name})" in page, name
            assert (Path(__file__).parents[2] / "docs" / "images" / name).exists(), name
