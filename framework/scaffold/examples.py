"""The worked example of each kind that `backprop new-plugin` writes: a module body, and a run that uses it.

Templates use `string.Template` placeholders: `$component` (the registered name), `$Class` (the class
name) and `$module` (the import name).
"""

from __future__ import annotations

from typing import Any

OPTIMIZER = '''"""A backprop plugin: the $component optimiser (Adagrad).

Adagrad gives every parameter element its own step size, shrinking where gradients have been large:

    G <- G + g^2
    p <- p - lr * g / (sqrt(G) + eps)
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from framework import Array, Optimizer, OptimizerParams, Params, hookimpl


class ${Class}Params(OptimizerParams):
    eps: float = Field(1e-8, gt=0, description="Added to the denominator so that it is never zero.")


class $Class(Optimizer):
    """Adagrad: G <- G + g^2, then p <- p - lr * g / (sqrt(G) + eps), element by element."""

    name: ClassVar[str] = "$component"
    Params: ClassVar[type[Params]] = ${Class}Params
    params: ${Class}Params

    def __init__(self, params: OptimizerParams | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._sums: list[Array] = []  # G, one array per parameter, created on the first step

    def step(self, params: list[Array], grads: list[Array]) -> None:
        if not self._sums:
            self._sums = [np.zeros_like(p) for p in params]
        for p, g, s in zip(params, grads, self._sums, strict=True):
            s += g * g  # G <- G + g^2
            p -= self.lr * g / (np.sqrt(s) + self.params.eps)  # p <- p - lr * g / (sqrt(G) + eps)

    def state_dict(self) -> dict[str, Any]:
        return {"sums": [s.copy() for s in self._sums]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._sums = [np.array(s, copy=True) for s in state["sums"]]


@hookimpl
def register_optimizers() -> list[type[Optimizer]]:
    return [$Class]
'''

ACTIVATION = '''"""A backprop plugin: the $component activation (tanhshrink).

    f(z) = z - tanh(z)        f'(z) = 1 - (1 - tanh(z)^2) = tanh(z)^2

About z^3 / 3 near zero and z - 1 (or z + 1) for large |z|: small inputs are shrunk towards zero, large ones
pass almost unchanged (PyTorch's Tanhshrink). np.tanh is exact at any size, so f is finite everywhere.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from framework import Activation, Array, Params, hookimpl


class $Class(Activation):
    """f(z) = z - tanh(z); f'(z) = tanh(z)^2."""

    name: ClassVar[str] = "$component"

    def __init__(self, params: Params | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._scratch: Array | None = None  # tanh(z) in backward, kept for the next batch of the same shape

    def forward(self, z: Array, out: Array | None = None) -> Array:
        result = np.tanh(z, out=out)  # tanh(z), written into `out` when given (never z itself)
        np.subtract(z, result, out=result)  # f(z) = z - tanh(z)
        return result

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        # tanh(z) again rather than z - a: for large |z| that difference keeps only the digits z and a share.
        t = np.tanh(z, out=self._buffer(z))
        t *= t  # f'(z) = tanh(z)^2
        grad *= t  # dL/dz = f'(z) * dL/da
        return grad

    def _buffer(self, like: Array) -> Array:
        if self._scratch is None or self._scratch.shape != like.shape or self._scratch.dtype != like.dtype:
            self._scratch = np.empty_like(like)
        return self._scratch


@hookimpl
def register_activations() -> list[type[Activation]]:
    return [$Class]
'''

