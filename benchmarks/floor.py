"""The floor: a hand-written numpy MLP training loop with no framework at all.

Same maths as backprop (mean-over-batch gradients, softmax + cross-entropy on logits or a mean squared error
over all n·k outputs, classic momentum v = mu*v - lr*g; p += v, data reshuffled every epoch, last partial
batch kept), written the fast way: every parameter and gradient in one flat buffer (so the momentum update is
three numpy calls), activation buffers preallocated per batch size, in-place updates. A framework cannot be
faster than this, only close to it.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

ACTIVATIONS = ("identity", "relu", "tanh", "sigmoid")
LOSSES = ("cross_entropy", "mse")


class FloorMLP:
    """Dense layers with relu/tanh hidden activations and an identity or sigmoid output, trained with momentum.

    `hidden` is one activation for every hidden layer, or a list with one per layer (the output included).
    `weights`, if given, are the initial [W1, b1, W2, b2, ...] (copied), so that every system of a benchmark
    starts from the same point; otherwise W is He-normal and b zero.
    """

    def __init__(
        self,
        sizes: list[int],
        hidden: str | list[str],
        lr: float,
        momentum: float,
        dtype: Any,
        rng: np.random.Generator,
        *,
        output: str = "identity",
        loss: str = "cross_entropy",
        weights: list[np.ndarray] | None = None,
    ) -> None:
        n_layers = len(sizes) - 1
        acts = [hidden] * (n_layers - 1) + [output] if isinstance(hidden, str) else list(hidden)
        if len(acts) != n_layers or any(a not in ACTIVATIONS for a in acts) or loss not in LOSSES:
            raise ValueError(f"bad floor network: activations {acts}, loss {loss!r}")
        if loss == "cross_entropy" and acts[-1] != "identity":
            raise ValueError("cross_entropy takes logits: the output activation must be identity")
        self.acts, self.loss_name = acts, loss
        self.lr, self.mu = lr, momentum
        self.dtype = np.dtype(dtype)
        shapes = [s for a, b in itertools.pairwise(sizes) for s in ((a, b), (b,))]
        total = sum(int(np.prod(s)) for s in shapes)
        # One flat buffer each for parameters, gradients, velocities and the lr·g scratch; layers hold views.
        self.flat_p = np.empty(total, dtype=self.dtype)
        self.flat_g = np.zeros(total, dtype=self.dtype)
        self.flat_v = np.zeros(total, dtype=self.dtype)
        self.flat_s = np.empty(total, dtype=self.dtype)
        views_p, views_g, offset = [], [], 0
        for s in shapes:
            size = int(np.prod(s))
            views_p.append(self.flat_p[offset : offset + size].reshape(s))
            views_g.append(self.flat_g[offset : offset + size].reshape(s))
            offset += size
        self.W, self.b = views_p[0::2], views_p[1::2]
        self.dW, self.db = views_g[0::2], views_g[1::2]
        if weights is not None:
            for p, w in zip(views_p, weights, strict=True):
                p[...] = w
        else:
            for W, b in zip(self.W, self.b, strict=True):
                W[...] = rng.normal(0, np.sqrt(2.0 / W.shape[0]), size=W.shape)
                b[...] = 0
        self._bufs: dict[int, Any] = {}

    def _buffers(self, n: int) -> Any:
        bufs = self._bufs.get(n)
        if bufs is None:
            acts = [np.empty((n, w.shape[1]), dtype=self.dtype) for w in self.W]  # a_i = f(z_i), in place
            deltas = [np.empty((n, w.shape[1]), dtype=self.dtype) for w in self.W]  # dL/dz_i
            scratch = [np.empty((n, w.shape[1]), dtype=self.dtype) for w in self.W]  # f'(z_i)
            bufs = (acts, deltas, scratch, np.ones(n, dtype=self.dtype))
            self._bufs[n] = bufs
        return bufs

    @staticmethod
    def _activate(kind: str, a: np.ndarray) -> None:
        if kind == "relu":
            np.maximum(a, 0, out=a)
        elif kind == "tanh":
            np.tanh(a, out=a)
        elif kind == "sigmoid":  # σ(z) = (tanh(z/2) + 1) / 2: no overflow, four calls
            a *= 0.5
            np.tanh(a, out=a)
            a *= 0.5
            a += 0.5

    @staticmethod
    def _derivative(kind: str, a: np.ndarray, d: np.ndarray, s: np.ndarray) -> None:
        """d *= f'(z), from the activation's output a (s is scratch)."""
        if kind == "relu":
            np.multiply(d, a > 0, out=d)
        elif kind == "tanh":  # 1 - a²
            np.multiply(a, a, out=s)
            np.subtract(1, s, out=s)
            d *= s
        elif kind == "sigmoid":  # a (1 - a)
            np.subtract(1, a, out=s)
            s *= a
            d *= s

    def step(self, x: np.ndarray, targets: np.ndarray) -> None:
        n = x.shape[0]
        acts, deltas, scratch, ones = self._buffers(n)
        last = len(self.W) - 1
        inp = x
        for i, (W, b) in enumerate(zip(self.W, self.b, strict=True)):
            a = acts[i]
            np.matmul(inp, W, out=a)  # z = x W
            a += b  # + b
            self._activate(self.acts[i], a)  # a = f(z)
            inp = a
        out, d = acts[last], deltas[last]
        if self.loss_name == "cross_entropy":  # dL/dz = (softmax(z) - t) / n
            np.subtract(out, out.max(axis=1, keepdims=True), out=d)
            np.exp(d, out=d)
            d /= d.sum(axis=1, keepdims=True)
            d -= targets
            d *= 1.0 / n
        else:  # mse over all n·k outputs: dL/da = 2 (a - t) / (n·k), then through the output activation
            np.subtract(out, targets, out=d)
            d *= 2.0 / out.size
            self._derivative(self.acts[last], out, d, scratch[last])
        for i in range(last, -1, -1):
            prev = acts[i - 1] if i > 0 else x
            np.matmul(prev.T, d, out=self.dW[i])  # dL/dW = x.T dL/dz
            np.matmul(ones, d, out=self.db[i])  # dL/db = column sums
            if i > 0:
                np.matmul(d, self.W[i].T, out=deltas[i - 1])  # dL/da below
                self._derivative(self.acts[i - 1], prev, deltas[i - 1], scratch[i - 1])
                d = deltas[i - 1]
        np.multiply(self.flat_g, self.lr, out=self.flat_s)  # lr·g
        self.flat_v *= self.mu
        self.flat_v -= self.flat_s  # v = mu v - lr g
        self.flat_p += self.flat_v  # p += v

    def epoch(self, X: np.ndarray, T: np.ndarray, batch: int, rng: np.random.Generator) -> None:
        perm = rng.permutation(len(X))
        Xs, Ts = X[perm], T[perm]
        for s in range(0, len(X), batch):
            self.step(Xs[s : s + batch], Ts[s : s + batch])

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Outputs for X: probabilities (softmax) for cross-entropy, the output activation's values for mse."""
        a = X
        for i, (W, b) in enumerate(zip(self.W, self.b, strict=True)):
            a = a @ W + b
            self._activate(self.acts[i], a)
        if self.loss_name == "cross_entropy":
            a = np.exp(a - a.max(axis=1, keepdims=True))
            a /= a.sum(axis=1, keepdims=True)
        return a

    def loss(self, X: np.ndarray, T: np.ndarray) -> float:
        p = self.predict(X)
        if self.loss_name == "cross_entropy":
            return float(-(T * np.log(np.maximum(p, 1e-30))).sum(axis=1).mean())
        return float(np.mean((p - T) ** 2))
