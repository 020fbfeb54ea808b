"""The floor of W2bn: a hand-written numpy loop for dense -> gelu -> batch_norm hidden layers and logits.

The same maths as backprop's `dense` (gelu, exact erf form), `batch_norm` (batch statistics in training, biased
variance, running statistics updated as running <- 0.99 running + 0.01 batch, eps 1e-3, scale and shift) and
softmax cross-entropy, trained with classic momentum; written the fast way, as `floor.FloorMLP`: every parameter
in one flat buffer laid out as backprop lays it out ([W1, b1, gamma1, beta1, ..., W, b]), buffers kept per
batch size, column sums as products with a kept vector of ones, in place. erf is scipy's, as a numpy user would
write it.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
from scipy.special import erf

MOMENTUM, EPS = 0.99, 1e-3  # batch_norm's defaults in backprop (Keras's)
INV_SQRT2, INV_SQRT_2PI = 1 / math.sqrt(2), 1 / math.sqrt(2 * math.pi)


class FloorNormMLP:
    """`sizes` [inputs, hidden..., outputs]; every hidden layer is dense -> gelu -> batch_norm."""

    def __init__(
        self,
        sizes: list[int],
        lr: float,
        momentum: float,
        dtype: Any,
        rng: np.random.Generator,
        weights: list[np.ndarray] | None = None,
    ) -> None:
        self.lr, self.mu, self.dtype = lr, momentum, np.dtype(dtype)
        self.hidden = len(sizes) - 2
        shapes: list[tuple[int, ...]] = []
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            shapes += [(a, b), (b,)] + ([(b,), (b,)] if i < self.hidden else [])
        total = sum(math.prod(s) for s in shapes)
        self.flat_p, self.flat_g = np.empty(total, self.dtype), np.zeros(total, self.dtype)
        self.flat_v, self.flat_s = np.zeros(total, self.dtype), np.empty(total, self.dtype)
        views_p, views_g, offset = [], [], 0
        for s in shapes:
            size = math.prod(s)
            views_p.append(self.flat_p[offset : offset + size].reshape(s))
            views_g.append(self.flat_g[offset : offset + size].reshape(s))
            offset += size
        if weights is not None:
            for p, w in zip(views_p, weights, strict=True):
                p[...] = w
        else:
            for p, s in zip(views_p, shapes, strict=True):
                p[...] = rng.normal(0, math.sqrt(2.0 / s[0]), size=s) if len(s) == 2 else 0.0
        self.params, self.grads = views_p, views_g
        self.running = [np.zeros((2, b), self.dtype) for b in sizes[1:-1]]  # rows: mean, var
        for r in self.running:
            r[1] = 1.0
        self._bufs: dict[int, Any] = {}

    def _layer(self, i: int) -> tuple[np.ndarray, ...]:
        """W, b (and gamma, beta for a hidden layer) of layer i, with their gradients."""
        start = 4 * i
        if i < self.hidden:
            return (*self.params[start : start + 4], *self.grads[start : start + 4])
        return (*self.params[start : start + 2], *self.grads[start : start + 2])

    def _buffers(self, n: int) -> Any:
        bufs = self._bufs.get(n)
        if bufs is None:
            widths = [p.shape[1] for p in self.params if p.ndim == 2]
            hid = widths[:-1]
            bufs = {
                "z": [np.empty((n, w), self.dtype) for w in hid],  # pre-activations
                "cdf": [np.empty((n, w), self.dtype) for w in hid],  # Φ(z), kept for gelu's derivative
                "xhat": [np.empty((n, w), self.dtype) for w in hid],
                "h": [np.empty((n, w), self.dtype) for w in hid],  # batch_norm's outputs
                "work": [np.empty((n, w), self.dtype) for w in hid],
                "stats": [np.empty((2, w), self.dtype) for w in hid],
                "inv_std": [np.empty(w, self.dtype) for w in hid],
                "logits": np.empty((n, widths[-1]), self.dtype),
                "d_hidden": [np.empty((n, w), self.dtype) for w in hid],
                "ones": np.ones(n, self.dtype),
                "means": np.full(n, 1.0 / n, self.dtype),
            }
            self._bufs[n] = bufs
        return bufs

    def step(self, x: np.ndarray, targets: np.ndarray) -> None:
        n = x.shape[0]
        B = self._buffers(n)
        inp = x
        for i in range(self.hidden):
            W, b, gamma, beta, *_ = self._layer(i)
            z, cdf, xhat, h, work = B["z"][i], B["cdf"][i], B["xhat"][i], B["h"][i], B["work"][i]
            np.matmul(inp, W, out=z)
            z += b
            np.multiply(z, INV_SQRT2, out=cdf)
            erf(cdf, out=cdf)
            cdf += 1
            cdf *= 0.5  # Φ(z)
            np.multiply(z, cdf, out=work)  # a = z Φ(z)
            mean, var = B["stats"][i]
            np.dot(B["means"], work, out=mean)
            np.subtract(work, mean, out=xhat)
            np.multiply(xhat, xhat, out=h)
            np.dot(B["means"], h, out=var)  # biased batch variance
            running = self.running[i]
            running *= MOMENTUM
            running += (1 - MOMENTUM) * B["stats"][i]
            inv_std = B["inv_std"][i]
            np.add(var, EPS, out=inv_std)
            np.sqrt(inv_std, out=inv_std)
            np.reciprocal(inv_std, out=inv_std)
            xhat *= inv_std
            np.multiply(xhat, gamma, out=h)
            h += beta
            inp = h
        W, b, dW, db = self._layer(self.hidden)
        d = B["logits"]
        np.matmul(inp, W, out=d)
        d += b
        np.subtract(d, d.max(axis=1, keepdims=True), out=d)  # dL/dz = (softmax(z) - t) / n
        np.exp(d, out=d)
        d /= d.sum(axis=1, keepdims=True)
        d -= targets
        d *= 1.0 / n
        np.matmul(inp.T, d, out=dW)
        np.dot(B["ones"], d, out=db)
        for i in range(self.hidden - 1, -1, -1):
            W_next = self.params[4 * (i + 1)]
            W, b, gamma, beta, dW, db, dgamma, dbeta = self._layer(i)
            g, xhat, work, z, cdf = B["d_hidden"][i], B["xhat"][i], B["work"][i], B["z"][i], B["cdf"][i]
            np.matmul(d, W_next.T, out=g)  # dL/dh
            np.multiply(g, xhat, out=work)
            np.dot(B["ones"], work, out=dgamma)  # Σ g x̂
            np.dot(B["ones"], g, out=dbeta)  # Σ g
            np.multiply(xhat, dgamma * (1.0 / n), out=work)  # x̂ mean(g x̂)
            g -= work
            g -= dbeta * (1.0 / n)
            g *= gamma * B["inv_std"][i]  # dL/da = γ/σ (g - mean g - x̂ mean(g x̂))
            np.multiply(z, z, out=work)  # gelu'(z) = Φ(z) + z φ(z)
            work *= -0.5
            np.exp(work, out=work)
            work *= INV_SQRT_2PI
            work *= z
            work += cdf
            g *= work  # dL/dz
            prev = B["h"][i - 1] if i > 0 else x
            np.matmul(prev.T, g, out=dW)
            np.dot(B["ones"], g, out=db)
            d = g
        np.multiply(self.flat_g, self.lr, out=self.flat_s)
        self.flat_v *= self.mu
        self.flat_v -= self.flat_s  # v = mu v - lr g
        self.flat_p += self.flat_v  # p += v

    def epoch(self, X: np.ndarray, T: np.ndarray, batch: int, rng: np.random.Generator) -> None:
        perm = rng.permutation(len(X))
        Xs, Ts = X[perm], T[perm]
        for s in range(0, len(X), batch):
            if len(X) - s == 1:
                continue  # backprop's batch_norm does not take batch statistics of one sample
            self.step(Xs[s : s + batch], Ts[s : s + batch])

    def logits(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        """The outputs for X: with the running statistics, or (training) each batch's own, nothing updated."""
        a = X
        for i in range(self.hidden):
            W, b, gamma, beta, *_ = self._layer(i)
            z = a @ W + b
            a = z * 0.5 * (1 + erf(z * INV_SQRT2))
            mean, var = (a.mean(axis=0), a.var(axis=0)) if training else self.running[i]
            a = gamma * (a - mean) / np.sqrt(var + EPS) + beta
        W, b, *_ = self._layer(self.hidden)
        return a @ W + b

    def predict(self, X: np.ndarray) -> np.ndarray:
        z = self.logits(X)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    def loss(self, X: np.ndarray, T: np.ndarray) -> float:
        """Cross-entropy of the training pass (batch statistics), which `step` differentiates."""
        z = self.logits(X, training=True)
        z = z - z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-(T * log_p).sum(axis=1).mean())
