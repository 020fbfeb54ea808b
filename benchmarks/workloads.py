"""The workloads W1-W5 of research/performance.md and W2bn: data, network, batch, epochs, and backprop's experiment.

Every system trains the same job on the same arrays: float32, features standardised (population std, a
constant feature left centred), the same layers, mean-over-batch gradients, classic momentum SGD
(v = 0.9 v - lr g; p += v), data reshuffled every epoch (W1 included: it is part of every system's epoch),
last partial batch kept. W1 and W5 use backprop's mse (the mean over all n·k outputs, gradient
2 (o - t) / (n·k)); W2-W4 softmax + cross-entropy. The learning rates are ours (research fixes none).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

DTYPE = np.float32


@dataclass(frozen=True)
class Workload:
    id: str
    description: str
    dataset: str  # "xor", "digits", "classification" or "regression"
    n_samples: int
    n_features: int
    hidden: tuple[tuple[int, str], ...]  # (units, activation) of each hidden layer
    n_outputs: int
    output: str  # activation of the output layer: identity or sigmoid
    loss: str  # "cross_entropy" or "mse"
    batch: int
    epochs: int
    lr: float
    momentum: float = 0.9
    tracked: bool = False  # also run backprop with MLflow tracking on
    targets: dict[str, float] = field(default_factory=dict)
    batch_norm: bool = False  # a batch_norm layer after every hidden layer (W2bn)
    peers: tuple[str, ...] = ("sklearn", "torch")  # the other systems that train the same network

    @property
    def sizes(self) -> list[int]:
        return [self.n_features, *(u for u, _ in self.hidden), self.n_outputs]

    @property
    def activations(self) -> list[str]:
        return [a for _, a in self.hidden] + [self.output]

    @property
    def n_parameters(self) -> int:
        normalised = sum(2 * u for u, _ in self.hidden) if self.batch_norm else 0  # batch_norm's γ and β
        return sum(a * b + b for a, b in itertools.pairwise(self.sizes)) + normalised

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.n_samples // self.batch)

    @property
    def flops_per_epoch(self) -> float:
        """6 · parameters · samples (forward 2, backward 4), as research/performance.md counts them."""
        return 6.0 * self.n_parameters * self.n_samples

    def smoke(self) -> Workload:
        """The same job at a tiny size: seconds for the whole suite, no meaningful timings."""
        n = min(self.n_samples, max(600, 2 * self.batch + 1))  # two full batches and a partial one
        return replace(self, n_samples=n, epochs=20 if self.dataset == "xor" else 3)


# Targets of issue 6: backprop / floor, and how many times faster than each peer backprop must be.
WORKLOADS = [
    Workload(
        "W1",
        "4 XOR samples, 3 features; 3 -> 4 tanh -> 1 sigmoid, mse, full batch",
        "xor",
        4,
        3,
        ((4, "tanh"),),
        1,
        "sigmoid",
        "mse",
        batch=4,
        epochs=2000,
        lr=0.5,
        targets={"floor": 1.5, "sklearn": 5.0, "torch": 7.0},
    ),
    Workload(
        "W2",
        "scikit-learn digits 1797 x 64; 64 -> 64 relu -> 10, softmax CE, batch 32",
        "digits",
        1797,
        64,
        ((64, "relu"),),
        10,
        "identity",
        "cross_entropy",
        batch=32,
        epochs=20,
        lr=0.05,
        tracked=True,
        targets={"floor": 1.10, "sklearn": 3.0, "torch": 5.0},
    ),
    Workload(
        "W2bn",
        "W2 with gelu and batch_norm: 64 -> 64 gelu -> batch_norm -> 10, softmax CE, batch 32",
        "digits",
        1797,
        64,
        ((64, "gelu"),),
        10,
        "identity",
        "cross_entropy",
        batch=32,
        epochs=20,
        lr=0.05,
        targets={"floor": 1.3},
        batch_norm=True,
        peers=(),  # scikit-learn has neither; the target of issue 14 is against the floor
    ),
    Workload(
        "W3",
        "make_classification 20000 x 100, 10 classes; 100 -> 256 relu -> 256 relu -> 10, batch 128",
        "classification",
        20000,
        100,
        ((256, "relu"), (256, "relu")),
        10,
        "identity",
        "cross_entropy",
        batch=128,
        epochs=5,
        lr=0.01,
        tracked=True,
        targets={"floor": 1.10, "sklearn": 1.0, "torch": 1.0, "peak": 0.47},
    ),
    Workload(
        "W4",
        "same data and network as W3, batch 1024",
        "classification",
        20000,
        100,
        ((256, "relu"), (256, "relu")),
        10,
        "identity",
        "cross_entropy",
        batch=1024,
        epochs=5,
        lr=0.05,
        targets={"floor": 1.10, "sklearn": 1.0, "torch": 1.0, "peak": 0.60},
    ),
    Workload(
        "W5",
        "make_regression 20000 x 20; 20 -> 64 tanh -> 1, mse, batch 64",
        "regression",
        20000,
        20,
        ((64, "tanh"),),
        1,
        "identity",
        "mse",
        batch=64,
        epochs=5,
        lr=0.01,
        targets={"floor": 1.10, "sklearn": 3.0},
    ),
]


@dataclass
class Data:
    """One workload's training arrays, shared by every system."""

    X: np.ndarray  # (n, features) float32, standardised
    y: np.ndarray  # class labels (int64) or regression targets (float32), shape (n,)
    T: np.ndarray  # what the floor's loss compares with: one-hot rows or a (n, 1) column, float32
    X_raw: np.ndarray  # what backprop's Model.predict takes (before its own standardisation)


