"""Built-in datasets: the classic XOR example, a synthetic house-prices regression, scikit-learn's bundled sets.

Nothing is downloaded: synthetic data comes from the experiment's seeded generator, and the scikit-learn sets
are the CSV files that ship inside the scikit-learn package (`sklearn/datasets/data/`). They are read here with
`csv`, `gzip` and numpy, the way scikit-learn's own loaders read them (`sklearn/datasets/_base.py`), so the
arrays are the same bit for bit. scikit-learn itself is not imported: with scipy and pandas that takes about a
second, most of the wall time of a small run such as `experiments/digits.toml` (issue 15). The feature names,
which scikit-learn's loaders write in code rather than in the files, are copied here as data. When the files
cannot be read (scikit-learn is not installed, or a future version moved or changed them), the datasets fall
back to `sklearn.datasets.load_*`, and without scikit-learn they raise a `DataError`.
"""

from __future__ import annotations

import csv
import gzip
import importlib
import importlib.util
import logging
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from framework import Array, DataBundle, Dataset, Params, hookimpl
from framework.components import Task
from framework.errors import DataError

log = logging.getLogger(__name__)


class Xor(Dataset):
    """The four-sample XOR problem of the classic backpropagation example (third input is a constant 1)."""

    name: ClassVar[str] = "xor"

    def load(self, rng: np.random.Generator) -> DataBundle:
        X = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=float)
        y = np.array([0, 1, 1, 0])
        return DataBundle(X, y, "binary", ["a", "b", "bias"], ["false", "true"], "XOR of the first two inputs")


class HousePricesParams(Params):
    n_samples: int = Field(1000, ge=10, le=10_000_000, description="Number of houses to generate.")
    noise: float = Field(0.1, ge=0, description="Standard deviation of the price noise, in $100k.")


class HousePrices(Dataset):
    """Synthetic house prices (in $100k) from floor area, bedrooms, age and distance to the centre.

    price = 0.5 + 1.5 * area/1000 + 0.1 * bedrooms - 0.01 * age - 0.05 * distance + noise. The data is
    made up, deterministic from the experiment's seed; it exists so that a regression runs out of the box.
    """

    name: ClassVar[str] = "house_prices"
    Params: ClassVar[type[Params]] = HousePricesParams
    params: HousePricesParams

    def load(self, rng: np.random.Generator) -> DataBundle:
        n = self.params.n_samples
        area = rng.uniform(500, 3500, n)  # square feet
        bedrooms = np.clip(np.round(area / 600 + rng.normal(0, 0.7, n)), 1, 7)
        age = rng.uniform(0, 80, n)  # years
        distance = rng.exponential(8, n)  # km to the centre
        price = 0.5 + 1.5 * area / 1000 + 0.1 * bedrooms - 0.01 * age - 0.05 * distance
        price += rng.normal(0, self.params.noise, n)
        X = np.column_stack([area, bedrooms, age, distance])
        return DataBundle(
            X,
            price,
            "regression",
            ["area_sqft", "bedrooms", "age_years", "distance_km"],
            ["price_100k"],
            "synthetic house prices",
        )


Loaded = tuple[Array, Array, list[str]]
"""Features, targets and target names of a scikit-learn dataset, as read from its files or from scikit-learn."""


def sklearn_data_dir() -> Path:
    """scikit-learn's folder of bundled data files, located without importing scikit-learn."""
    # find_spec of a top-level package only searches the import path: sklearn/__init__.py is not run.
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-learn is not installed")
    return Path(next(iter(spec.submodule_search_locations)), "datasets", "data")


def read_table(path: Path, delimiter: str | None = None) -> Array:
    """A gzip-compressed text table of numbers as float64 rows (`delimiter` None: whitespace), as sklearn reads it.

    sklearn's `load_gzip_compressed_csv_data` hands the decompressed text to `np.loadtxt`; so does this.
    """
    with gzip.open(path, "rt", encoding="utf-8") as file:
        return np.loadtxt(file, delimiter=delimiter, ndmin=2)


