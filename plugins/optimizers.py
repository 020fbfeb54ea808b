"""The built-in optimisers: sgd and momentum (classic or Nesterov). Adam and friends: `plugins.adaptive_optimizers`.

Updates happen in place on the model's arrays (the model and the optimiser share them), through scratch
buffers allocated on the first step, so a step allocates nothing. Gradients are read, never modified.
Weight decay and gradient clipping are the core's (`framework.optimization`), never an optimiser's.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from framework.components import Array, Optimizer, OptimizerParams, Params
from framework.markers import hookimpl


def check_state(name: str, state: list[Array], params: list[Array]) -> None:
    if len(state) == 1 == len(params) and state[0].shape == params[0].shape:
        return  # the usual case, once per step: the trainer passes all parameters as one flat array
    if len(state) != len(params) or any(s.shape != p.shape for s, p in zip(state, params, strict=True)):
        raise ValueError(
            f"{name}: the optimiser state was made for parameter shapes {[s.shape for s in state]}, "
            f"but step() got {[p.shape for p in params]}; help: use a fresh optimiser for a new model"
        )


class SGD(Optimizer):
    """Plain gradient descent: p ← p - lr·g."""

    name: ClassVar[str] = "sgd"

    def __init__(self, params: OptimizerParams | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._scratch: list[Array] = []

    def step(self, params: list[Array], grads: list[Array]) -> None:
        if not self._scratch:
            self._scratch = [np.empty_like(p) for p in params]
        check_state(self.name, self._scratch, params)
        lr = self.lr
        for p, g, s in zip(params, grads, self._scratch, strict=True):
            np.multiply(g, lr, out=s)  # lr·g
            p -= s  # p ← p - lr·g


class MomentumParams(OptimizerParams):
    momentum: float = Field(0.9, ge=0, lt=1, description="Momentum μ: the fraction of the velocity kept.")
    nesterov: bool = Field(False, description="Use Nesterov momentum (look ahead along the velocity).")


class Momentum(Optimizer):
    """Momentum μ: v ← μ·v - lr·g, then p ← p + v (classic) or p ← p + μ·v - lr·g (nesterov = true).

    The Nesterov form is Keras's (Sutskever et al., 2013, rewritten in terms of the current parameters).
    Velocities start at zero, with the shapes and dtypes of the parameters.
    """

    name: ClassVar[str] = "momentum"
    Params: ClassVar[type[Params]] = MomentumParams
    params: MomentumParams

    def __init__(self, params: OptimizerParams | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._velocities: list[Array] = []
        self._scratch: list[Array] = []

    def step(self, params: list[Array], grads: list[Array]) -> None:
        if not self._velocities:
            self._velocities = [np.zeros_like(p) for p in params]
        check_state(self.name, self._velocities, params)
        if not self._scratch:  # the first step, or the first after load_state_dict
            self._scratch = [np.empty_like(p) for p in params]
            self._velocities = [v.astype(p.dtype, copy=False) for v, p in zip(self._velocities, params, strict=True)]
        lr, mu, nesterov = self.lr, self.params.momentum, self.params.nesterov
        for p, g, v, s in zip(params, grads, self._velocities, self._scratch, strict=True):
            np.multiply(g, lr, out=s)  # s = lr·g
            v *= mu
            v -= s  # v ← μ·v - lr·g
            if nesterov:
                p -= s  # p ← p - lr·g ...
                np.multiply(v, mu, out=s)
                p += s  # ... + μ·v
            else:
                p += v  # p ← p + v

    def state_dict(self) -> dict[str, Any]:
        return {"velocities": [v.copy() for v in self._velocities]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"velocities"}:
            raise ValueError(f"momentum: expected a state with the key 'velocities', got {sorted(state)}")
        self._velocities = [np.array(v, copy=True) for v in state["velocities"]]
        self._scratch = []  # the next step casts the velocities to the parameters' dtype


@hookimpl
def register_optimizers() -> list[type[Optimizer]]:
    return [SGD, Momentum]
