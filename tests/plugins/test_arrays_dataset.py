"""The `arrays` dataset: samples written in the experiment file."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from framework.errors import DataError
from plugins.datasets import Arrays


def load(**params: Any) -> Any:
    return Arrays(**params).load(np.random.default_rng(0))


def test_integer_targets_are_classes_and_a_column_of_them_is_flattened() -> None:
    bundle = load(x=[[0, 1, 0], [1, 0, 1]], y=[[1], [0]])
    assert bundle.task == "binary" and bundle.y.tolist() == [1, 0] and bundle.y.dtype == np.int64
    assert bundle.target_names == ["0", "1"] and bundle.feature_names == ["x0", "x1", "x2"]
    np.testing.assert_array_equal(bundle.X, [[0, 1, 0], [1, 0, 1]])


def test_floats_are_regression_and_text_labels_follow_classes() -> None:
    bundle = load(x=[[1.0], [2.0], [3.0]], y=[[0.5, 1], [1.5, 2], [2.5, 3]])
    assert bundle.task == "regression" and bundle.y.shape == (3, 2)
    bundle = load(x=[[1], [2], [3]], y=["cat", "dog", "bird"], classes=["dog", "cat", "bird"])
    assert bundle.task == "multiclass" and bundle.y.tolist() == [1, 0, 2] and bundle.target_names[0] == "dog"
    assert load(x=[[1], [2]], y=[1, 0], task="regression").y.dtype == np.float64


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"x": [[0, 1], [1]], "y": [0, 1]}, "data.x.1: 1 values, but row 0 has 2"),
        ({"x": [[0], [1]], "y": [0]}, "data.y: 1 targets for 2 rows of data.x"),
        ({"x": [[0], [float("nan")]], "y": [0, 1]}, "data.x.1: holds nan"),
        ({"x": [[0], [1]], "y": ["a", "b"], "classes": ["a"]}, "labels ['b'] are not in data.classes"),
        ({"x": [[0], [1]], "y": [0, 2], "classes": ["a", "b"]}, "label 2 but data.classes names 2"),
        ({"x": [[0], [1], [2]], "y": [0, 1, 2], "task": "binary"}, "task = 'binary' needs 2 classes"),
    ],
)
def test_bad_arrays_are_refused_naming_the_key(params: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match=None) as info:
        load(**params)
    assert message in str(info.value)