def expect_shape(path: Path, table: Array, rows: int | None, columns: int) -> None:
    """Refuse a table of another shape (`rows` None: any number of rows): the file is not in the format read here."""
    if table.shape[1] != columns or (rows is not None and table.shape[0] != rows):
        expected = f"{'n' if rows is None else rows} x {columns}"
        raise ValueError(f"{path.name}: {table.shape[0]} x {table.shape[1]} numbers, expected {expected}")


def class_indices(path: Path, column: Array, n_classes: int) -> Array:
    """The label column as int64 class indices; any other value means the file is not in the format read here."""
    if not np.isin(column, np.arange(n_classes)).all():
        raise ValueError(f"{path.name}: the last column holds values other than the class indices 0..{n_classes - 1}")
    return column.astype(np.int64)


class _SklearnDataset(Dataset):
    """Base of scikit-learn's bundled datasets: `read` them from scikit-learn's data folder, else call `loader`."""

    loader: ClassVar[str] = ""  # the `sklearn.datasets` function of the fallback
    task: ClassVar[Task] = "multiclass"
    feature_names: ClassVar[tuple[str, ...]] = ()  # as scikit-learn's loader names them

    def read(self, folder: Path) -> Loaded:
        """Features, targets and target names from the files in `folder`; OSError or ValueError if it cannot."""
        raise NotImplementedError

    def load(self, rng: np.random.Generator) -> DataBundle:
        try:
            X, y, target_names = self.read(sklearn_data_dir())
        except (OSError, EOFError, ValueError) as error:  # a missing or changed file; gzip raises OSError, EOFError
            X, y, target_names = self.load_with_sklearn(str(error))
        return DataBundle(X, y, self.task, list(self.feature_names), target_names, self.summary())

    def load_with_sklearn(self, problem: str) -> Loaded:
        """The fallback when the files cannot be read: scikit-learn's own loader (a second to import)."""
        log.info("dataset %r: %s; loading it through scikit-learn instead", self.name, problem)
        try:
            datasets = importlib.import_module("sklearn.datasets")
        except ImportError as error:
            raise DataError(
                f"dataset {self.name!r} comes from scikit-learn's bundled files, which cannot be read ({problem}), "
                f"and scikit-learn cannot be imported to load it ({error}). help: pip install scikit-learn"
            ) from None
        raw = getattr(datasets, self.loader)()
        X = np.asarray(raw.data, dtype=np.float64)
        if self.task == "regression":
            return X, np.asarray(raw.target, dtype=np.float64), ["target"]
        return X, np.asarray(raw.target, dtype=np.int64), [str(name) for name in raw.target_names]


class _HeadedCsvDataset(_SklearnDataset):
    """A dataset in the CSV format of sklearn's `load_csv_data`.

    The header row is `n_samples,n_features,target_name_0,target_name_1,...`; each further row is one sample, its
    features, then its class index.
    """

    file: ClassVar[str] = ""

    def read(self, folder: Path) -> Loaded:
        path = folder / self.file
        with path.open(encoding="utf-8", newline="") as file:
            n_samples, n_features, *target_names = next(csv.reader(file), [])
            table = np.loadtxt(file, delimiter=",", ndmin=2)
        if int(n_features) != len(self.feature_names):
            raise ValueError(f"{path.name}: {n_features} features, expected {len(self.feature_names)}")
        expect_shape(path, table, int(n_samples), len(self.feature_names) + 1)
        return table[:, :-1], class_indices(path, table[:, -1], len(target_names)), target_names


class Digits(_SklearnDataset):
    """scikit-learn's 8x8 handwritten digits: 1797 samples, 64 features, 10 classes.

    `digits.csv.gz` holds one image a row: its 64 pixel intensities (0..16) row by row, then the digit.
    """

    name: ClassVar[str] = "digits"
    loader: ClassVar[str] = "load_digits"
    feature_names: ClassVar[tuple[str, ...]] = tuple(f"pixel_{row}_{col}" for row in range(8) for col in range(8))

    def read(self, folder: Path) -> Loaded:
        path = folder / "digits.csv.gz"
        table = read_table(path, delimiter=",")
        expect_shape(path, table, None, len(self.feature_names) + 1)
        return table[:, :-1], class_indices(path, table[:, -1], 10), [str(digit) for digit in range(10)]


