"""The floor: a hand-written numpy MLP training loop with no framework at all.

Same maths as backprop (mean-over-batch gradients, softmax + cross-entropy on logits, classic momentum
v = mu*v - lr*g; p += v, data reshuffled every epoch, last partial batch kept), written the fast way:
preallocated buffers, in-place updates. A framework cannot be faster than this, only close to it.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np


class FloorMLP:
    """Dense layers with relu (or tanh) hidden activations and a linear output, trained with momentum."""

    def __init__(
        self,
        sizes: list[int],
        hidden: str,
        lr: float,
        momentum: float,
        dtype: Any,
        rng: np.random.Generator,
    ) -> None:
        self.hidden = hidden
        self.lr, self.mu = lr, momentum
        self.W = [rng.normal(0, np.sqrt(2.0 / a), size=(a, b)).astype(dtype) for a, b in itertools.pairwise(sizes)]
        self.b = [np.zeros(b, dtype=dtype) for b in sizes[1:]]
        self.vW = [np.zeros_like(w) for w in self.W]
        self.vb = [np.zeros_like(b) for b in self.b]
        self.dW = [np.zeros_like(w) for w in self.W]
        self.db = [np.zeros_like(b) for b in self.b]
        self.dtype = dtype
        self._bufs: dict[int, Any] = {}

    def _buffers(self, n: int) -> Any:
        bufs = self._bufs.get(n)
        if bufs is None:
            acts = [np.empty((n, w.shape[1]), dtype=self.dtype) for w in self.W]
            grads = [np.empty((n, w.shape[0]), dtype=self.dtype) for w in self.W]
            bufs = (acts, grads, np.ones(n, dtype=self.dtype))
            self._bufs[n] = bufs
        return bufs

    def step(self, x: np.ndarray, onehot: np.ndarray) -> None:
        n = x.shape[0]
        acts, grads, ones = self._buffers(n)
        last = len(self.W) - 1
        inp = x
        for i, (W, b) in enumerate(zip(self.W, self.b, strict=True)):
            a = acts[i]
            np.matmul(inp, W, out=a)
            a += b
            if i < last:
                if self.hidden == "relu":
                    np.maximum(a, 0, out=a)
                else:
                    np.tanh(a, out=a)
            inp = a
        # softmax + cross-entropy gradient: (softmax(z) - t) / n
        out = acts[last]
        out -= out.max(axis=1, keepdims=True)
        np.exp(out, out=out)
        out /= out.sum(axis=1, keepdims=True)
        out -= onehot
        out *= 1.0 / n
        d = out
        for i in range(last, -1, -1):
            prev = acts[i - 1] if i > 0 else x
            np.matmul(prev.T, d, out=self.dW[i])
            np.matmul(ones, d, out=self.db[i])
            if i > 0:
                g = grads[i][:, : self.W[i].shape[0]]
                np.matmul(d, self.W[i].T, out=g)
                if self.hidden == "relu":
                    np.multiply(g, prev > 0, out=g)
                else:
                    g *= 1 - prev * prev
                d = g
        for p, v, g in zip(self.W + self.b, self.vW + self.vb, self.dW + self.db, strict=True):
            v *= self.mu
            v -= self.lr * g
            p += v

    def epoch(self, X: np.ndarray, T: np.ndarray, batch: int, rng: np.random.Generator) -> None:
        perm = rng.permutation(len(X))
        Xs, Ts = X[perm], T[perm]
        for s in range(0, len(X), batch):
            self.step(Xs[s : s + batch], Ts[s : s + batch])

    def loss(self, X: np.ndarray, T: np.ndarray) -> float:
        a = X
        for i, (W, b) in enumerate(zip(self.W, self.b, strict=True)):
            a = a @ W + b
            if i < len(self.W) - 1:
                a = np.maximum(a, 0) if self.hidden == "relu" else np.tanh(a)
        a = a - a.max(axis=1, keepdims=True)
        logp = a - np.log(np.exp(a).sum(axis=1, keepdims=True))
        return float(-(T * logp).sum(axis=1).mean())