LOSS = '''"""A backprop plugin: the $component loss (Cauchy, or Lorentzian).

With r = outputs - targets and a scale c, element by element:

    L(r) = (c^2 / 2) * log(1 + (r / c)^2)

averaged over all N elements. Like r^2 / 2 while |r| is small against c, it grows only logarithmically
for |r| much larger than c, so outliers pull on the fit far less than with mse (or Huber). Its gradient

    dL/do = r / (1 + (r / c)^2) / N

is largest, c / 2N, at |r| = c and falls back towards 0 beyond: a far outlier is all but ignored.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from framework import Array, Loss, Params, hookimpl
from framework.components import Task


class ${Class}Params(Params):
    scale: float = Field(
        1.0, gt=0, allow_inf_nan=False, description="The scale c: residuals much larger than c count only as log."
    )


class $Class(Loss):
    """Cauchy: mean of (c^2/2) log(1 + (r/c)^2), r = o - t; dL/do = r / (1 + (r/c)^2) / N."""

    name: ClassVar[str] = "$component"
    tasks: ClassVar[tuple[Task, ...]] = ("regression",)
    Params: ClassVar[type[Params]] = ${Class}Params
    params: ${Class}Params

    def __init__(self, params: Params | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._buffers: tuple[Array, Array] | None = None  # the gradient and a work array, reused per batch

    def value(self, outputs: Array, targets: Array) -> float:
        c = self.params.scale
        u = (outputs - targets) / c  # r / c
        return float(0.5 * c * c * np.mean(np.log1p(u * u)))  # log1p: no digits lost when r is small

    def gradient(self, outputs: Array, targets: Array) -> Array:
        c = self.params.scale
        grad, work = self._buffers_like(outputs)
        np.subtract(outputs, targets, out=grad)  # r
        np.divide(grad, c, out=work)  # r / c
        work *= work
        work += 1  # 1 + (r / c)^2
        grad /= work
        grad *= 1 / outputs.size  # the 1/N of the mean
        return grad

    def _buffers_like(self, like: Array) -> tuple[Array, Array]:
        if self._buffers is None or self._buffers[0].shape != like.shape or self._buffers[0].dtype != like.dtype:
            self._buffers = (np.empty_like(like), np.empty_like(like))
        return self._buffers


@hookimpl
def register_losses() -> list[type[Loss]]:
    return [$Class]
'''

INITIALIZER = '''"""A backprop plugin: the $component initialiser (a truncated normal).

Draws w ~ N(mean, stddev^2) and draws again every value that lands more than two standard deviations from
the mean, as Keras's TruncatedNormal: every weight lies within mean +- 2 stddev, and their standard
deviation is about 0.88 stddev (the tails are gone). A layer names it with `init = "$component"`, or with its
params: `init = { name = "$component", stddev = 0.1 }`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from framework import Array, Initializer, Params, hookimpl


class ${Class}Params(Params):
    mean: float = Field(0.0, allow_inf_nan=False, description="Mean of the normal distribution.")
    stddev: float = Field(
        0.05, gt=0, allow_inf_nan=False, description="Standard deviation of the normal, before truncation."
    )


class $Class(Initializer):
    """w ~ N(mean, stddev^2), truncated to mean +- 2 stddev: values beyond are drawn again."""

    name: ClassVar[str] = "$component"
    Params: ClassVar[type[Params]] = ${Class}Params
    params: ${Class}Params

    def __call__(self, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> Array:
        mean, stddev = self.params.mean, self.params.stddev
        values = rng.normal(mean, stddev, size=shape)  # all randomness from `rng`: the same seed, the same weights
        outside = np.abs(values - mean) > 2 * stddev
        while outside.any():  # about 4.6 % of the values per round: a few rounds, never one value at a time
            values[outside] = rng.normal(mean, stddev, size=int(np.count_nonzero(outside)))
            outside = np.abs(values - mean) > 2 * stddev
        return values


@hookimpl
def register_initializers() -> list[type[Initializer]]:
    return [$Class]
'''

CALLBACK = '''"""A backprop plugin: the $component callback (stop at a target).

Stops training as soon as a monitored metric reaches a target value, through the `should_stop` decision
hook: its answer (a sentence) becomes the run's stop reason.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from framework import Callback, Params, Trainer, hookimpl
from framework.errors import ConfigError


class ${Class}Params(Params):
    monitor: str = Field("train_loss", description="Metric to watch, as named in the history (e.g. val_loss).")
    target: float = Field(0.01, description="Stop once the metric reaches this value.")
    mode: Literal["min", "max"] = Field("min", description="min: stop at or below the target; max: at or above.")


class $Class(Callback):
    """Stops training once `monitor` reaches `target` (at or below it for mode min, at or above for max)."""

    name: ClassVar[str] = "$component"
    Params: ClassVar[type[Params]] = ${Class}Params
    params: ${Class}Params

    def __init__(self, params: Params | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.reached_at: int | None = None  # the epoch the target was reached, if it was

    def validate_against(self, trainer: Trainer) -> None:
        if self.params.monitor not in trainer.metric_names:
            raise ConfigError(
                f"callbacks.$component.monitor: {self.params.monitor!r} is not computed in this run; "
                f"available: {', '.join(trainer.metric_names)}"
            )

    @hookimpl
    def should_stop(self, epoch: int, logs: dict[str, float]) -> str | None:
        value = logs[self.params.monitor]
        reached = value <= self.params.target if self.params.mode == "min" else value >= self.params.target
        if not reached:
            return None
        self.reached_at = epoch
        return f"{self.params.monitor} reached {value:.4g} (target {self.params.target:g})"

    def state_dict(self) -> dict[str, Any]:
        return {"reached_at": self.reached_at}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reached_at = state["reached_at"]


@hookimpl
def register_callbacks() -> list[type[Callback]]:
    return [$Class]
'''