def _standardise(X: np.ndarray) -> np.ndarray:
    # As backprop's Standardizer does it, in float32: x' = (x - mean) / std, std 0 -> 1.
    X = np.asarray(X, dtype=DTYPE)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    return np.ascontiguousarray(((X - X.mean(axis=0)) / scale).astype(DTYPE, copy=False))


def make_data(wl: Workload) -> Data:
    if wl.dataset == "xor":
        X = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=DTYPE)
        y = np.array([0, 1, 1, 0])
        return Data(X, y, y.astype(DTYPE).reshape(-1, 1), X)
    if wl.dataset == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        X_raw = digits.data[: wl.n_samples]
        y = digits.target[: wl.n_samples].astype(np.int64)
        X = _standardise(X_raw)
        return Data(X, y, np.eye(wl.n_outputs, dtype=DTYPE)[y], X_raw if builtin_dataset(wl) else X)
    if wl.dataset == "classification":
        from sklearn.datasets import make_classification

        X_raw, y = make_classification(
            n_samples=wl.n_samples,
            n_features=wl.n_features,
            n_informative=30,
            n_redundant=10,
            n_classes=wl.n_outputs,
            random_state=0,
        )
        X = _standardise(X_raw)
        y = y.astype(np.int64)
        return Data(X, y, np.eye(wl.n_outputs, dtype=DTYPE)[y], X)
    if wl.dataset == "regression":
        from sklearn.datasets import make_regression

        X_raw, y = make_regression(
            n_samples=wl.n_samples, n_features=wl.n_features, n_informative=10, noise=10.0, random_state=0
        )
        X = _standardise(X_raw)
        y = ((y - y.mean()) / y.std()).astype(DTYPE)  # standardised targets: the same lr suits every seed
        return Data(X, y, y.reshape(-1, 1), X)
    raise ValueError(f"unknown dataset {wl.dataset!r}")


def builtin_dataset(wl: Workload) -> bool:
    """Whether backprop loads the workload's data itself (xor, the full digits) rather than from our arrays."""
    return wl.dataset in {"xor", "digits"} and wl.n_samples == {"xor": 4, "digits": 1797}[wl.dataset]


def experiment_dict(wl: Workload, *, tracked: bool = False) -> dict[str, Any]:
    """The workload as a backprop experiment; other data comes from the `bench_arrays` plugin dataset."""
    builtin = builtin_dataset(wl)
    layers: list[dict[str, Any]] = []
    for units, activation in wl.hidden:
        layers.append({"units": units, "activation": activation})
        if wl.batch_norm:
            layers.append({"type": "batch_norm"})
    layers.append({"units": wl.n_outputs, "activation": wl.output})
    return {
        "name": f"bench-{wl.id.lower()}",
        "seed": 0,
        "dtype": "float32",
        "data": {
            "name": wl.dataset if builtin else "bench_arrays",
            "validation_split": 0.0,
            # The built-in digits are standardised by backprop (as a user would); bench_arrays already are.
            "standardize": wl.dataset == "digits" and builtin,
        },
        "model": {"layers": layers},
        "loss": {"name": wl.loss},
        "optimizer": {"name": "momentum", "lr": wl.lr, "momentum": wl.momentum},
        "training": {"epochs": wl.epochs, "batch_size": wl.batch, "shuffle": True},
        "tracking": {"enabled": tracked, "experiment": f"bench-{wl.id.lower()}"},
    }


def loss_of(wl: Workload, predictions: np.ndarray, data: Data) -> float:
    """The workload's loss from a system's predictions (probabilities, or the output activation's values).

    Every system is scored by this one function on the training data after its last epoch, so the final
    losses compare like with like.
    """
    p = np.asarray(predictions, dtype=np.float64)
    if wl.loss == "cross_entropy":
        return float(-np.mean(np.log(np.maximum(p[np.arange(len(p)), data.y], 1e-30))))
    return float(np.mean((p.reshape(data.T.shape) - data.T) ** 2))
