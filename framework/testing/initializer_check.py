"""The conformance check of initialisers: shapes, float64 finite values, and randomness from `rng` alone."""

from __future__ import annotations

import numpy as np

from framework.components import Initializer
from framework.testing.numeric import F64, assert_dtype, assert_same

SHAPES: tuple[tuple[tuple[int, ...], int, int], ...] = (
    ((7, 5), 7, 5),  # a tall dense kernel: 7 inputs, 5 units
    ((3, 8), 3, 8),  # a wide one
    ((5,), 7, 5),  # the bias of the first kernel
    ((1, 1), 1, 1),  # the smallest layer
)
"""The (shape, fan_in, fan_out) the check draws: 2-D kernels as a dense layer's, and a 1-D bias."""


def check_initializer(init: Initializer, seed: int = 0) -> None:
    """An initialiser returns finite float64 arrays of the asked shape, its randomness coming from `rng` alone.

    For every shape in `SHAPES` (kernels and a bias): the result is a new float64 array (never a buffer the
    initialiser keeps, which two layers would then share) of exactly that shape, all finite; the same seed
    gives the same values. An initialiser that declares `deterministic = True` (a class attribute: zeros,
    constant) must leave `rng` untouched, since a draw would shift every later layer's weights; any other
    must give different values for different seeds.
    """
    what = f"initializer {init.name!r}"
    deterministic = type(init).deterministic
    for shape, fan_in, fan_out in SHAPES:
        case = f"{what} for shape {shape} (fan_in {fan_in}, fan_out {fan_out})"
        rng = np.random.default_rng(seed)
        state = rng.bit_generator.state
        first = init(shape, fan_in, fan_out, rng)
        if not isinstance(first, np.ndarray):
            raise AssertionError(f"{case}: must return a numpy array, got {type(first).__name__}")
        if first.shape != shape:
            raise AssertionError(f"{case}: returned shape {first.shape}")
        assert_dtype(case, first, F64)
        if not np.all(np.isfinite(first)):
            raise AssertionError(f"{case}: returned values that are not finite")
        drew = rng.bit_generator.state != state
        if deterministic and drew:
            raise AssertionError(
                f"{case}: declares deterministic = True but drew from rng; a layer's later draws would shift"
            )
        second = init(shape, fan_in, fan_out, np.random.default_rng(seed))
        if second is first or np.shares_memory(first, second):
            raise AssertionError(f"{case}: returned the same array twice; return a new array on every call")
        assert_same(f"{case}: the same seed must give the same values", second, first)
        other = init(shape, fan_in, fan_out, np.random.default_rng(seed + 1))
        if deterministic:
            assert_same(f"{case}: deterministic = True, but another seed gave other values", other, first)
        elif first.size > 1 and np.array_equal(other, first):
            raise AssertionError(
                f"{case}: another seed gave the same values; draw them from `rng`, or declare deterministic = True "
                "if the initialiser uses no randomness"
            )
