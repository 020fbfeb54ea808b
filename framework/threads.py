"""How many BLAS threads a run trains with: one for small models, the library's default otherwise.

OpenBLAS runs a matrix product on one thread when M·N·K is below 2^18 (`interface/gemm.c`:
SMP_THRESHOLD_MIN 65536 × GEMM_MULTITHREAD_THRESHOLD 4). A small model's batch products (digits' 32 × 64
× 64) are all below it, so its training steps run on one thread whatever the pool's size. The pool still
wakes for the larger evaluation passes, and its worker then spins for a while waiting for more work: on a
2-core machine it keeps the other core busy doing nothing, taking it from whatever else runs, such as
the tracking writer process (plugins/tracking/sink.py) or a parallel sweep's other trial. Measured on
digits with per-epoch metrics (benchmarks/bench_tracking.py, medians): tracked against untracked 1.81x with
OpenBLAS's two threads, 0.99x on one; untracked training alone was ~5 % faster on one thread.

So a run whose every batch product is below the threshold trains on one BLAS thread (threadpoolctl, for
the duration of `fit`). A model with larger products keeps the default: two threads make a 64 × 256 × 256
step 1.6x faster. An explicit OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS is respected.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from framework.model import Model

SINGLE_THREAD_MNK = 1 << 18
"""Below this M·N·K, OpenBLAS computes a matrix product on one thread anyway."""

THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def is_small(model: Model, batch_size: int) -> bool:
    """Whether every batch product of training is below SINGLE_THREAD_MNK (a 2-D parameter is a weight
    matrix: the forward product and both backward ones have M·N·K = batch size × its size)."""
    weights = [p for p in model.parameters() if p.ndim == 2]
    return bool(weights) and all(batch_size * w.size < SINGLE_THREAD_MNK for w in weights)


def training_threads(model: Model, batch_size: int) -> contextlib.AbstractContextManager[Any]:
    """One BLAS thread for the duration of the context when the model is small (see the module)."""
    if any(os.environ.get(name) for name in THREAD_ENV) or not is_small(model, batch_size):
        return contextlib.nullcontext()
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # a dependency of scikit-learn, so normally present
            return contextlib.nullcontext()
        _controller = ThreadpoolController()  # finds the loaded BLAS libraries (numpy's): once per process
    limit: contextlib.AbstractContextManager[Any] = _controller.limit(limits=1, user_api="blas")
    return limit


_controller: Any = None
