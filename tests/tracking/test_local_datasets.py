"""The run's dataset input written directly (plugins/tracking/local/datasets.py) against MLflow's own writing.

The oracles: pandas' `hash_array` and MLflow's `from_numpy(...).digest` for the digest, `NumpyDataset.to_dict()`
for the JSON texts, and, for the rows, twin stores (tests/tracking/twins.py) on which the same inputs are
logged once through `client.log_inputs` and once by `log_numpy_dataset`.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow.data
import numpy as np
import pandas as pd
import pytest
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.entities import DatasetInput, InputTag

from plugins.tracking.local.datasets import (
    CONTEXT_TAG,
    MAX_ELEMENTS,
    dataset_texts,
    hash_array,
    log_numpy_dataset,
    numpy_digest,
)
from tests.helpers import ROOT
from tests.tracking.twins import Twins, make_twins

TABLES = ("datasets", "inputs", "input_tags")
SOURCE = {"backprop.dataset": "digits", "backprop.dataset_params": json.dumps({"validation_split": 0.2})}


def mlflow_dataset(features: np.ndarray, targets: np.ndarray, name: str = "data", tags: Any = None) -> Any:
    """`mlflow.data.from_numpy` as `plugins.tracking.artifacts.log_dataset` calls it."""
    source = CodeDatasetSource(SOURCE if tags is None else tags)
    return mlflow.data.from_numpy(features, targets=targets, source=source, name=name)


def log_through_mlflow(
    client: Any, run_id: str, name: str, features: np.ndarray, targets: np.ndarray, tags: Any, context: str
) -> None:
    """What `log_dataset` does: the NumpyDataset's entity as the run's input, with the context tag."""
    entity = mlflow_dataset(features, targets, name, tags)._to_mlflow_entity()
    client.log_inputs(run_id, datasets=[DatasetInput(entity, tags=[InputTag(CONTEXT_TAG, context)])])


def rng_array(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def digits_like() -> tuple[np.ndarray, np.ndarray]:
    """1797 x 64 pixel intensities 0..16 (float64) and their int64 classes: digits' shapes and dtypes."""
    rng = np.random.default_rng(1)
    return rng.integers(0, 17, size=(1797, 64)).astype(np.float64), rng.integers(0, 10, size=1797)


@pytest.fixture
def twins(tmp_path: Path) -> Iterator[Twins]:
    pair = make_twins(tmp_path)
    yield pair
    pair.close()


def two_runs(twins: Twins, name: str) -> tuple[str, str]:
    """A run of the same name in each twin: MLflow's client creates one, `LocalStore.create_run` the other."""
    mlflow_run = twins.client.create_run(twins.experiment_id, run_name=name).info.run_id
    local_run, _ = twins.local.create_run(twins.local_experiment(), name, {})
    return mlflow_run, local_run


# -- the digest ----------------------------------------------------------------------------------------------


SPECIAL = [0.0, -0.0, 1.5, -2.25, math.inf, -math.inf, math.nan, -math.nan, 1e-300, 3.0e38]


@pytest.mark.parametrize(
    "values",
    [
        np.array(SPECIAL, dtype=np.float64),
        np.array(SPECIAL, dtype=np.float32),  # 1e-300 -> 0.0 and 3e38 stay finite in float32
        np.array([0.0, -0.0, 1.0, math.nan, 65504.0], dtype=np.float16),
        # NaNs with other payloads: pandas hashes every NaN as np.nan
        np.array([0x7FF8000000000001, 0xFFF0000000000123, 0x8000000000000000], dtype=np.uint64).view(np.float64),
        np.array([-128, -1, 0, 1, 127], dtype=np.int8),
        np.array([-(2**63), -1, 0, 2**63 - 1], dtype=np.int64),
        np.array([0, 2**64 - 1], dtype=np.uint64),
        np.array([True, False, True]),
        np.array([1.0, -0.0, math.nan], dtype=">f8"),  # another byte order
    ],
    ids=["float64", "float32", "float16", "nan-payloads", "int8", "int64", "uint64", "bool", "big-endian"],
)
def test_hash_array_is_pandas_hash_array(values: np.ndarray) -> None:
    expected = pd.util.hash_array(values)
    np.testing.assert_array_equal(hash_array(values), expected)
    assert hash_array(values).dtype == np.uint64


def splitmix64(bits: int) -> int:
    """The finaliser written out in Python integers, mod 2**64."""
    mask = 2**64 - 1
    bits ^= bits >> 30
    bits = (bits * 0xBF58476D1CE4E5B9) & mask
    bits ^= bits >> 27
    bits = (bits * 0x94D049BB133111EB) & mask
    return bits ^ (bits >> 31)


