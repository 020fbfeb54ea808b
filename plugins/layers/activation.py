"""The activation layer: an activation on its own, for orders such as dense -> batch_norm -> activation."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from framework.components import Activation, AnyParams, Array, Component, ComponentSpec, Layer, Params, component_field


class ActivationLayerParams(Params):
    activation: ComponentSpec = component_field(
        "activation", "relu", 'The activation: a name, or a table of its name and params ({name = "elu", alpha = 0.5}).'
    )


class ActivationLayer(Layer):
    """y = f(x), f the `activation` (with its params), no parameters of its own; dL/dx as f's backward gives it.

    A dense layer applies its own activation to x @ W + b; this layer lets another layer come in between, as in
    `{units = 64}, {type = "batch_norm"}, {type = "activation", activation = "gelu"}`.
    """

    name: ClassVar[str] = "activation"
    Params: ClassVar[type[Params]] = ActivationLayerParams
    params: ActivationLayerParams

    def __init__(self, params: AnyParams | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.activation: Activation | None = None
        self._outputs: dict[tuple[int, bool], Array] = {}  # per batch size and mode, as Dense keeps its buffers
        self._x: Array | None = None
        self._a: Array | None = None
        self._width = 0
        self._dtype: np.dtype[Any] = np.dtype(np.float64)

    def attach(self, field: str, component: Component) -> None:
        super().attach(field, component)
        if field == "activation":
            assert isinstance(component, Activation)
            self.activation = component

    def build(self, input_dim: int, dtype: np.dtype[Any], rng: np.random.Generator) -> int:
        self._outputs.clear()
        self._width, self._dtype = input_dim, np.dtype(dtype)
        return input_dim

    def forward(self, x: Array, training: bool) -> Array:
        assert self.activation is not None, "forward() before the activation was attached"
        key = (x.shape[0], training)
        out = self._outputs.get(key)
        if out is None:
            if len(self._outputs) > 8:  # evaluation on odd sizes must not grow memory without bound
                self._outputs.clear()
            out = self._outputs[key] = np.empty((x.shape[0], self._width), self._dtype)
        a = self.activation.forward(x, out=out)  # a = f(x)
        if training:
            self._x, self._a = x, a
        return a

    def backward(self, grad: Array) -> Array | None:
        assert self.activation is not None and self._x is not None and self._a is not None, (
            "backward() before forward(training=True)"
        )
        if not self.needs_input_grad:
            return None
        return self.activation.backward(self._x, self._a, grad)  # dL/dx; may reuse `grad` (the caller's buffer)
