"""The systems the suite compares, each as `run_<system>(wl, data, init) -> Run`.

How each one's time per epoch is taken (the first epoch is a warm-up everywhere and is never counted):

- backprop: `fit(Experiment.from_dict(...), callbacks=[timer], track=...)` through the public API; the timer
  is a plugin whose `before_epoch` marks each epoch's start and whose `after_fit` (tryfirst) marks the end of
  the last one, so an epoch is everything the trainer does for it (batches, the epoch's metrics, history,
  hooks, tracking's per-epoch logging), and set-up (plugins, config, data, model) and tracking's start and
  end of run are not. Median over epochs 2..E.
- floor and torch: `perf_counter` around each epoch of their own loop (shuffle included). Median over 2..E.
- scikit-learn: `fit` has no per-epoch hook, so (time of fit with max_iter=E - time of fit with max_iter=1)
  / (E - 1): the marginal cost of an epoch, without `fit`'s fixed set-up (input validation, label binarising,
  initialisation). A mean over epochs 2..E, not a median.

Every system starts from backprop's initial weights (taken by the timer in `before_fit`), so the final losses
differ only by the order of the shuffled batches (and, for scikit-learn at W1, by its loss; see `run_sklearn`).
"""

from __future__ import annotations

import statistics
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from floor import FloorMLP
from workloads import Data, Workload, builtin_dataset, experiment_dict, loss_of

from framework import DataBundle, Dataset, Experiment, Trainer, fit, hookimpl


@dataclass
class Run:
    per_epoch_s: float  # median (mean for scikit-learn) seconds per epoch, first epoch excluded
    final_loss: float  # the workload's loss on the training data after the last epoch (workloads.loss_of)
    extra: dict[str, Any] = field(default_factory=dict)


# -- backprop ----------------------------------------------------------------------------------------------


class EpochTimer:
    """Marks each epoch's start and the end of the last one; keeps the initial weights."""

    def __init__(self) -> None:
        self.marks: list[float] = []
        self.initial: list[np.ndarray] | None = None

    @hookimpl
    def before_fit(self, trainer: Trainer) -> None:
        self.initial = [p.copy() for p in trainer.model.parameters()]  # the trained ones, not the buffers

    @hookimpl
    def before_epoch(self) -> None:
        self.marks.append(time.perf_counter())

    # tryfirst: before tracking's after_fit (trylast) finishes the MLflow run, which is not an epoch's work.
    @hookimpl(tryfirst=True)
    def after_fit(self) -> None:
        self.marks.append(time.perf_counter())

    def per_epoch(self) -> list[float]:
        return [b - a for a, b in zip(self.marks, self.marks[1:], strict=False)][1:]


def arrays_plugin(data: Data, task: str) -> object:
    """A plugin that registers the dataset `bench_arrays`: the suite's own (already standardised) arrays."""

    class BenchArrays(Dataset):
        """The benchmark suite's arrays, shared with the other systems."""

        name: ClassVar[str] = "bench_arrays"

        def load(self, rng: np.random.Generator) -> DataBundle:
            return DataBundle(data.X, data.y, task)  # type: ignore[arg-type]

    class Plugin:
        @hookimpl
        def register_datasets(self) -> list[type[Dataset]]:
            return [BenchArrays]

    return Plugin()


def run_backprop(wl: Workload, data: Data, init: list[np.ndarray] | None, *, tracked: bool = False) -> Run:
    timer = EpochTimer()
    plugins: list[object] = []
    if not builtin_dataset(wl):
        task = "regression" if wl.dataset == "regression" else "multiclass"
        plugins.append(arrays_plugin(data, task))
    start = time.perf_counter()
    result = fit(
        Experiment.from_dict(experiment_dict(wl, tracked=tracked)), callbacks=[timer], track=tracked, plugins=plugins
    )
    total = time.perf_counter() - start
    epochs = timer.per_epoch()
    predictions = result.model.predict(data.X_raw)
    return Run(
        statistics.median(epochs),
        loss_of(wl, predictions, data),
        {"fit_s": total, "epochs_s": sum(epochs), "initial": timer.initial},
    )


# -- the floor ---------------------------------------------------------------------------------------------


def run_floor(wl: Workload, data: Data, init: list[np.ndarray] | None) -> Run:
    rng = np.random.default_rng(0)
    net: Any
    if wl.batch_norm:  # W2bn: dense -> gelu -> batch_norm layers, written out by hand in floor_norm.py
        from floor_norm import FloorNormMLP  # imports scipy (its erf), which only W2bn needs

        net = FloorNormMLP(wl.sizes, wl.lr, wl.momentum, np.float32, rng, weights=init)
    else:
        net = FloorMLP(wl.sizes, wl.activations, wl.lr, wl.momentum, np.float32, rng, loss=wl.loss, weights=init)
    times = []
    for _ in range(wl.epochs):
        start = time.perf_counter()
        net.epoch(data.X, data.T, wl.batch, rng)
        times.append(time.perf_counter() - start)
    return Run(statistics.median(times[1:]), loss_of(wl, net.predict(data.X), data))