class Iris(_HeadedCsvDataset):
    """scikit-learn's iris flowers: 150 samples, 4 features, 3 classes."""

    name: ClassVar[str] = "iris"
    loader: ClassVar[str] = "load_iris"
    file: ClassVar[str] = "iris.csv"
    feature_names: ClassVar[tuple[str, ...]] = (
        "sepal length (cm)",
        "sepal width (cm)",
        "petal length (cm)",
        "petal width (cm)",
    )


class Wine(_HeadedCsvDataset):
    """scikit-learn's wine recognition: 178 samples, 13 features, 3 classes."""

    name: ClassVar[str] = "wine"
    loader: ClassVar[str] = "load_wine"
    file: ClassVar[str] = "wine_data.csv"
    feature_names: ClassVar[tuple[str, ...]] = (
        "alcohol",
        "malic_acid",
        "ash",
        "alcalinity_of_ash",
        "magnesium",
        "total_phenols",
        "flavanoids",
        "nonflavanoid_phenols",
        "proanthocyanins",
        "color_intensity",
        "hue",
        "od280/od315_of_diluted_wines",
        "proline",
    )


class BreastCancer(_HeadedCsvDataset):
    """scikit-learn's breast cancer Wisconsin: 569 samples, 30 features, 2 classes."""

    name: ClassVar[str] = "breast_cancer"
    loader: ClassVar[str] = "load_breast_cancer"
    task: ClassVar[Task] = "binary"
    file: ClassVar[str] = "breast_cancer.csv"
    # Ten measurements of the cell nuclei, each as its mean, its standard error and its worst (largest) value.
    feature_names: ClassVar[tuple[str, ...]] = (
        "mean radius",
        "mean texture",
        "mean perimeter",
        "mean area",
        "mean smoothness",
        "mean compactness",
        "mean concavity",
        "mean concave points",
        "mean symmetry",
        "mean fractal dimension",
        "radius error",
        "texture error",
        "perimeter error",
        "area error",
        "smoothness error",
        "compactness error",
        "concavity error",
        "concave points error",
        "symmetry error",
        "fractal dimension error",
        "worst radius",
        "worst texture",
        "worst perimeter",
        "worst area",
        "worst smoothness",
        "worst compactness",
        "worst concavity",
        "worst concave points",
        "worst symmetry",
        "worst fractal dimension",
    )


class Diabetes(_SklearnDataset):
    """scikit-learn's diabetes progression: 442 samples, 10 features, a regression target.

    The features are scaled as scikit-learn's `load_diabetes()` scales them, each column x to
    (x - mean(x)) / std(x) / sqrt(n) (population std), so that it has mean 0 and sum of squares 1; the target,
    a measure of disease progression one year later, is not scaled.
    """

    name: ClassVar[str] = "diabetes"
    loader: ClassVar[str] = "load_diabetes"
    task: ClassVar[Task] = "regression"
    feature_names: ClassVar[tuple[str, ...]] = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")

    def read(self, folder: Path) -> Loaded:
        data_path, target_path = folder / "diabetes_data_raw.csv.gz", folder / "diabetes_target.csv.gz"
        raw, target = read_table(data_path), read_table(target_path)
        expect_shape(data_path, raw, None, len(self.feature_names))
        expect_shape(target_path, target, len(raw), 1)
        # sklearn.preprocessing.scale (subtract the column means, divide by the column stds, both taken from the
        # raw data; its nanmean / nanstd sum NaN-free data as mean / std do), then `/= n ** 0.5`: the same
        # operations in the same order give the same bits, which fusing the two divisions would not. scale's
        # re-centring branches only run when centring fails, which it does not on these columns.
        X = (raw - raw.mean(axis=0)) / raw.std(axis=0) / len(raw) ** 0.5
        return X, target[:, 0], ["target"]


class ArraysParams(Params):
    x: list[list[float]] = Field(min_length=1, description="The features, one row per sample, written in the file.")
    y: list[int | float | str] | list[list[int | float]] = Field(
        min_length=1, description="The targets, one per row of x: a number, a label, or a row of numbers."
    )
    task: Literal["auto", "regression", "binary", "multiclass"] = Field(
        "auto", description="auto: integer or text targets are classification, other numbers regression."
    )
    classes: list[str] | None = Field(
        None, description="Class names in the order of the codes 0..k-1 (text targets: the order of the labels)."
    )
    feature_names: list[str] | None = Field(None, description="Names of the features (default: x0, x1, ...).")


