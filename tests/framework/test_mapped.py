"""Memory-mapped .npy data (issue 21): a mapped run trains bitwise like the in-memory run and resumes exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from framework import Experiment, fit
from framework.build import prepare_run
from framework.errors import DataError
from framework.mapped import MappedRows, NpyRows, Stacked, streamed_standardizer
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
    assert isinstance(mapped_run.trainer.train.X.source, NpyRows)
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


def shards_config(path: Path, name: str, in_memory: bool, shuffle: bool) -> dict[str, Any]:
    return config(path, in_memory, shuffle) | {
        "data": {"name": name, "path": str(path), "in_memory": in_memory, "validation_split": 0.2}
    }


def write_shards(folder: Path, suffix: str, sizes: tuple[int, ...] = (200, 1, 322)) -> np.ndarray:
    """`.npy` shards, or Feather files of several record batches (uncompressed: mappable); the whole table."""
    import pyarrow as pa
    import pyarrow.feather as feather

    folder.mkdir()
    rng = np.random.default_rng(1)
    whole = []
    for i, n in enumerate(sizes):
        X = rng.normal(3.0, 2.0, size=(n, 4)).astype(np.float32)
        data = np.column_stack([X, X @ np.float32([1, -2, 0.5, 3]) + rng.normal(size=n).astype(np.float32)])
        whole.append(data)
        if suffix == ".npy":
            np.save(folder / f"part-{i}.npy", data)
        else:
            columns = {f"x{j}": data[:, j] for j in range(4)} | {"y": data[:, 4].astype(np.float64)}
            feather.write_feather(
                pa.table(columns), folder / f"part-{i}.feather", compression="uncompressed", chunksize=37
            )
    return np.concatenate(whole)


@pytest.mark.parametrize("name,suffix", [("npz", ".npy"), ("feather", ".feather")])
@pytest.mark.parametrize("shuffle", [True, False])
def test_mapped_shards_train_like_the_table_in_memory_and_resume_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, suffix: str, shuffle: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    whole = write_shards(tmp_path / "shards", suffix)
    np.save(tmp_path / "whole.npy", whole)  # the oracle: one file, read into memory
    run = prepare_run(Experiment.from_dict(shards_config(tmp_path / "shards", name, False, shuffle)), track=False)
    assert isinstance(run.trainer.train.X, MappedRows)
    assert isinstance(run.trainer.train.X.source, Stacked)  # three shards, each left in its file
    rows = np.sort(np.random.default_rng(0).choice(len(whole), 300, replace=False))
    np.testing.assert_array_equal(run.trainer.train.X.source[rows], whole[rows, :4])  # gathered across shards
    in_memory = fit(Experiment.from_dict(config(tmp_path / "whole.npy", True, shuffle)))
    mapped = fit(Experiment.from_dict(shards_config(tmp_path / "shards", name, False, shuffle)))
    assert_same(in_memory, mapped)
    latest = max((tmp_path / "checkpoints" / "mapped").iterdir(), key=lambda run: run.stat().st_mtime_ns)
    resumed = fit(
        Experiment.from_dict(shards_config(tmp_path / "shards", name, False, shuffle)), resume=latest / "epoch-0002"
    )
    assert_same(in_memory, resumed)


def test_a_mapped_feather_file_gathers_its_columns_in_place(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.feather as feather

    from plugins.arrow_columns import ArrowColumns
    from plugins.columnar_datasets import FeatherDataset

    rng = np.random.default_rng(2)
    a, b, c = rng.normal(size=500), rng.integers(-9, 9, size=500).astype(np.int16), rng.normal(size=500)
    table = pa.table({"a": a, "b": b, "c": c.astype(np.float32), "y": rng.integers(0, 3, size=500)})
    feather.write_feather(table, tmp_path / "t.feather", compression="uncompressed", chunksize=64)
    bundle = FeatherDataset(path=str(tmp_path / "t.feather"), in_memory=False).load(rng)
    assert isinstance(bundle.X, ArrowColumns) and bundle.task == "multiclass"
    pick = rng.permutation(500)[:77]
    expected = np.column_stack([a, b.astype(np.float64), c.astype(np.float32).astype(np.float64)])[pick]
    np.testing.assert_array_equal(bundle.X[pick], expected)
    # Where the values are not plain in the file, in_memory = false says why and how to write one that maps.
    feather.write_feather(table, tmp_path / "z.feather", compression="lz4")
    with pytest.raises(DataError, match=r"z\.feather: column 'a' is not stored plainly.*compression='uncompressed'"):
        FeatherDataset(path=str(tmp_path / "z.feather"), in_memory=False).load(rng)
    assert isinstance(FeatherDataset(path=str(tmp_path / "z.feather")).load(rng).X, np.ndarray)  # auto reads it
    holes = pa.table({"a": pa.array([1.0, None, 3.0]), "y": [0, 1, 0]})
    feather.write_feather(holes, tmp_path / "h.feather", compression="uncompressed")
    with pytest.raises(DataError, match=r"h\.feather: feature 'a' has missing values \(first at row 1\)"):
        FeatherDataset(path=str(tmp_path / "h.feather"), in_memory=False).load(rng)


def test_shards_of_different_widths_are_refused_naming_the_shard(tmp_path: Path) -> None:
    from plugins.file_datasets import NpzDataset

    (tmp_path / "s").mkdir()
    np.save(tmp_path / "s" / "a.npy", np.zeros((5, 4)))
    np.save(tmp_path / "s" / "b.npy", np.zeros((5, 3)))
    with pytest.raises(DataError, match=r"b\.npy: features of shape \(5, 2\).*a\.npy has \(5, 3\)"):
        NpzDataset(path=str(tmp_path / "s"), in_memory=False).load(np.random.default_rng(0))
