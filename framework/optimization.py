"""What the core does around every optimiser: gradient clipping and weight decay, once, for all optimisers.

`make_step(optimizer, ...)` returns the function the trainer calls once per batch. With none of the shared
options set it returns `optimizer.step` itself, so the per-batch path costs nothing extra. Otherwise, in
this order, on the gradients of the batch (changed in place; backward writes them afresh every batch):

1. `clip_value = c`: every gradient element is clipped to [-c, c];
2. `clip_norm = c`: if the global norm ‖g‖ (over every parameter of the model together) exceeds c, all
   gradients are scaled by c/‖g‖, keeping their direction;
3. `weight_decay = λ`:
   - optimisers with `decoupled_weight_decay = False` (sgd, momentum, adam, rmsprop, adagrad) get the L2
     term added to the gradient: g ← g + λ·p (the gradient of λ/2·‖p‖² added to the loss);
   - optimisers with `decoupled_weight_decay = True` (adamw) get the parameters shrunk instead, with the
     current learning rate: p ← p - lr·λ·p, and the gradient untouched;
4. the optimiser's own `step`.

Clipping comes before weight decay (as in PyTorch, where clipping happens before `optimizer.step`), so the
decay term is never clipped. Weight decay applies to every parameter, biases included (PyTorch's and
Keras's default).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from framework.components import Array, Optimizer

StepFunction = Callable[[list[Array], list[Array]], None]


def make_step(
    optimizer: Optimizer,
    params: list[Array],
    *,
    weight_decay: float = 0.0,
    clip_norm: float | None = None,
    clip_value: float | None = None,
) -> StepFunction:
    """The per-batch update: `step(params, grads)` with the shared options applied first.

    Args:
        optimizer: the run's optimiser; its `lr` is read at every step (schedules change it).
        params: the arrays `step` will be called with (scratch buffers are shaped after them).
        weight_decay: λ >= 0; see the module docstring for coupled (L2) and decoupled decay.
        clip_norm: the largest global gradient norm, or None.
        clip_value: the largest absolute gradient element, or None.
    """
    if weight_decay < 0 or (clip_norm is not None and clip_norm <= 0) or (clip_value is not None and clip_value <= 0):
        raise ValueError("weight_decay must be >= 0, clip_norm and clip_value > 0")
    if not weight_decay and clip_norm is None and clip_value is None:
        return optimizer.step  # nothing shared to do: the optimiser's own step, not a wrapper
    scratch = [np.empty_like(p) for p in params] if weight_decay else []
    decoupled = type(optimizer).decoupled_weight_decay
    inner = optimizer.step

    def step(params: list[Array], grads: list[Array]) -> None:
        if clip_value is not None:
            for g in grads:
                np.clip(g, -clip_value, clip_value, out=g)  # each element into [-c, c]
        if clip_norm is not None:
            norm = float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads)))  # ‖g‖ over the whole model
            if norm > clip_norm:
                for g in grads:
                    g *= clip_norm / norm  # g ← g·c/‖g‖
        if weight_decay:
            if decoupled:
                shrink = 1 - optimizer.lr * weight_decay
                for p in params:
                    p *= shrink  # p ← p - lr·λ·p
            else:
                for p, g, s in zip(params, grads, scratch, strict=True):
                    np.multiply(p, weight_decay, out=s)
                    g += s  # g ← g + λ·p
        inner(params, grads)

    return step
