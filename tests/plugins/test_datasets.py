"""scikit-learn's bundled datasets, read from its data files without importing scikit-learn (issue 15).

scikit-learn's own loaders are the oracle: imported here, in the test, never by the datasets.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from sklearn import datasets as sklearn_datasets

from framework import DataBundle
from framework.errors import DataError
from plugins import datasets

SklearnDataset = datasets._SklearnDataset  # the base of the five sets
ROOT = Path(__file__).resolve().parents[2]
SKLEARN_SETS = [datasets.Digits, datasets.Iris, datasets.Wine, datasets.BreastCancer, datasets.Diabetes]
TASKS = {"digits": "multiclass", "iris": "multiclass", "wine": "multiclass", "breast_cancer": "binary"}


def load(cls: type[SklearnDataset]) -> DataBundle:
    return cls().load(np.random.default_rng(0))


def no_fallback(self: object, problem: str) -> None:
    raise AssertionError(f"the files were not read: {problem}")


def without_sklearn(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make scikit-learn look uninstalled: `import sklearn` fails and `find_spec` finds nothing."""
    for module in ("sklearn", "sklearn.datasets"):
        monkeypatch.setitem(sys.modules, module, None)


def assert_same_as_sklearn(cls: type[SklearnDataset], bundle: DataBundle) -> None:
    expected = getattr(sklearn_datasets, cls.loader)()
    regression = cls.name == "diabetes"
    assert bundle.X.dtype == np.float64 and bundle.y.dtype == (np.float64 if regression else np.int64)
    np.testing.assert_array_equal(bundle.X, expected.data, strict=True)
    np.testing.assert_array_equal(bundle.y, expected.target, strict=True)
    # Bit for bit: array_equal would let -0.0 stand for 0.0.
    assert bundle.X.tobytes() == expected.data.tobytes() and bundle.y.tobytes() == expected.target.tobytes()
    assert bundle.feature_names == [str(name) for name in expected.feature_names]
    if regression:
        assert bundle.task == "regression" and bundle.target_names == ["target"]
    else:
        assert bundle.task == TASKS[cls.name]
        assert bundle.target_names == [str(name) for name in expected.target_names]


@pytest.mark.parametrize("cls", SKLEARN_SETS, ids=lambda cls: cls.name)
def test_the_files_give_what_sklearn_loads(cls: type[SklearnDataset], monkeypatch: pytest.MonkeyPatch) -> None:
    # The fallback would also give sklearn's data: forbid it, so that this checks the reading of the files.
    monkeypatch.setattr(SklearnDataset, "load_with_sklearn", no_fallback)
    assert_same_as_sklearn(cls, load(cls))


def test_the_data_folder_is_sklearns() -> None:
    assert datasets.sklearn_data_dir() == Path(sklearn_datasets.__file__).parent / "data"