def test_hash_of_a_value_is_the_splitmix64_finaliser_of_its_bits() -> None:
    (one_bits,) = struct.unpack("<Q", struct.pack("<d", 1.0))
    (half_bits,) = struct.unpack("<I", struct.pack("<f", 0.5))  # float32: 32 bits, zero-extended
    assert int(hash_array(np.array([1.0]))[0]) == splitmix64(one_bits)
    assert int(hash_array(np.array([0.5], dtype=np.float32))[0]) == splitmix64(half_bits)
    assert int(hash_array(np.array([-0.0]))[0]) == splitmix64(0)
    assert int(hash_array(np.array([-1], dtype=np.int16))[0]) == splitmix64(0xFFFF)


@pytest.mark.parametrize(
    ("features", "targets"),
    [
        digits_like(),  # 115008 elements: only the first 10000 are hashed
        (rng_array((150, 4), "float32"), np.arange(150) % 3),
        (rng_array((20000, 3), "float32", 2), rng_array((20000, 1), "float32", 3)),  # both over the limit
        (rng_array((50,), "float64"), rng_array((50,), "float64", 4)),  # 1-D, regression targets
        (rng_array((4, 2), "float64"), np.eye(4, 3)),  # one-hot targets
        (rng_array((10, 2, 3), "float32"), np.array([True, False] * 5)),  # 3-D features, boolean targets
        (np.array([[0.0, -0.0], [math.nan, 1.0]]), np.array([1, 0], dtype=np.int32)),
        (rng_array((300, 40), "float64").T, np.arange(40, dtype=np.uint8)),  # not contiguous
        (rng_array((12000, 2), "float16")[::3], np.zeros(4000, dtype=np.int64)),  # a strided view
        (np.zeros((0, 5)), np.zeros(0, dtype=np.int64)),  # no rows
    ],
    ids=["digits", "iris", "large", "1-D", "one-hot", "3-D", "signed-zero-nan", "transposed", "strided", "empty"],
)
def test_digest_is_mlflows(features: np.ndarray, targets: np.ndarray) -> None:
    assert numpy_digest(features, targets) == mlflow_dataset(features, targets).digest


