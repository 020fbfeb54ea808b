"""Memory of mapped training (issue 21): int32 indices and no index for the whole file, with the same numbers.

The oracles are written out in numpy: the int64 permutation `rng.permutation(n)` that the trainer and the split
used before, and `np.setdiff1d` for the stratified split's training rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from framework import Experiment, fit
from framework.build import prepare_run
from framework.data import split_indices
from framework.mapped import MappedRows, index_dtype
from tests.framework.test_mapped import assert_same, config, write_npy


@pytest.mark.parametrize("n", [1, 2, 7, 256, 10_007])
def test_an_int32_arange_shuffled_is_the_int64_permutation_from_the_same_draws(n: int) -> None:
    oracle = np.random.default_rng(n)
    expected, after = oracle.permutation(n), oracle.random(3)
    rng = np.random.default_rng(n)
    perm = np.arange(n, dtype=np.int32)
    rng.shuffle(perm)  # what the trainer does for mapped rows
    assert perm.dtype == np.int32
    np.testing.assert_array_equal(perm, expected)
    np.testing.assert_array_equal(rng.random(3), after)  # the generator is left where permutation(n) leaves it


@pytest.mark.parametrize("fraction", [0.0, 0.2, 0.5])
@pytest.mark.parametrize("stratified", [False, True])
def test_split_indices_are_int32_and_the_rows_of_the_int64_split(fraction: float, stratified: bool) -> None:
    n = 1001
    labels = np.random.default_rng(4).integers(0, 3, size=n) if stratified else None
    train, val = split_indices(n, fraction, np.random.default_rng(8), labels)
    assert train.dtype == val.dtype == np.int32
    rng = np.random.default_rng(8)  # the split as written before: int64, setdiff1d for the stratified rest
    if fraction == 0:
        expected_train, expected_val = np.arange(n), np.arange(0)
    elif labels is None:
        perm = rng.permutation(n)
        n_val = max(1, round(n * fraction))
        expected_train, expected_val = np.sort(perm[n_val:]), np.sort(perm[:n_val])
    else:
        parts = []
        for cls in np.unique(labels):
            members = np.flatnonzero(labels == cls)
            members = members[rng.permutation(len(members))]
            parts.append(members[: round(len(members) * fraction)])
        expected_val = np.sort(np.concatenate(parts))
        expected_train = np.setdiff1d(np.arange(n), expected_val)
    np.testing.assert_array_equal(train, expected_train)
    np.testing.assert_array_equal(val, expected_val)


def test_index_dtype_is_int32_below_two_to_the_31_rows() -> None:
    assert index_dtype(2**31 - 1) == np.int32
    assert index_dtype(2**31) == np.intp


def test_mapped_rows_without_an_index_are_every_row_in_order(tmp_path: Path) -> None:
    data = np.random.default_rng(3).normal(size=(50, 4)).astype(np.float32)
    np.save(tmp_path / "m.npy", data)
    mapped = np.load(tmp_path / "m.npy", mmap_mode="r")
    rows = MappedRows(mapped, None, np.dtype(np.float64))
    assert len(rows) == 50 and rows.shape == (50, 4)
    np.testing.assert_array_equal(rows[5:9], data[5:9].astype(np.float64))
    np.testing.assert_array_equal(rows[-1], data[-1].astype(np.float64))
    same = MappedRows(mapped, None, np.dtype(np.float32))[0:3]
    same[0, 0] = 1.0  # a copy, not a view of the read-only map
    assert same.flags.writeable and mapped[0, 0] == data[0, 0]
    perm = np.random.default_rng(1).permutation(50).astype(np.int32)
    taken = rows.take(perm)
    assert taken.index is perm  # the permutation itself is the index: no new array
    np.testing.assert_array_equal(taken[:], data[perm].astype(np.float64))


@pytest.mark.parametrize("shuffle", [True, False])
def test_a_mapped_run_on_every_row_holds_no_index_and_trains_like_the_in_memory_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shuffle: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    write_npy(tmp_path / "d.npy")

    def every_row(in_memory: bool) -> Experiment:
        settings = config(tmp_path / "d.npy", in_memory, shuffle)
        settings["data"]["validation_split"] = 0
        return Experiment.from_dict(settings)

    run = prepare_run(every_row(False), track=False)
    train = run.trainer.train
    assert isinstance(train.X, MappedRows) and train.X.index is None
    # The targets stay in the file too: y is the map's last column, and the loss's targets are y itself.
    assert isinstance(run.trainer.dataset.y, np.memmap)  # type: ignore[attr-defined]
    assert np.shares_memory(train.y, run.trainer.dataset.y)  # type: ignore[attr-defined]
    assert np.shares_memory(train.targets, train.y) and train.targets_are_y()
    whole = np.load(tmp_path / "d.npy")
    np.testing.assert_array_equal(train.y, whole[:, -1])
    assert train.y.dtype == whole.dtype  # float32, as in the file: exact, and metrics compute in float64
    assert_same(fit(every_row(True)), fit(every_row(False)))


def test_the_data_fingerprint_hashes_the_whole_arrays_bytes_a_chunk_at_a_time(tmp_path: Path) -> None:
    import hashlib

    from framework.checkpoint import _row_chunks, data_fingerprint

    write_npy(tmp_path / "d.npy")
    matrix = np.load(tmp_path / "d.npy", mmap_mode="r")
    column = matrix[:, -1:]  # strided, as the targets of a mapped file are
    assert b"".join(chunk.tobytes() for chunk in _row_chunks(column, rows=7)) == np.array(column).tobytes()
    for in_memory in (True, False):
        trainer = prepare_run(Experiment.from_dict(config(tmp_path / "d.npy", in_memory, True)), track=False).trainer
        digest = hashlib.sha256()  # the fingerprint as first written: shape, then all the bytes at once
        for split in (trainer.train, trainer.val):
            for array in (np.asarray(split.X), split.targets):
                digest.update(str(array.shape).encode())
                digest.update(np.ascontiguousarray(array).tobytes())
        assert data_fingerprint(trainer) == digest.hexdigest()


def test_targets_are_y_only_when_they_are_the_same_numbers_in_the_same_memory() -> None:
    from framework.trainer import Split

    y32 = np.arange(5, dtype=np.float32)
    assert Split(np.zeros((5, 2)), y32.reshape(5, 1), y32).targets_are_y()
    assert not Split(np.zeros((5, 2)), y32.reshape(5, 1).copy(), y32).targets_are_y()  # equal, not shared
    assert not Split(np.zeros((5, 2)), y32.reshape(5, 1), y32.astype(np.float64)).targets_are_y()
    matrix = np.arange(15, dtype=np.float32).reshape(5, 3)
    assert Split(matrix[:, :2], matrix[:, 2:], matrix[:, 2]).targets_are_y()  # a strided column, both ways
    assert not Split(matrix[:, :2], matrix[:, 1:2], matrix[:, 2]).targets_are_y()
    assert not Split(matrix[:, :1], matrix[:, 1:], matrix[:, 1]).targets_are_y()  # two columns of targets
