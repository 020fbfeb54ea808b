"""Memory-mapped .npy data (issue 21): a mapped run trains bitwise like the in-memory run and resumes exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from framework import Experiment, fit
from framework.build import prepare_run
from framework.mapped import MappedRows, streamed_standardizer
from framework.model import Standardizer


def write_npy(path: Path, n: int = 523, k: int = 4, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(3.0, 2.0, size=(n, k)).astype(np.float32)
    y = X @ rng.normal(size=k).astype(np.float32) + 0.1 * rng.normal(size=n).astype(np.float32)
    np.save(path, np.column_stack([X, y]))


def config(path: Path, in_memory: bool, shuffle: bool, **data: Any) -> dict[str, Any]:
    return {
        "name": "mapped",
        "seed": 3,
        "data": {"name": "npz", "path": str(path), "in_memory": in_memory, "validation_split": 0.2, **data},
        "model": {"layers": [{"units": 8, "activation": "tanh"}, {"units": 1}]},
        "loss": {"name": "mse"},
        "optimizer": {"name": "adam", "lr": 0.01},
        "training": {"epochs": 3, "batch_size": 32, "shuffle": shuffle, "checkpoint_every": 1},
        "tracking": {"enabled": False},
    }


def assert_same(a: Any, b: Any) -> None:
    assert a.history.metrics == b.history.metrics  # exact float equality, every epoch
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    np.testing.assert_array_equal(a.model.preprocess.mean, b.model.preprocess.mean)
    np.testing.assert_array_equal(a.model.preprocess.scale, b.model.preprocess.scale)


@pytest.mark.parametrize("shuffle", [True, False])
def test_a_mapped_run_equals_the_in_memory_run_and_resumes_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shuffle: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("framework.mapped.CHUNK_ROWS", 100)  # the statistics cross chunk boundaries
    write_npy(tmp_path / "d.npy")
    mapped_run = prepare_run(Experiment.from_dict(config(tmp_path / "d.npy", False, shuffle)), track=False)
    assert isinstance(mapped_run.trainer.train.X, MappedRows)  # the features really stay in the file
    assert isinstance(mapped_run.trainer.train.X.source, np.memmap)
    in_memory = fit(Experiment.from_dict(config(tmp_path / "d.npy", True, shuffle)))
    mapped = fit(Experiment.from_dict(config(tmp_path / "d.npy", False, shuffle)))
    assert_same(in_memory, mapped)
    runs = sorted((tmp_path / "checkpoints" / "mapped").iterdir())
    resumed = fit(Experiment.from_dict(config(tmp_path / "d.npy", False, shuffle)), resume=runs[-1] / "epoch-0002")
    assert_same(in_memory, resumed)
    # The fingerprint is of the data, not of how it is held: an in-memory checkpoint resumes a mapped run.
    resumed = fit(Experiment.from_dict(config(tmp_path / "d.npy", False, shuffle)), resume=runs[0] / "epoch-0002")
    assert_same(in_memory, resumed)


@pytest.mark.parametrize("k", [1, 2, 7])
def test_streamed_statistics_are_the_in_memory_ones_bit_for_bit(monkeypatch: pytest.MonkeyPatch, k: int) -> None:
    monkeypatch.setattr("framework.mapped.CHUNK_ROWS", 64)
    rng = np.random.default_rng(k)
    source = (rng.normal(size=(1000, k + 1)) * 1e3 + 17).astype(np.float64)
    index = np.sort(rng.choice(1000, size=777, replace=False))
    rows = MappedRows(source[:, :k], index, np.dtype(np.float32))
    oracle = Standardizer.fit(source[index, :k].astype(np.float32))  # today's fit on the gathered split
    streamed = streamed_standardizer(rows)
    np.testing.assert_array_equal(streamed.mean, oracle.mean)
    np.testing.assert_array_equal(streamed.scale, oracle.scale)
    rows.scaler = streamed
    perm = rng.permutation(len(rows))
    np.testing.assert_array_equal(
        rows.take(perm)[10:50], oracle.transform(source[index, :k].astype(np.float32))[perm][10:50]
    )
