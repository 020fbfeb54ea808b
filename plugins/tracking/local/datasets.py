"""A run's dataset input, written as MLflow 3.17 writes `mlflow.data.from_numpy(...)` through `client.log_inputs`.

`plugins.tracking.artifacts.log_dataset` describes the training data with `mlflow.data.from_numpy(X,
targets=y, source=CodeDatasetSource(tags), name=name)` and logs it as the run's input with the tag
`mlflow.data.context`. `log_numpy_dataset` leaves the same rows in `datasets`, `inputs` and `input_tags`
without importing MLflow (or pandas, whose hash MLflow's digest uses): the same digest, bit for bit, the same
JSON texts, and the same de-duplication. `tests/tracking/test_local_datasets.py` checks it against MLflow.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping

import numpy as np

from plugins.tracking.local.store import ACTIVE, LocalStore

MAX_ELEMENTS = 10000
"""`mlflow.data.digest_utils.MAX_ROWS`: despite its name, the digest hashes the first 10000 *elements* of each
flattened array (not rows), plus the full shape."""
SOURCE_TYPE = "code"  # CodeDatasetSource._get_source_type()
CONTEXT_TAG = "mlflow.data.context"

# mlflow.utils.validation: the lengths MLflow refuses (as ValueError here, before anything is written).
MAX_NAME = 500
MAX_SOURCE = 65535
MAX_SCHEMA = 1048575
MAX_PROFILE = 16777215
MAX_TAG_KEY = 255
MAX_TAG_VALUE = 500


def hash_array(values: np.ndarray) -> np.ndarray:
    """`pandas.util.hash_array(values)` of a 1-D boolean, integer or float array (pandas 3.1): one uint64 each.

    Each value's bits, zero-extended to 64 (a float's bits, with every NaN made the one NaN `np.nan` is and
    -0.0 made 0.0, so that equal values hash equal), mixed by the splitmix64 finaliser
    `h ^= h >> 30; h *= 0xBF58476D1CE4E5B9; h ^= h >> 27; h *= 0x94D049BB133111EB; h ^= h >> 31` (mod 2**64).
    """
    dtype = values.dtype
    if dtype == np.bool_:
        bits = values.astype(np.uint64)
    elif dtype.kind in "iuf" and dtype.itemsize <= 8:
        unsigned = np.dtype(f"u{dtype.itemsize}")
        bits = values.view(unsigned).astype(np.uint64)  # a copy: changed in place below
        if dtype.kind == "f":
            bits[np.isnan(values)] = np.array(np.nan, dtype=dtype).view(unsigned)
            bits[values == 0] = 0  # -0.0 as +0.0 (whose bits are already 0)
    else:
        # pandas hashes other kinds (objects, strings, complex, float128) by other routes, not replicated here.
        raise TypeError(f"cannot hash a {dtype} array as MLflow's digest does; help: log it through MLflow")
    # uint64 arithmetic wraps silently: the multiplications are mod 2**64 as the finaliser wants.
    bits ^= bits >> np.uint64(30)
    bits *= np.uint64(0xBF58476D1CE4E5B9)
    bits ^= bits >> np.uint64(27)
    bits *= np.uint64(0x94D049BB133111EB)
    bits ^= bits >> np.uint64(31)
    return bits


def numpy_digest(features: np.ndarray, targets: np.ndarray) -> str:
    """`mlflow.data.digest_utils.compute_numpy_digest(features, targets)`: 8 hex digits of an MD5 over, for
    each array in turn, `hash_array` of its first `MAX_ELEMENTS` elements (row-major) then each of its
    dimensions as a native int64."""
    md5 = hashlib.md5(usedforsecurity=False)
    for array in (features, targets):
        md5.update(hash_array(np.ravel(array)[:MAX_ELEMENTS]).tobytes())
        for dimension in array.shape:
            md5.update(np.int64(dimension).tobytes())
    return md5.hexdigest()[:8]


def tensor_schema(array: np.ndarray) -> str:
    """`mlflow.types.utils._infer_schema(array).to_json()`: one unnamed tensor, any number of rows."""
    spec = {"dtype": array.dtype.name, "shape": [-1, *array.shape[1:]]}
    return json.dumps([{"type": "tensor", "tensor-spec": spec}])


def dataset_texts(features: np.ndarray, targets: np.ndarray, source_tags: Mapping[str, str]) -> tuple[str, str, str]:
    """The `dataset_source`, `dataset_schema` and `dataset_profile` texts of `NumpyDataset.to_dict()`.

    The schema nests each tensor schema as a JSON string inside the JSON object, as MLflow does.
    """
    source = json.dumps({"tags": dict(source_tags)})
    schema = json.dumps({"mlflow_tensorspec": {"features": tensor_schema(features), "targets": tensor_schema(targets)}})
    profile = json.dumps(
        {
            f"{role}_{what}": getattr(array, what)
            for role, array in (("features", features), ("targets", targets))
            for what in ("shape", "size", "nbytes")
        }
    )
    return source, schema, profile


def log_numpy_dataset(
    store: LocalStore,
    run_id: str,
    *,
    name: str,
    features: np.ndarray,
    targets: np.ndarray,
    source_tags: dict[str, str],
    context: str = "training",
) -> None:
    """`client.log_inputs(run_id, [DatasetInput(from_numpy(features, targets=targets,
    source=CodeDatasetSource(source_tags), name=name)._to_mlflow_entity(), [InputTag(CONTEXT_TAG, context)])])`.

    As MLflow: the dataset is one row per experiment, name and digest (a run of the same data reuses the row
    of the first, with its source, even if this source differs); the input is a `DATASET` -> `RUN` edge with
    the context tag, written once per dataset and run (logging it again changes nothing).

    Raises:
        KeyError: there is no run `run_id`.
        ValueError: the run is not active, an array has no dimensions, or a text is longer than MLflow allows.
        TypeError: an array's dtype is not boolean, integer or float (of up to 8 bytes).
    """
    features, targets = np.asarray(features), np.asarray(targets)
    for role, array in (("features", features), ("targets", targets)):
        if array.ndim == 0:  # MLflow cannot infer a tensor schema without a row axis
            raise ValueError(f"the dataset's {role} must be an array with rows, not a scalar")
    experiment_id, _, _, stage = store.run_row(run_id)
    if stage != ACTIVE:
        raise ValueError(f"the run {run_id} must be in the 'active' state; it is {stage!r}")
    digest = numpy_digest(features, targets)
    source, schema, profile = dataset_texts(features, targets, source_tags)
    for what, text, limit in (
        ("name", name, MAX_NAME),
        ("source", source, MAX_SOURCE),
        ("schema", schema, MAX_SCHEMA),
        ("profile", profile, MAX_PROFILE),
        ("input tag key", CONTEXT_TAG, MAX_TAG_KEY),
        ("input tag value", context, MAX_TAG_VALUE),
    ):
        if len(text) > limit:
            raise ValueError(f"the dataset's {what} is {len(text)} characters long, over MLflow's {limit}")
    with store.transaction() as db:
        # The primary keys (experiment, name, digest) and (source, destination) make these inserts no-ops when
        # the row exists: MLflow's reuse of the dataset and of the input, without its read-then-write race.
        db.execute(
            "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, dataset_source_type, dataset_source, "
            "dataset_schema, dataset_profile) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (uuid.uuid4().hex, int(experiment_id), name, digest, SOURCE_TYPE, source, schema, profile),
        )
        (dataset_uuid,) = db.execute(
            "SELECT dataset_uuid FROM datasets WHERE experiment_id = ? AND name = ? AND digest = ?",
            (int(experiment_id), name, digest),
        ).fetchone()
        input_uuid = uuid.uuid4().hex
        # `step` is left to its column default (0), as MLflow leaves it.
        added = db.execute(
            "INSERT INTO inputs (input_uuid, source_type, source_id, destination_type, destination_id) "
            "VALUES (?, 'DATASET', ?, 'RUN', ?) ON CONFLICT DO NOTHING",
            (input_uuid, dataset_uuid, run_id),
        ).rowcount
        if added:
            db.execute(
                "INSERT INTO input_tags (input_uuid, name, value) VALUES (?, ?, ?)", (input_uuid, CONTEXT_TAG, context)
            )
