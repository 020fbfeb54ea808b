"""Built-in datasets: the classic XOR example, a synthetic house-prices regression, scikit-learn's bundled sets.

Nothing is downloaded: synthetic data comes from the experiment's seeded generator, and the scikit-learn
sets ship inside the scikit-learn package (imported only when one of them is used).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from framework import DataBundle, Dataset, Params, hookimpl


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


class _SklearnDataset(Dataset):
    """Base of the scikit-learn bundled datasets."""

    loader: ClassVar[str] = ""
    task: ClassVar[Any] = "multiclass"

    def load(self, rng: np.random.Generator) -> DataBundle:
        from sklearn import datasets  # imported only when used: scikit-learn takes ~0.5 s to import

        raw = getattr(datasets, self.loader)()
        X = np.asarray(raw.data, dtype=float)
        y = np.asarray(raw.target)
        names = [str(n) for n in getattr(raw, "feature_names", [])] or [f"x{i}" for i in range(X.shape[1])]
        if self.task == "regression":
            return DataBundle(X, y.astype(float), "regression", names, ["target"], self.summary())
        target_names = [str(t) for t in getattr(raw, "target_names", np.unique(y))]
        return DataBundle(X, y.astype(np.int64), self.task, names, target_names, self.summary())


class Digits(_SklearnDataset):
    """scikit-learn's 8x8 handwritten digits: 1797 samples, 64 features, 10 classes."""

    name: ClassVar[str] = "digits"
    loader: ClassVar[str] = "load_digits"


class Iris(_SklearnDataset):
    """scikit-learn's iris flowers: 150 samples, 4 features, 3 classes."""

    name: ClassVar[str] = "iris"
    loader: ClassVar[str] = "load_iris"


class Wine(_SklearnDataset):
    """scikit-learn's wine recognition: 178 samples, 13 features, 3 classes."""

    name: ClassVar[str] = "wine"
    loader: ClassVar[str] = "load_wine"


class BreastCancer(_SklearnDataset):
    """scikit-learn's breast cancer Wisconsin: 569 samples, 30 features, 2 classes."""

    name: ClassVar[str] = "breast_cancer"
    loader: ClassVar[str] = "load_breast_cancer"
    task: ClassVar[Any] = "binary"


class Diabetes(_SklearnDataset):
    """scikit-learn's diabetes progression: 442 samples, 10 features, a regression target."""

    name: ClassVar[str] = "diabetes"
    loader: ClassVar[str] = "load_diabetes"
    task: ClassVar[Any] = "regression"


@hookimpl
def register_datasets() -> list[type[Dataset]]:
    return [Xor, HousePrices, Digits, Iris, Wine, BreastCancer, Diabetes]
