"""Parquet and Feather datasets (issue 21): round trips of tables written by pyarrow, column choice, shards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from framework import Experiment, fit
from framework.errors import DataError

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
feather = pytest.importorskip("pyarrow.feather")

AREA = [50.0, 80.5, 65.25, 120.0, 70.0, 99.0]
ROOMS = [2, 3, 2, 5, 3, 4]
KIND = ["flat", "house", "flat", " house", "villa", "flat"]
PRICE = [1.5, 2.5, 2.0, 4.0, 2.1, 3.3]


def table() -> Any:
    return pa.table(
        {
            "area": pa.array(AREA, pa.float32()),
            "rooms": pa.array(ROOMS, pa.int16()),
            "note": ["a", "b", "c", "d", "e", "f"],  # text: refused as a feature, fine when not chosen
            "kind": pa.array(KIND).dictionary_encode(),
            "price": PRICE,
        }
    )


def write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        pq.write_table(data, path)
    else:
        feather.write_feather(data, path)


def load(name: str, path: Path, **params: Any) -> Any:
    from plugins.columnar_datasets import FeatherDataset, ParquetDataset

    cls = ParquetDataset if name == "parquet" else FeatherDataset
    return cls(path=str(path), **params).load(np.random.default_rng(0))


@pytest.mark.parametrize("name,suffix", [("parquet", ".parquet"), ("feather", ".feather")])
def test_round_trip_with_chosen_columns(tmp_path: Path, name: str, suffix: str) -> None:
    write(tmp_path / f"t{suffix}", table())
    bundle = load(name, tmp_path / f"t{suffix}", features=["rooms", "area"], target="kind")
    expected_X = np.column_stack([np.array(ROOMS, float), np.array(AREA, np.float32).astype(float)])
    np.testing.assert_array_equal(bundle.X, expected_X)
    names = sorted({k.strip() for k in KIND})
    assert bundle.task == "multiclass" and bundle.target_names == names == ["flat", "house", "villa"]
    np.testing.assert_array_equal(bundle.y, [names.index(k.strip()) for k in KIND])
    assert bundle.feature_names == ["rooms", "area"]
    bundle = load(name, tmp_path / f"t{suffix}", features=["area"])  # target: the last column, a float
    assert bundle.task == "regression" and bundle.target_names == ["price"]
    np.testing.assert_array_equal(bundle.y, PRICE)
    bundle = load(name, tmp_path / f"t{suffix}", features=["area"], target="rooms")  # integers: classes
    assert bundle.task == "multiclass" and bundle.target_names == ["2", "3", "4", "5"]
    np.testing.assert_array_equal(bundle.y, [0, 1, 0, 3, 1, 2])


def test_refusals_name_the_file_and_column(tmp_path: Path) -> None:
    write(tmp_path / "t.parquet", table())
    with pytest.raises(DataError, match=r"t.parquet: column 'note' is of type string, not numeric"):
        load("parquet", tmp_path / "t.parquet", target="price")
    with pytest.raises(DataError, match=r"no column 'prise'.*Did you mean 'price'\?"):
        load("parquet", tmp_path / "t.parquet", target="prise")
    write(tmp_path / "gap.parquet", pa.table({"a": [1.0, None, 3.0], "y": ["p", "q", None]}))
    with pytest.raises(DataError, match=r"target 'y' has 1 missing labels \(first at row 2\)"):
        load("parquet", tmp_path / "gap.parquet")
    (tmp_path / "torn.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match=r"torn\.parquet: not a readable parquet file"):
        load("parquet", tmp_path / "torn.parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty' is a directory with no \.parquet/\.pq file"):
        load("parquet", tmp_path / "empty")
    with pytest.raises(DataError, match="no file matches"):
        load("parquet", tmp_path / "x*.parquet")


@pytest.mark.parametrize("name,suffix", [("parquet", ".parquet"), ("feather", ".feather")])
def test_shards_in_a_folder_or_glob_are_one_table_in_name_order(tmp_path: Path, name: str, suffix: str) -> None:
    whole = table()
    for i, (start, stop) in enumerate([(4, 6), (0, 1), (1, 4)]):  # written out of order; read by name
        write(tmp_path / "shards" / f"part-{[2, 0, 1][i]}{suffix}", whole.slice(start, stop - start))
    (tmp_path / "shards" / "README.txt").write_text("not a shard")
    for path in (tmp_path / "shards", tmp_path / "shards" / f"part-*{suffix}"):
        bundle = load(name, path, features=["area", "rooms"])
        np.testing.assert_array_equal(bundle.y, PRICE)
        np.testing.assert_array_equal(bundle.X[:, 1], ROOMS)


def test_a_parquet_experiment_trains(tmp_path: Path) -> None:
    write(tmp_path / "data" / "t.parquet", table())
    config = {
        "name": "pq",
        "data": {"name": "parquet", "path": "data/t.parquet", "features": ["area", "rooms"], "validation_split": 0},
        "model": {"layers": [{"units": 4, "activation": "tanh"}, {"units": 1}]},
        "loss": {"name": "mse"},
        "optimizer": {"name": "sgd", "lr": 0.01},
        "training": {"epochs": 2, "batch_size": 4},
        "tracking": {"enabled": False},
    }
    (tmp_path / "exp.json").write_text(json.dumps(config))
    result = fit(Experiment.from_file(tmp_path / "exp.json"))
    assert result.model.feature_names == ["area", "rooms"] and len(result.history) == 2