@pytest.mark.slow  # starts a process
def test_loading_digits_for_a_run_does_not_import_sklearn_scipy_or_pandas() -> None:
    code = (
        "import sys\n"
        "from framework import Experiment\n"
        "from framework.build import prepare_run\n"
        f"run = prepare_run(Experiment.from_file({str(ROOT / 'experiments' / 'digits.toml')!r}), track=False)\n"
        "print('SHAPE', run.trainer.dataset.X.shape)\n"
        "print('HEAVY', [m for m in ('sklearn', 'scipy', 'pandas') if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert "SHAPE (1797, 64)" in done.stdout, done.stdout + done.stderr
    assert "HEAVY []" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize("cls", SKLEARN_SETS, ids=lambda cls: cls.name)
def test_missing_files_fall_back_to_sklearn(
    cls: type[SklearnDataset], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(datasets, "sklearn_data_dir", lambda: tmp_path)
    caplog.set_level("INFO", logger=datasets.__name__)
    assert_same_as_sklearn(cls, load(cls))
    assert f"dataset {cls.name!r}" in caplog.text and "No such file" in caplog.text


@pytest.mark.parametrize(
    ("cls", "target", "dtype", "target_names"),
    [(datasets.Iris, [2], np.int64, ["a", "b", "c"]), (datasets.Diabetes, [151], np.float64, ["target"])],
)
def test_the_fallback_gives_the_bundle_dtypes_whatever_sklearn_returns(
    cls: type[SklearnDataset],
    target: list[int],
    dtype: type,
    target_names: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A scikit-learn whose loader returns lists and int32 (older versions on Windows did): the bundle is still
    # float64 features and int64 labels / float64 targets.
    fake = types.ModuleType("sklearn.datasets")
    bunch = types.SimpleNamespace(
        data=[[1, 2, 3, 4]], target=np.array(target, dtype=np.int32), target_names=np.array(["a", "b", "c"])
    )
    setattr(fake, cls.loader, lambda: bunch)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", fake)
    monkeypatch.setattr(datasets, "sklearn_data_dir", lambda: tmp_path)
    bundle = load(cls)
    assert bundle.X.dtype == np.float64 and bundle.y.dtype == dtype
    np.testing.assert_array_equal(bundle.X, [[1.0, 2.0, 3.0, 4.0]])
    np.testing.assert_array_equal(bundle.y, target)
    assert bundle.target_names == target_names  # plain str, not numpy str_
    assert all(type(name) is str for name in bundle.target_names)


def test_without_sklearn_the_error_says_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    without_sklearn(monkeypatch)
    with pytest.raises(DataError) as error:
        load(datasets.Digits)
    message = str(error.value)
    assert message.startswith("dataset 'digits' comes from scikit-learn's bundled files")
    assert "scikit-learn is not installed" in message and message.endswith("help: pip install scikit-learn")


IRIS_HEADER = "150,4,setosa,versicolor,virginica\n"
DIGITS_ROW = ",".join(["0"] * 64) + ",3\n"


@pytest.mark.parametrize(
    ("cls", "files", "problem"),
    [
        pytest.param(
            datasets.Iris,
            {"iris.csv": (IRIS_HEADER + "5.1,3.5,1.4,0.2,0\n").encode()},
            "iris.csv: 1 x 5 numbers, expected 150 x 5",
            id="iris-fewer-rows-than-the-header-says",
        ),
        pytest.param(
            datasets.Iris,
            {"iris.csv": b"1,4,a,b,c\n5.1,3.5,1.4,0.2,3\n"},
            "iris.csv: the last column holds values other than the class indices 0..2",
            id="iris-label-out-of-range",
        ),
        pytest.param(
            datasets.Iris,
            {"iris.csv": b"1,4,a,b,c\n5.1,3.5,1.4,0.2,0.5\n"},
            "iris.csv: the last column holds values other than the class indices 0..2",
            id="iris-label-not-an-integer",
        ),
        pytest.param(
            datasets.Iris,
            {"iris.csv": b"1,5,a,b,c\n5.1,3.5,1.4,0.2,1.0,0\n"},
            "iris.csv: 5 features, expected 4",
            id="iris-another-feature",
        ),
        pytest.param(datasets.Iris, {"iris.csv": b""}, "not enough values to unpack", id="iris-empty"),
        pytest.param(
            datasets.Iris,
            {"iris.csv": (IRIS_HEADER + "5.1,x,1.4,0.2,0\n").encode()},
            "could not convert",
            id="iris-not-a-number",
        ),
        pytest.param(
            datasets.Digits,
            {"digits.csv.gz": gzip.compress(b"1,2,3\n")},
            "digits.csv.gz: 1 x 3 numbers, expected n x 65",
            id="digits-too-few-columns",
        ),
        pytest.param(
            datasets.Digits, {"digits.csv.gz": DIGITS_ROW.encode()}, "Not a gzipped file", id="digits-not-gzipped"
        ),
        pytest.param(
            datasets.Digits,
            {"digits.csv.gz": gzip.compress(DIGITS_ROW.encode())[:-6]},
            "end-of-stream marker",
            id="digits-truncated",
        ),
        pytest.param(
            datasets.Digits,
            {"digits.csv.gz": gzip.compress(DIGITS_ROW.replace(",3", ",10").encode())},
            "digits.csv.gz: the last column holds values other than the class indices 0..9",
            id="digits-label-out-of-range",
        ),
        pytest.param(
            datasets.Diabetes,
            {
                "diabetes_data_raw.csv.gz": gzip.compress(b"1 2 3 4 5 6 7 8 9 10\n" * 3),
                "diabetes_target.csv.gz": gzip.compress(b"1\n"),
            },
            "diabetes_target.csv.gz: 1 x 1 numbers, expected 3 x 1",
            id="diabetes-fewer-targets-than-samples",
        ),
        pytest.param(
            datasets.Diabetes,
            {"diabetes_data_raw.csv.gz": gzip.compress(b"1 2 3\n"), "diabetes_target.csv.gz": gzip.compress(b"1\n")},
            "diabetes_data_raw.csv.gz: 1 x 3 numbers, expected n x 10",
            id="diabetes-too-few-columns",
        ),
    ],
)
def test_files_in_another_format_fall_back_to_sklearn(
    cls: type[SklearnDataset], files: dict[str, bytes], problem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    monkeypatch.setattr(datasets, "sklearn_data_dir", lambda: tmp_path)
    assert_same_as_sklearn(cls, load(cls))  # scikit-learn's loader reads its own files

    without_sklearn(monkeypatch)
    with pytest.raises(DataError, match=f"dataset {cls.name!r} comes from") as error:
        load(cls)
    assert problem in str(error.value)
    assert "help: pip install scikit-learn" in str(error.value)