# -- scikit-learn ------------------------------------------------------------------------------------------


def run_sklearn(wl: Workload, data: Data, init: list[np.ndarray] | None) -> Run:
    """MLPClassifier / MLPRegressor with solver sgd, classic momentum 0.9, alpha 0, constant lr, shuffling.

    MLPRegressor's loss is half the mean square, so its lr is doubled to take backprop's steps (W5). W1 has a
    sigmoid output, which scikit-learn offers only with log-loss (MLPClassifier): same network and work per
    epoch, a different loss, so its final loss is not expected to match there.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    activations = {a for _, a in wl.hidden}
    assert len(activations) == 1, "scikit-learn uses one activation for every hidden layer"
    regressor = wl.loss == "mse" and wl.output == "identity"
    settings: dict[str, Any] = {
        "hidden_layer_sizes": [u for u, _ in wl.hidden],
        "activation": activations.pop(),
        "solver": "sgd",
        "alpha": 0.0,
        "batch_size": wl.batch,
        "learning_rate": "constant",
        "learning_rate_init": 2 * wl.lr if regressor else wl.lr,
        "momentum": wl.momentum,
        "nesterovs_momentum": False,
        "shuffle": True,
        "random_state": 0,
        "tol": 0.0,
        "n_iter_no_change": 10**9,  # never stop early: every system runs all epochs
        "early_stopping": False,
        "max_iter": 1,
    }
    est = (MLPRegressor if regressor else MLPClassifier)(**settings)
    y = data.y
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter reached: that is the point
        start = time.perf_counter()
        est.fit(data.X, y)  # set-up + initialisation + 1 epoch
        one = time.perf_counter() - start
        if init is not None:  # start again from backprop's initial weights, velocities zero
            for i, (W, b) in enumerate(zip(init[0::2], init[1::2], strict=True)):
                est.coefs_[i][...] = W
                est.intercepts_[i][...] = b
        est.set_params(max_iter=wl.epochs, warm_start=True)
        start = time.perf_counter()
        est.fit(data.X, y)  # set-up + E epochs
        many = time.perf_counter() - start
    if regressor:
        predictions = est.predict(data.X)
    else:
        proba = est.predict_proba(data.X)
        predictions = proba[:, 1] if wl.n_outputs == 1 else proba
    return Run((many - one) / (wl.epochs - 1), loss_of(wl, predictions, data), {"fit_1_s": one, "fit_E_s": many})


# -- PyTorch eager -----------------------------------------------------------------------------------------


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def run_torch(wl: Workload, data: Data, init: list[np.ndarray] | None) -> Run:
    """nn.Sequential of Linear layers, torch.optim.SGD(momentum=0.9): v = μv + g, p -= lr·v, which is the
    classic update (v_torch = -v/lr) for a constant lr. One thread, float32, eager, autograd."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    acts = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}
    modules: list[torch.nn.Module] = []
    sizes = wl.sizes
    for i, kind in enumerate(wl.activations):
        linear = torch.nn.Linear(sizes[i], sizes[i + 1])
        if init is not None:
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(init[2 * i].T)))
                linear.bias.copy_(torch.from_numpy(init[2 * i + 1]))
        modules.append(linear)
        if kind in acts:
            modules.append(acts[kind]())
    model = torch.nn.Sequential(*modules)
    optimizer = torch.optim.SGD(model.parameters(), lr=wl.lr, momentum=wl.momentum)
    X = torch.from_numpy(data.X)
    if wl.loss == "cross_entropy":
        T, loss_fn = torch.from_numpy(data.y), torch.nn.CrossEntropyLoss()
    else:
        T, loss_fn = torch.from_numpy(data.T), torch.nn.MSELoss()  # mean over all n·k, as backprop's mse
    generator = torch.Generator().manual_seed(0)
    n, bs = len(X), wl.batch
    times = []
    for _ in range(wl.epochs):
        start = time.perf_counter()
        perm = torch.randperm(n, generator=generator)
        Xs, Ts = X[perm], T[perm]
        for s in range(0, n, bs):
            optimizer.zero_grad()
            loss = loss_fn(model(Xs[s : s + bs]), Ts[s : s + bs])
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - start)
    with torch.no_grad():
        out = model(X)
        predictions = torch.softmax(out, dim=1) if wl.loss == "cross_entropy" else out
    return Run(statistics.median(times[1:]), loss_of(wl, predictions.numpy(), data))


RUNNERS = {"backprop": run_backprop, "floor": run_floor, "sklearn": run_sklearn, "torch": run_torch}
