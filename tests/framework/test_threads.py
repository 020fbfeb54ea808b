"""Small models train on one BLAS thread (framework/threads.py); larger ones and explicit settings keep theirs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from framework import Experiment, fit, hookimpl
from framework.threads import SINGLE_THREAD_MNK, THREAD_ENV, is_small
from tests.helpers import digits_config


def blas_threads() -> int:
    return max(info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas")


class ThreadsSeen:
    def __init__(self) -> None:
        self.seen: list[int] = []

    @hookimpl
    def after_epoch(self) -> None:
        self.seen.append(blas_threads())


def experiment(units: int, batch_size: int) -> Experiment:
    config = digits_config(name="threads")
    config["model"] = {"layers": [{"units": units, "activation": "relu"}, {"units": 10}]}
    config["training"] = {"epochs": 1, "batch_size": batch_size}
    return Experiment.from_dict(config)


@pytest.fixture(autouse=True)
def no_thread_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in THREAD_ENV:
        monkeypatch.delenv(name, raising=False)


def test_the_threshold_is_openblas_own() -> None:
    # interface/gemm.c: one thread below SMP_THRESHOLD_MIN (65536) * GEMM_MULTITHREAD_THRESHOLD (4).
    assert SINGLE_THREAD_MNK == 65536 * 4


@pytest.mark.parametrize(
    ("units", "batch_size", "small"),
    [(64, 32, True), (64, 64, False), (256, 64, False), (16, 128, True)],  # digits: 64 features in
)
def test_small_is_every_batch_product_below_the_threshold(units: int, batch_size: int, small: bool) -> None:
    result = fit(experiment(units, 2))  # any model of that shape; the batch size is an argument below
    assert is_small(result.model, batch_size) is small
    largest = max(batch_size * 64 * units, batch_size * units * 10)  # M·N·K of each layer's products
    assert (largest < SINGLE_THREAD_MNK) is small


def test_a_small_model_trains_on_one_thread_and_gives_the_pool_back() -> None:
    before = blas_threads()
    seen = ThreadsSeen()
    fit(experiment(64, 32), callbacks=[seen])
    assert seen.seen == [1]
    assert blas_threads() == before


def test_a_larger_model_keeps_the_pool() -> None:
    seen = ThreadsSeen()
    fit(experiment(256, 64), callbacks=[seen])
    assert seen.seen == [blas_threads()]


def test_an_explicit_thread_setting_is_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    seen = ThreadsSeen()
    fit(experiment(64, 32), callbacks=[seen])
    assert seen.seen == [blas_threads()]


def test_one_thread_gives_the_same_numbers() -> None:
    """The products below the threshold ran on one thread before too: the weights are bit-identical."""
    small = fit(experiment(64, 32))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENBLAS_NUM_THREADS", "64")  # "explicit": the policy steps aside
        default: Any = fit(experiment(64, 32))
    for a, b in zip(small.model.get_weights(), default.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
