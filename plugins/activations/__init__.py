"""The built-in activations, one class per rule, grouped by family:

- `rectifiers`: identity, relu, leaky_relu;
- `saturating`: sigmoid, tanh.

Each class's docstring states f(z) and f'(z). `forward` calls the formula in `framework.functional` (numpy
alone, shipped with MLflow models so that they predict without backprop); `backward` turns dL/da into dL/dz
beside it, reusing `grad`'s memory. Both keep the dtype of their inputs.

At a kink (z = 0 for relu and leaky_relu) the derivative is the left one: relu'(0) = 0 and
leaky_relu'(0) = negative_slope (as PyTorch and TensorFlow do).
"""

from __future__ import annotations

from framework.components import Activation
from framework.markers import hookimpl
from plugins.activations.rectifiers import Identity, LeakyRelu, Relu
from plugins.activations.saturating import Sigmoid, Tanh

BUILTIN: list[type[Activation]] = [Identity, Sigmoid, Tanh, Relu, LeakyRelu]


@hookimpl
def register_activations() -> list[type[Activation]]:
    return list(BUILTIN)
