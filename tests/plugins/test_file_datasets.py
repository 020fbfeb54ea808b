"""CSV and numpy file datasets: targets by name, labels encoded, paths relative to the experiment file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from framework import Experiment, fit
from framework.build import prepare_run
from framework.errors import DataError

CSV = """area,rooms,kind,price
50,2,flat,1.5
80,3,house,2.5
65,2,flat,2.0
120,5,house,4.0
70;,3,flat,2.1
"""


def experiment(tmp_path: Path, data: dict[str, Any], **overrides: Any) -> Experiment:
    layers = overrides.pop("layers", [{"units": 4, "activation": "tanh"}, {"units": 1}])
    config = {
        "name": "files",
        "data": {"validation_split": 0, **data},
        "model": {"layers": layers},
        "loss": {"name": overrides.pop("loss", "mse")},
        "optimizer": {"name": "sgd", "lr": 0.01},
        "training": {"epochs": 2, "batch_size": 4},
        "tracking": {"enabled": False},
        **overrides,
    }
    path = tmp_path / "exp.json"
    import json

    path.write_text(json.dumps(config))
    return Experiment.from_file(path)


def write(tmp_path: Path, text: str, name: str = "data.csv") -> None:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / name).write_text(text)


def test_csv_regression_target_by_name_relative_to_the_experiment(tmp_path: Path) -> None:
    write(tmp_path, "area,rooms,price\n50,2,1.5\n80,3,2.5\n65,2,2.0\n120,5,4.0\n")
    run = prepare_run(experiment(tmp_path, {"name": "csv", "path": "data/data.csv", "target": "price"}), track=False)
    bundle = run.trainer.dataset  # type: ignore[attr-defined]
    assert bundle.task == "regression" and bundle.feature_names == ["area", "rooms"]
    np.testing.assert_array_equal(bundle.y, [1.5, 2.5, 2.0, 4.0])


def test_csv_text_labels_are_encoded_and_kept_as_target_names(tmp_path: Path) -> None:
    write(tmp_path, "area;rooms;kind\n50;2;flat\n80;3;house\n65;2;flat\n120;5;house\n90;4;villa\n")
    data = {"name": "csv", "path": "data/data.csv", "target": "kind", "delimiter": ";"}
    layers = [{"units": 4, "activation": "tanh"}, {"units": 3}]
    run = prepare_run(experiment(tmp_path, data, layers=layers, loss="cross_entropy"), track=False)
    bundle = run.trainer.dataset  # type: ignore[attr-defined]
    assert bundle.task == "multiclass" and bundle.target_names == ["flat", "house", "villa"]
    np.testing.assert_array_equal(bundle.y, [0, 1, 0, 1, 2])
    assert run.trainer.model.target_names == ["flat", "house", "villa"]


def test_csv_errors_name_the_column(tmp_path: Path) -> None:
    write(tmp_path, CSV)
    with pytest.raises(DataError, match=r"column 'area' is not numeric \('70;' in data row 5\)"):
        fit(experiment(tmp_path, {"name": "csv", "path": "data/data.csv", "target": "price", "features": ["area"]}))
    with pytest.raises(DataError, match=r"no column 'prise'.*Did you mean 'price'\?"):
        fit(experiment(tmp_path, {"name": "csv", "path": "data/data.csv", "target": "prise"}))
    with pytest.raises(DataError, match=r"file .*missing\.csv' not found"):
        fit(experiment(tmp_path, {"name": "csv", "path": "missing.csv"}))
    write(tmp_path, "a,b,y\n1,,0.5\n2,3,0.7\n")  # an empty cell is a missing value: refused, column named
    with pytest.raises(DataError, match="feature 'b' has NaN or infinite values"):
        fit(experiment(tmp_path, {"name": "csv", "path": "data/data.csv"}))


def test_npz_and_npy(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    X = np.arange(12.0).reshape(6, 2)
    np.savez(tmp_path / "data" / "d.npz", X=X, y=np.array([3, 5, 3, 5, 3, 5]))
    layers = [{"units": 4, "activation": "tanh"}, {"units": 1}]
    exp = experiment(tmp_path, {"name": "npz", "path": "data/d.npz"}, layers=layers, loss="binary_cross_entropy")
    bundle = prepare_run(exp, track=False).trainer.dataset  # type: ignore[attr-defined]
    assert bundle.task == "binary" and bundle.target_names == ["3", "5"]
    np.testing.assert_array_equal(bundle.y, [0, 1, 0, 1, 0, 1])
    np.save(tmp_path / "data" / "d.npy", np.column_stack([X, X.sum(axis=1)]))
    bundle = prepare_run(experiment(tmp_path, {"name": "npz", "path": "data/d.npy"}), track=False).trainer.dataset  # type: ignore[attr-defined]
    assert bundle.task == "regression" and bundle.X.shape == (6, 2)
    np.save(tmp_path / "data" / "objects.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match="refused to load"):
        fit(experiment(tmp_path, {"name": "npz", "path": "data/objects.npy"}))


def test_guard_rails_before_training(tmp_path: Path) -> None:
    # Targets that do not fit the loss are reported before training, in one line.
    write(tmp_path, "a,b,y\n1,2,0\n2,3,1\n3,4,2\n4,5,1\n")
    data = {"name": "csv", "path": "data/data.csv", "task": "multiclass"}
    with pytest.raises(DataError, match="the last layer has 1 units, but cross_entropy needs one output per class"):
        fit(experiment(tmp_path, data, loss="cross_entropy"))
    with pytest.raises(Exception, match=r"loss 'binary_cross_entropy' is for binary tasks"):
        fit(experiment(tmp_path, data, loss="binary_cross_entropy"))


def test_standardised_regression_targets_are_stored_with_the_model(tmp_path: Path) -> None:
    rows = "\n".join(f"{x},{100 + 50 * x}" for x in range(20))
    write(tmp_path, "x,y\n" + rows + "\n")
    exp = experiment(tmp_path, {"name": "csv", "path": "data/data.csv", "standardize_target": True})
    result = fit(exp)
    scaler = result.model.target_scaler
    assert scaler is not None
    assert scaler.mean[0] == pytest.approx(100 + 50 * 9.5)
    # Predictions come back in the targets' units, also after saving and loading.
    model_dir = result.model.save(tmp_path / "model")
    from framework.model import Model

    loaded = Model.load(model_dir)
    x = np.array([[3.0], [10.0]])
    np.testing.assert_allclose(loaded.predict(x), result.model.predict(x), rtol=1e-6)
    assert np.all(np.abs(result.model.predict(x)) > 10)  # not standardised units


# -- the Arrow reader (issue 21): same answers as the Python reader, same refusals ----------------------------


def load_csv(tmp_path: Path, text: str | bytes, **params: Any) -> Any:
    from plugins.file_datasets import CsvDataset

    path = tmp_path / "t.csv"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return CsvDataset(path=str(path), **params).load(np.random.default_rng(0))


CLEAN = {
    "text labels, spaces, quotes": ('a,b,kind\n1, 2.5 ,flat\n-3,4e2, house\n5,"6",flat\n', {}),
    "numeric labels as classes": ("x,y\n0.5,2\n1.5,10\n2.5,2\n3.5,1\n", {"task": "multiclass"}),
    "no header, delimiter": ("1;2;a\n3;4;b\n\n5;6;a\n", {"header": False, "delimiter": ";"}),
    "chosen features and target": ("p,q,r,s\n1,2,3,x\n4,5,6,y\n7,8,9,x\n", {"features": ["r", "p"], "target": "s"}),
    "regression": ("a,b,price\n1,2,0.1\n3,4,0.30000000000000004\n", {}),
    "classes in a given order": ("a,c\n1,lo\n2,hi\n3,mid\n", {"classes": ["lo", "mid", "hi"]}),
}


@pytest.mark.parametrize("case", list(CLEAN))
def test_arrow_reads_what_the_python_reader_reads(tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from plugins.file_datasets import CsvDataset

    text, params = CLEAN[case]
    oracle = CsvDataset(path=str(tmp_path / "t.csv"), **params)
    (tmp_path / "t.csv").write_text(text, encoding="utf-8")
    expected = oracle._load_python(tmp_path / "t.csv")

    def no_fallback(self: Any, path: Path) -> Any:
        raise AssertionError("a clean file must not need the Python reader")

    monkeypatch.setattr(CsvDataset, "_load_python", no_fallback)
    got = load_csv(tmp_path, text, **params)
    assert (got.task, got.feature_names, got.target_names) == (
        expected.task,
        expected.feature_names,
        expected.target_names,
    )
    np.testing.assert_array_equal(got.X, expected.X)  # both correctly rounded: bitwise the same floats
    np.testing.assert_array_equal(got.y, expected.y)
    assert got.y.dtype == expected.y.dtype


def test_labels_are_encoded_as_a_dictionary_oracle_says(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    labels = rng.choice(["b", "a", " c", "10", "9"], size=5000)
    rows = "\n".join(f"{i},{label}" for i, label in enumerate(labels))
    bundle = load_csv(tmp_path, "x,y\n" + rows + "\n")
    names = sorted({label.strip() for label in labels})  # text labels sort as text
    oracle = np.array([names.index(label.strip()) for label in labels])
    assert bundle.target_names == names
    np.testing.assert_array_equal(bundle.y, oracle)
    from plugins.tables import encode_labels

    codes, order = encode_labels(np.array([3.0, 10.0, 2.0, 10.0]), None, "t")  # numbers sort as numbers
    assert order == ["2", "3", "10"]
    np.testing.assert_array_equal(codes, [1, 2, 0, 2])


HOSTILE = {
    "NaN": ("a,b,y\n1,2,x\nnan,3,y\n", "t.csv: feature 'a' has NaN or infinite values (1 rows, first in data row 2)"),
    "inf": ("a,b,y\n1,-inf,x\n2,3,y\n", "t.csv: feature 'b' has NaN or infinite values (1 rows, first in data row 1)"),
    "ragged row": ("a,b,y\n1,2,x\n3,y\n", "t.csv: line 3 has 2 values, expected 3"),
    "non-numeric cell": ("a,b,y\n1,2,x\n3,four,y\n", "column 'b' is not numeric ('four' in data row 2)"),
    "NaN target": (
        "a,y\n1,0.5\n2,0.7\n3,inf\n",
        "t.csv: target 'y' has NaN or infinite values (1 rows, first in data row 3)",
    ),
    "NaN in a shape Arrow refuses": ("a,b,y\n1,2,x\n1_0,nan,y\n", "t.csv: feature 'b' has NaN or infinite values"),
    "NA is not a number": ("a,b,y\n1,NA,x\n3,4,y\n", "column 'b' is not numeric ('NA' in data row 1)"),
    "header only": ("a,b,y\n", "t.csv: no data rows"),
    "empty file": ("", "t.csv: the file is empty"),
    "a leading BOM": ("\ufeffa,b,y\n1,2,x\n3,4,y\n", "t.csv: line 1 starts with a UTF-8 byte-order mark (BOM)"),
    "a BOM inside the data": ("a,b,y\n1,2,x\n\ufeff3,4,y\n", "column 'a' is not numeric ('\\ufeff3' in data row 2)"),
    "line over the limit": (
        "a,b,y\n1,2,x\n3,4," + "y" * (1 << 20) + "\n",
        "t.csv: line 3 is 1,048,580 bytes long, over the limit of 1,048,576 bytes",
    ),
    "line over the limit, no newline at the end": (
        "a,b,y\n" + "1,2,x\n" * 70000 + "3,4," + "y" * (1 << 20),
        "t.csv: line 70002 is 1,048,580 bytes long",
    ),
    "not UTF-8": (b"a,b,y\n1,2,\xff\n", "not a UTF-8 text file"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_csv_is_refused_naming_file_row_and_column(tmp_path: Path, case: str) -> None:
    from framework.data import check_bundle

    text, message = HOSTILE[case]
    with pytest.raises(DataError) as caught:
        check_bundle(load_csv(tmp_path, text), "csv")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_csv_shards_in_a_folder_or_glob_read_as_one_table(tmp_path: Path) -> None:
    from plugins.file_datasets import CsvDataset

    header, rows = "a,b,kind\n", [f"{i},{i * i},{'xyz'[i % 3]}\n" for i in range(10)]
    (tmp_path / "whole.csv").write_text(header + "".join(rows))
    oracle = CsvDataset(path=str(tmp_path / "whole.csv"))._load_python(tmp_path / "whole.csv")
    (tmp_path / "parts").mkdir()
    for name, part in (("p-2.csv", rows[7:]), ("p-0.csv", rows[:3]), ("p-1.csv", rows[3:7])):
        (tmp_path / "parts" / name).write_text(header + "".join(part))
    (tmp_path / "parts" / "notes.md").write_text("not a shard")
    for path in ("parts", "parts/p-*.csv"):
        got = CsvDataset(path=str(tmp_path / path)).load(np.random.default_rng(0))
        np.testing.assert_array_equal(got.X, oracle.X)
        np.testing.assert_array_equal(got.y, oracle.y)  # labels encoded over all shards at once
        assert got.target_names == oracle.target_names == ["x", "y", "z"]
    (tmp_path / "parts" / "p-3.csv").write_text("a,b,kind\n1,2,x\n3,four,y\n")
    with pytest.raises(DataError, match=r"p-3\.csv: column 'b' is not numeric \('four' in data row 2\)"):
        CsvDataset(path=str(tmp_path / "parts")).load(np.random.default_rng(0))
    (tmp_path / "parts" / "p-3.csv").write_text("a,b,kind\n1,2,x\n3,inf,y\n")
    with pytest.raises(
        DataError, match=r"p-3\.csv: feature 'b' has NaN or infinite values \(1 rows, first in data row 2\)"
    ):
        CsvDataset(path=str(tmp_path / "parts")).load(np.random.default_rng(0))
    (tmp_path / "parts" / "p-3.csv").write_text("a,kind,b\n1,x,2\n")
    with pytest.raises(DataError, match=r"p-3\.csv: columns \['a', 'kind', 'b'\] differ from p-0\.csv's"):
        CsvDataset(path=str(tmp_path / "parts")).load(np.random.default_rng(0))


def test_a_float32_read_is_the_float64_read_cast_bitwise_and_bad_rows_are_found_in_any_batch(tmp_path: Path) -> None:
    from plugins.file_datasets import CsvDataset

    rng = np.random.default_rng(5)
    values = rng.normal(size=(40000, 3)) * 10.0 ** rng.integers(-30, 30, size=(40000, 3))  # many batches of 1 MiB
    lines = ["a,b,c,y"] + [f"{a!r},{b!r},{c!r},{i % 3}" for i, (a, b, c) in enumerate(values.tolist())]
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size > 2 * (1 << 20)  # three Arrow batches at least
    oracle = CsvDataset(path=str(path))._load_python(path)  # float64, the Python reader
    for dtype in (np.float64, np.float32):
        dataset = CsvDataset(path=str(path))
        dataset.dtype = np.dtype(dtype)
        got = dataset.load(np.random.default_rng(0))
        assert got.X.dtype == dtype
        np.testing.assert_array_equal(got.X, oracle.X.astype(dtype))  # the cast of today's float64 values
        np.testing.assert_array_equal(got.y, oracle.y)
    cells = lines[25001].split(",")
    lines[25001] = ",".join([cells[0], "nan", *cells[2:]])  # data row 25001, in the third batch
    lines[39001] = "1e39," + lines[39001].split(",", 1)[1]  # finite in float64, inf in float32: refused later
    path.write_text("\n".join(lines) + "\n")
    dataset = CsvDataset(path=str(path))
    dataset.dtype = np.dtype(np.float32)
    with pytest.raises(DataError, match=r"feature 'b' has NaN or infinite values \(1 rows, first in data row 25001\)"):
        dataset.load(np.random.default_rng(0))
    lines[25001] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    from framework.data import check_bundle

    with pytest.raises(DataError, match=r"feature 'a' has NaN or infinite values \(1 rows, first at row 39000\)"):
        check_bundle(dataset.load(np.random.default_rng(0)), "csv")  # the float32 bundle's own check
