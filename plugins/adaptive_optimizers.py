"""The adaptive optimisers: adam, adamw, rmsprop and adagrad (per-element step sizes from squared gradients).

As in `plugins.optimizers`: updates happen in place, through scratch buffers allocated on the first step, and
gradients are read, never modified. Weight decay and gradient clipping are not here: the core applies
`[optimizer] weight_decay`, `clip_norm` and `clip_value` before `step` (see `framework.optimization`); adamw
differs from adam only in asking the core for decoupled weight decay.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from framework.components import Array, Optimizer, OptimizerParams, Params
from framework.markers import hookimpl
from plugins.optimizers import check_state


def _copies(name: str, state: dict[str, Any], keys: tuple[str, ...]) -> dict[str, list[Array]]:
    if set(state) != {*keys, "t"} and set(state) != set(keys):
        raise ValueError(f"{name}: expected a state with the keys {sorted(keys)}, got {sorted(state)}")
    return {key: [np.array(a, copy=True) for a in state[key]] for key in keys}


class AdamParams(OptimizerParams):
    lr: float = Field(0.001, gt=0, description="Learning rate (step size).")
    beta_1: float = Field(0.9, ge=0, lt=1, description="Decay rate β₁ of the first moment (mean of gradients).")
    beta_2: float = Field(0.999, ge=0, lt=1, description="Decay rate β₂ of the second moment (mean of squares).")
    epsilon: float = Field(1e-8, gt=0, description="ε added to √v̂ so that the step stays finite.")


class Adam(Optimizer):
    """Adam: m ← β₁·m + (1-β₁)·g; v ← β₂·v + (1-β₂)·g²; p ← p - lr·m̂/(√v̂ + ε), m̂ = m/(1-β₁ᵗ), v̂ = v/(1-β₂ᵗ).

    Kingma and Ba (2015), with the bias corrections; t counts steps from 1. Moments start at zero.
    """

    name: ClassVar[str] = "adam"
    Params: ClassVar[type[Params]] = AdamParams
    params: AdamParams

    def __init__(self, params: OptimizerParams | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._m: list[Array] = []
        self._v: list[Array] = []
        self._t = 0
        self._scratch: list[Array] = []

    def step(self, params: list[Array], grads: list[Array]) -> None:
        if not self._m:
            self._m = [np.zeros_like(p) for p in params]
            self._v = [np.zeros_like(p) for p in params]
        check_state(self.name, self._m, params)
        if not self._scratch:
            self._scratch = [np.empty_like(p) for p in params]
            self._m = [m.astype(p.dtype, copy=False) for m, p in zip(self._m, params, strict=True)]
            self._v = [v.astype(p.dtype, copy=False) for v, p in zip(self._v, params, strict=True)]
        self._t += 1
        b1, b2, eps = self.params.beta_1, self.params.beta_2, self.params.epsilon
        step_size = self.lr / (1 - b1**self._t)  # lr·m̂ = (lr / (1-β₁ᵗ))·m
        inv_sqrt_bc2 = 1 / np.sqrt(1 - b2**self._t)  # √v̂ = √v / √(1-β₂ᵗ)
        for p, g, m, v, s in zip(params, grads, self._m, self._v, self._scratch, strict=True):
            m *= b1
            np.multiply(g, 1 - b1, out=s)
            m += s  # m ← β₁·m + (1-β₁)·g
            v *= b2
            np.multiply(g, g, out=s)
            s *= 1 - b2
            v += s  # v ← β₂·v + (1-β₂)·g²
            np.sqrt(v, out=s)
            s *= inv_sqrt_bc2
            s += eps  # √v̂ + ε
            np.divide(m, s, out=s)
            s *= step_size  # lr·m̂/(√v̂ + ε)
            p -= s

    def state_dict(self) -> dict[str, Any]:
        return {"m": [m.copy() for m in self._m], "v": [v.copy() for v in self._v], "t": self._t}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        arrays = _copies(self.name, state, ("m", "v"))
        self._m, self._v, self._t = arrays["m"], arrays["v"], int(state.get("t", 0))
        self._scratch = []  # the next step casts the moments to the parameters' dtype


class AdamWParams(AdamParams):
    pass


class AdamW(Adam):
    """AdamW: adam's step, with weight decay decoupled from the gradient: p ← p - lr·λ·p, then adam's update.

    Loshchilov and Hutter (2019). λ is `[optimizer] weight_decay` (default 0.01 for adamw), applied by the core
    before the step with the current learning rate, as PyTorch and Keras do.
    """

    name: ClassVar[str] = "adamw"
    Params: ClassVar[type[Params]] = AdamWParams
    decoupled_weight_decay: ClassVar[bool] = True
    default_weight_decay: ClassVar[float] = 0.01


class RMSpropParams(OptimizerParams):
    lr: float = Field(0.001, gt=0, description="Learning rate (step size).")
    rho: float = Field(0.9, ge=0, lt=1, description="Decay rate ρ of the mean of squared gradients.")
    epsilon: float = Field(1e-8, gt=0, description="ε added to √v so that the step stays finite.")


class RMSprop(Optimizer):
    """RMSprop: v ← ρ·v + (1-ρ)·g²; p ← p - lr·g/(√v + ε).

    Hinton's lecture 6e form, with ε outside the square root as in PyTorch. v starts at zero.
    """

    name: ClassVar[str] = "rmsprop"
    Params: ClassVar[type[Params]] = RMSpropParams
    params: RMSpropParams

    def __init__(self, params: OptimizerParams | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._v: list[Array] = []
        self._scratch: list[Array] = []

    def step(self, params: list[Array], grads: list[Array]) -> None:
        if not self._v:
            self._v = [np.zeros_like(p) for p in params]
        check_state(self.name, self._v, params)
        if not self._scratch:
            self._scratch = [np.empty_like(p) for p in params]
            self._v = [v.astype(p.dtype, copy=False) for v, p in zip(self._v, params, strict=True)]
        lr, rho, eps = self.lr, self.params.rho, self.params.epsilon
        for p, g, v, s in zip(params, grads, self._v, self._scratch, strict=True):
            v *= rho
            np.multiply(g, g, out=s)
            s *= 1 - rho
            v += s  # v ← ρ·v + (1-ρ)·g²
            np.sqrt(v, out=s)
            s += eps  # √v + ε
            np.divide(g, s, out=s)
            s *= lr
            p -= s  # p ← p - lr·g/(√v + ε)

    def state_dict(self) -> dict[str, Any]:
        return {"v": [v.copy() for v in self._v]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._v = _copies(self.name, state, ("v",))["v"]
        self._scratch = []


class AdagradParams(OptimizerParams):
    lr: float = Field(0.01, gt=0, description="Learning rate (step size).")
    initial_accumulator: float = Field(0.0, ge=0, description="Starting value of the sum of squared gradients G.")
    epsilon: float = Field(1e-10, gt=0, description="ε added to √G so that the step stays finite.")


class Adagrad(Optimizer):
    """Adagrad: G ← G + g²; p ← p - lr·g/(√G + ε).

    Duchi et al. (2011): every element's step shrinks with the sum of its squared gradients. G starts at
    `initial_accumulator` (0, as in PyTorch; Keras uses 0.1).
    """

    name: ClassVar[str] = "adagrad"
    Params: ClassVar[type[Params]] = AdagradParams
    params: AdagradParams

    def __init__(self, params: OptimizerParams | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._G: list[Array] = []
        self._scratch: list[Array] = []

    def step(self, params: list[Array], grads: list[Array]) -> None:
        if not self._G:
            self._G = [np.full_like(p, self.params.initial_accumulator) for p in params]
        check_state(self.name, self._G, params)
        if not self._scratch:
            self._scratch = [np.empty_like(p) for p in params]
            self._G = [G.astype(p.dtype, copy=False) for G, p in zip(self._G, params, strict=True)]
        lr, eps = self.lr, self.params.epsilon
        for p, g, G, s in zip(params, grads, self._G, self._scratch, strict=True):
            np.multiply(g, g, out=s)
            G += s  # G ← G + g²
            np.sqrt(G, out=s)
            s += eps  # √G + ε
            np.divide(g, s, out=s)
            s *= lr
            p -= s  # p ← p - lr·g/(√G + ε)

    def state_dict(self) -> dict[str, Any]:
        return {"G": [G.copy() for G in self._G]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._G = _copies(self.name, state, ("G",))["G"]
        self._scratch = []


@hookimpl
def register_optimizers() -> list[type[Optimizer]]:
    return [Adam, AdamW, RMSprop, Adagrad]
