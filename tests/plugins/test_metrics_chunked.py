"""Regression metrics read their inputs a chunk of rows at a time (issue 21: a mapped epoch of 25 million rows).

The oracles are the formulas on the whole arrays in float64, written out here, and scikit-learn; the memory
bound is measured with tracemalloc, which counts numpy's allocations.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from sklearn import metrics as skm

import plugins.metrics.regression as regression
from plugins.metrics import MAE, MAPE, R2, RMSE, ExplainedVariance


@pytest.mark.parametrize("n_outputs", [1, 3])
def test_chunked_metrics_are_the_whole_array_formulas(monkeypatch: pytest.MonkeyPatch, n_outputs: int) -> None:
    monkeypatch.setattr(regression, "CHUNK_ROWS", 7)  # 100 rows: 15 chunks, the last one short
    rng = np.random.default_rng(11)
    t32 = rng.normal(2.0, 3.0, size=(100, n_outputs)).astype(np.float32)
    p32 = (t32 + rng.normal(0.5, 1.0, size=t32.shape)).astype(np.float32)
    t, p = t32.astype(np.float64), p32.astype(np.float64)  # what every chunk is converted to
    y_true = t32[:, 0] if n_outputs == 1 else t32  # a single target comes as (n,)
    residual = t - p
    expected = {
        MAE: np.mean(np.abs(residual)),
        RMSE: np.mean(np.sqrt(np.mean(residual**2, axis=0))),
        MAPE: 100 * np.mean(np.abs(residual) / np.maximum(np.abs(t), 1e-7)),
        R2: np.mean(1 - np.sum(residual**2, axis=0) / np.sum((t - t.mean(axis=0)) ** 2, axis=0)),
        ExplainedVariance: np.mean(1 - np.var(residual, axis=0) / np.var(t, axis=0)),
    }
    for metric, value in expected.items():
        assert metric()(y_true, p32) == pytest.approx(value, rel=1e-12), metric.name
    assert R2()(y_true, p32) == pytest.approx(skm.r2_score(t, p), rel=1e-12)
    assert ExplainedVariance()(y_true, p32) == pytest.approx(skm.explained_variance_score(t, p), rel=1e-12)


def test_a_metric_of_a_million_rows_holds_chunks_not_float64_copies() -> None:
    n = 1 << 20
    rng = np.random.default_rng(2)
    t = rng.normal(size=n).astype(np.float32)
    p = rng.normal(size=(n, 1)).astype(np.float32)
    whole_copy = n * 8  # one float64 copy of the targets: 8 MiB; the formula on whole arrays makes four
    for metric in (MAE(), R2(), RMSE(), MAPE(), ExplainedVariance()):
        tracemalloc.start()
        try:
            metric(t, p)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < whole_copy / 2, (metric.name, peak)
