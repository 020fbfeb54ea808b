"""The built-in activations, one class per rule, grouped by family:

- `rectifiers` (piecewise linear): identity, relu, leaky_relu, relu6;
- `saturating` (bounded at both ends): sigmoid, tanh, hard_sigmoid, hard_tanh, softsign;
- `smooth` (smooth relatives of relu, and e^z): elu, selu, gelu, softplus, silu (alias swish), mish, exponential;
- `softmax`: softmax over the units of each row (not element-wise).

Each class's docstring states f(z) and f'(z). `forward` calls the formula in `framework.functional` (numpy
alone, shipped with MLflow models so that they predict without backprop); `backward` turns dL/da into dL/dz
beside it, reusing `grad`'s memory and buffers kept across batches (`scratch.Scratch`). Both keep the dtype
of their inputs.

At a kink the derivative is the left one: relu'(0) = 0 and leaky_relu'(0) = negative_slope (as PyTorch and
TensorFlow do), relu6'(6) = 1, hard_tanh'(min_value) = 0 and hard_tanh'(max_value) = 1, hard_sigmoid'(−3) = 0
and hard_sigmoid'(3) = 1/6, elu'(0) = α and selu'(0) = λα.

`default_init` (what `init = "auto"` picks): he_normal for the relu family (relu, leaky_relu, relu6, elu,
gelu, silu/swish, mish), lecun_normal for selu, glorot_uniform for the others.
"""

from __future__ import annotations

from framework.components import Activation
from framework.markers import hookimpl
from plugins.activations.rectifiers import Identity, LeakyRelu, Relu, Relu6
from plugins.activations.saturating import HardSigmoid, HardTanh, Sigmoid, Softsign, Tanh
from plugins.activations.smooth import Elu, Exponential, Gelu, Mish, Selu, Silu, Softplus, Swish
from plugins.activations.softmax import Softmax

BUILTIN: list[type[Activation]] = [
    Identity,
    Sigmoid,
    Tanh,
    Relu,
    LeakyRelu,
    Relu6,
    HardSigmoid,
    HardTanh,
    Softsign,
    Elu,
    Selu,
    Gelu,
    Softplus,
    Silu,
    Swish,
    Mish,
    Exponential,
    Softmax,
]


@hookimpl
def register_activations() -> list[type[Activation]]:
    return list(BUILTIN)