class Arrays(Dataset):
    """Samples written in the experiment file itself: `x` (one row per sample) and `y` (one target each).

    For the smallest examples, such as the lesson's network on two samples (`experiments/seed.toml`):
    `data = {name = "arrays", x = [[0, 1, 0], [1, 0, 1]], y = [[1], [0]]}`. With `task = "auto"`, integer or
    text targets are classes (text labels coded 0..k-1 in the order of `classes`, else sorted), other numbers
    regression targets.
    """

    name: ClassVar[str] = "arrays"
    Params: ClassVar[type[Params]] = ArraysParams
    params: ArraysParams

    def load(self, rng: np.random.Generator) -> DataBundle:
        p = self.params
        width = len(p.x[0])
        for i, row in enumerate(p.x):
            if len(row) != width or not width:
                raise DataError(f"data.x.{i}: {len(row)} values, but row 0 has {width}; every row needs the same")
        if len(p.y) != len(p.x):
            raise DataError(f"data.y: {len(p.y)} targets for {len(p.x)} rows of data.x; give one per row")
        X = np.asarray(p.x, dtype=np.float64)
        bad = np.argwhere(~np.isfinite(X))
        if len(bad):
            raise DataError(f"data.x.{bad[0][0]}: holds {X[tuple(bad[0])]}; values must be finite")
        names = p.feature_names or [f"x{i}" for i in range(width)]
        if len(names) != width:
            raise DataError(f"data.feature_names: {len(names)} names for {width} features")
        rows = [v if isinstance(v, list) else [v] for v in p.y]
        if any(len(r) != len(rows[0]) for r in rows):
            raise DataError("data.y: every target row needs the same number of values")
        text = any(isinstance(v, str) for r in rows for v in r)
        integer = all(isinstance(v, int) and not isinstance(v, bool) for r in rows for v in r)
        task = p.task if p.task != "auto" else ("regression" if not (text or integer) else "classification")
        if task == "regression":
            if text:
                raise DataError("data.y: task = 'regression' needs numbers, found text labels")
            y = np.asarray(rows, dtype=np.float64)
            if not np.isfinite(y).all():
                raise DataError(f"data.y.{int(np.argwhere(~np.isfinite(y))[0][0])}: targets must be finite")
            return DataBundle(X, y[:, 0] if y.shape[1] == 1 else y, "regression", names, [], "arrays in the file")
        if len(rows[0]) != 1:
            raise DataError("data.y: classification takes one label per row (a value, or a row of one value)")
        labels = [r[0] for r in rows]
        if text:
            order = p.classes or sorted({str(v) for v in labels})
            unknown = sorted({str(v) for v in labels} - set(order))
            if unknown:
                raise DataError(f"data.y: labels {unknown} are not in data.classes {order}")
            codes = np.asarray([order.index(str(v)) for v in labels], dtype=np.int64)
        else:
            if not all(float(v).is_integer() and v >= 0 for v in labels):
                raise DataError("data.y: class labels are the integers 0..k-1 (or text labels)")
            codes = np.asarray(labels, dtype=np.int64)
            k = len(p.classes) if p.classes else int(codes.max()) + 1
            if codes.max() >= k:
                raise DataError(f"data.y: label {int(codes.max())} but data.classes names {k} classes (0..{k - 1})")
            order = p.classes or [str(i) for i in range(k)]
        kind = task if task != "classification" else ("binary" if len(order) == 2 else "multiclass")
        if kind == "binary" and len(order) != 2:
            raise DataError(f"data.y: task = 'binary' needs 2 classes, found {len(order)}: {order}")
        return DataBundle(X, codes, kind, names, list(order), "arrays in the file")


@hookimpl
def register_datasets() -> list[type[Dataset]]:
    return [Xor, Arrays, HousePrices, Digits, Iris, Wine, BreastCancer, Diabetes]