DATASET = '''"""A backprop plugin: the $component dataset (interleaved spirals).

`n_classes` spiral arms in the plane, `n_samples` points each, with Gaussian noise: a classic problem that a
linear model cannot solve. The data comes from the generator the experiment's seed gives, so the same
config always gives the same data.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from framework import DataBundle, Dataset, Params, hookimpl


class ${Class}Params(Params):
    n_samples: int = Field(100, ge=2, le=1_000_000, description="Points per spiral arm.")
    n_classes: int = Field(3, ge=2, le=20, description="Number of spiral arms (classes).")
    noise: float = Field(0.2, ge=0, description="Standard deviation of the noise added to the angle.")


class $Class(Dataset):
    """Interleaved spirals: class k has points r (cos t, sin t), r in [0, 1], t = 4r + 2 pi k / K + noise."""

    name: ClassVar[str] = "$component"
    Params: ClassVar[type[Params]] = ${Class}Params
    params: ${Class}Params

    def load(self, rng: np.random.Generator) -> DataBundle:
        n, k = self.params.n_samples, self.params.n_classes
        radius = np.tile(np.linspace(0.0, 1.0, n), k)  # r, for every arm
        labels = np.repeat(np.arange(k), n)  # the arm of each point
        angle = 4 * radius + 2 * np.pi * labels / k + rng.normal(0.0, self.params.noise, n * k)
        X = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
        task = "binary" if k == 2 else "multiclass"
        return DataBundle(X, labels, task, ["x", "y"], [f"arm {i}" for i in range(k)], "interleaved spirals")


@hookimpl
def register_datasets() -> list[type[Dataset]]:
    return [$Class]
'''

MODULES = {
    "optimizer": OPTIMIZER,
    "activation": ACTIVATION,
    "loss": LOSS,
    "callback": CALLBACK,
    "dataset": DATASET,
    "initializer": INITIALIZER,
}

SUMMARIES = {
    "optimizer": "an Adagrad optimiser",
    "activation": "a tanhshrink activation",
    "loss": "a Cauchy (Lorentzian) robust loss",
    "callback": "a callback that stops training at a target",
    "dataset": "an interleaved-spirals dataset",
    "initializer": "a truncated-normal initialiser",
}


def experiment(kind: str, component: str) -> dict[str, Any]:
    """A short run (3 epochs, no tracking) that uses the new component."""
    run: dict[str, Any] = {
        "name": f"try-{component}",
        "seed": 0,
        "data": {"name": "house_prices", "n_samples": 200, "validation_split": 0.2},
        "model": {"layers": [{"units": 8, "activation": "tanh"}, {"units": 1}]},
        "loss": {"name": "mse"},
        "optimizer": {"name": "sgd", "lr": 0.05},
        "training": {"epochs": 3, "batch_size": 32},
        "tracking": {"enabled": False},
    }
    if kind == "optimizer":
        run["optimizer"] = {"name": component, "lr": 0.1}
    elif kind == "activation":
        run["model"]["layers"][0]["activation"] = component
    elif kind == "loss":
        run["loss"] = {"name": component, "scale": 1.0}
    elif kind == "callback":
        run["callbacks"] = {component: {"monitor": "val_loss", "target": 0.0}}
    elif kind == "dataset":
        run["data"] = {"name": component, "n_samples": 50, "validation_split": 0.2}
        run["model"]["layers"][-1]["units"] = 3
        run["loss"] = {"name": "cross_entropy"}
    elif kind == "initializer":
        run["model"]["layers"][0]["init"] = {"name": component, "stddev": 0.1}
    return run