def test_digest_reads_the_first_elements_and_the_shape() -> None:
    features = rng_array((MAX_ELEMENTS // 4 + 100, 4), "float64")
    targets = np.arange(len(features))
    digest = numpy_digest(features, targets)
    late, early = features.copy(), features.copy()
    late.reshape(-1)[MAX_ELEMENTS] += 1.0  # the first element past the limit: not hashed
    early.reshape(-1)[MAX_ELEMENTS - 1] += 1.0
    assert numpy_digest(late, targets) == digest == mlflow_dataset(late, targets).digest
    assert numpy_digest(early, targets) != digest
    assert numpy_digest(features.reshape(-1, 2), targets) != digest  # same elements, another shape
    shifted = targets.copy()
    shifted[-1] += 1  # the targets hash on their own: a change in their last element counts
    assert numpy_digest(features, shifted) != digest


# -- the JSON texts ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("features", "targets"),
    [
        digits_like(),
        (rng_array((7,), "float32"), np.eye(7, 2, dtype=np.float32)),
        (rng_array((3, 2, 2), "float16"), np.array([True, False, True])),
        (rng_array((5, 2), "float64").astype(">f8"), np.arange(5, dtype=np.uint16)),
    ],
    ids=["digits", "1-D-one-hot", "3-D-bool", "big-endian"],
)
def test_texts_are_mlflows(features: np.ndarray, targets: np.ndarray) -> None:
    tags = {"backprop.dataset": "x", "z": "last", "a": "é, not ASCII"}  # key order and escaping kept
    expected = mlflow_dataset(features, targets, tags=tags).to_dict()
    source, schema, profile = dataset_texts(features, targets, tags)
    assert (source, schema, profile) == (expected["source"], expected["schema"], expected["profile"])


def test_schema_and_profile_of_digits_written_out() -> None:
    features, targets = digits_like()
    _, schema, profile = dataset_texts(features, targets, {})
    tensors = json.loads(schema)["mlflow_tensorspec"]
    assert json.loads(tensors["features"]) == [
        {"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 64]}}
    ]
    assert json.loads(tensors["targets"]) == [{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]
    assert json.loads(profile) == {
        "features_shape": [1797, 64],
        "features_size": 1797 * 64,
        "features_nbytes": 1797 * 64 * 8,
        "targets_shape": [1797],
        "targets_size": 1797,
        "targets_nbytes": 1797 * 8,
    }


# -- the rows, on twin stores --------------------------------------------------------------------------------


def test_the_rows_are_mlflows_and_a_second_run_reuses_the_dataset(twins: Twins) -> None:
    features, targets = digits_like()
    other = rng_array((30, 5), "float32"), np.arange(30) % 2
    first, second = two_runs(twins, "first"), two_runs(twins, "second")
    steps: list[tuple[int, str, tuple[np.ndarray, np.ndarray], dict[str, str], str]] = [
        (0, "digits", (features, targets), SOURCE, "training"),
        (0, "digits", (features, targets), SOURCE, "training"),  # again: nothing new
        # the same data from other params: MLflow reuses the first run's row, with its source
        (1, "digits", (features, targets), {**SOURCE, "backprop.dataset_params": "{}"}, "training"),
        (1, "other", other, SOURCE, "validation"),
    ]
    for run, name, (x, y), tags, context in steps:
        mlflow_run, local_run = (first, second)[run]
        log_through_mlflow(twins.client, mlflow_run, name, x, y, tags, context)
        log_numpy_dataset(twins.local, local_run, name=name, features=x, targets=y, source_tags=tags, context=context)
    through_mlflow, direct = twins.dumps(TABLES)
    assert direct == through_mlflow
    # What the comparison saw, so that an empty table cannot pass it.
    datasets, inputs, tags = direct["datasets"], direct["inputs"], direct["input_tags"]
    assert [(d["name"], json.loads(d["dataset_source"])["tags"]) for d in datasets] == [
        ("digits", SOURCE),
        ("other", SOURCE),
    ]
    assert [(i["source_id"], i["destination_id"], i["step"]) for i in inputs] == [
        (datasets[0]["dataset_uuid"], inputs[0]["destination_id"], 0),
        (datasets[0]["dataset_uuid"], inputs[1]["destination_id"], 0),
        (datasets[1]["dataset_uuid"], inputs[1]["destination_id"], 0),
    ]
    assert inputs[0]["destination_id"] != inputs[1]["destination_id"]
    assert [(t["input_uuid"], t["name"], t["value"]) for t in tags] == [
        (inputs[0]["input_uuid"], CONTEXT_TAG, "training"),
        (inputs[1]["input_uuid"], CONTEXT_TAG, "training"),
        (inputs[2]["input_uuid"], CONTEXT_TAG, "validation"),
    ]


def test_mlflow_reads_the_direct_input_back(twins: Twins) -> None:
    features, targets = digits_like()
    mlflow_run, local_run = two_runs(twins, "read back")
    log_through_mlflow(twins.client, mlflow_run, "digits", features, targets, SOURCE, "training")
    log_numpy_dataset(twins.local, local_run, name="digits", features=features, targets=targets, source_tags=SOURCE)
    (read,) = twins.local_client().get_run(local_run).inputs.dataset_inputs
    (expected,) = twins.client.get_run(mlflow_run).inputs.dataset_inputs
    entity = mlflow_dataset(features, targets, "digits")._to_mlflow_entity()
    assert read.dataset == expected.dataset == entity  # name, digest, source type, source, schema, profile
    assert [(t.key, t.value) for t in read.tags] == [(t.key, t.value) for t in expected.tags]
    assert [(t.key, t.value) for t in read.tags] == [(CONTEXT_TAG, "training")]


# -- refusals ------------------------------------------------------------------------------------------------


def test_what_mlflow_refuses_is_refused_and_nothing_written(twins: Twins) -> None:
    _, run_id = two_runs(twins, "refused")
    features, targets = digits_like()

    def log(**changes: Any) -> None:
        arguments: dict[str, Any] = {"name": "digits", "features": features, "targets": targets, "source_tags": {}}
        log_numpy_dataset(twins.local, changes.pop("run_id", run_id), **{**arguments, **changes})

    with pytest.raises(KeyError):
        log(run_id="0" * 32)
    with pytest.raises(ValueError, match="name is 501 characters long, over MLflow's 500"):
        log(name="n" * 501)
    with pytest.raises(ValueError, match="input tag value is 501 characters long, over MLflow's 500"):
        log(context="c" * 501)
    with pytest.raises(ValueError, match="targets must be an array with rows"):
        log(targets=np.float64(1.0))
    with pytest.raises(TypeError, match="cannot hash a complex128 array"):
        log(features=features.astype(np.complex128))
    twins.local_client().delete_run(run_id)
    with pytest.raises(ValueError, match="must be in the 'active' state; it is 'deleted'"):
        log()
    _, direct = twins.dumps(TABLES)
    assert direct == {table: [] for table in TABLES}


def test_the_module_imports_neither_mlflow_nor_pandas() -> None:
    code = (
        "import sys, plugins.tracking.local.datasets; "
        "print(sorted(m for m in ('mlflow', 'pandas', 'sqlalchemy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
