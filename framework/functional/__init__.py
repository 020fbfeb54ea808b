"""The numpy formulas of the built-in components' forward passes, in numpy alone (like `torch.nn.functional`).

The built-in activations, losses and layers call these functions for what they compute at inference, and
MLflow models logged by backprop ship this package (as `backprop_functional`), so that the numpy-only pyfunc
loader predicts bit for bit what backprop predicts, without backprop installed. Hence the rule of this
package: it imports numpy and its own modules only (relative imports), never the rest of backprop.

Every function takes an optional `out` (an array shaped like the input, which may be the input itself
unless said otherwise) and keeps the input's dtype; those that need a second array take an optional `work`
(the layers pass kept buffers, the loader nothing: the arithmetic, and so the bits, are the same). `special.erf`
is scipy's where scipy is importable (imported at the first call), else a numpy port of fdlibm's.
"""

from .activations import ACTIVATIONS, activation_function
from .core import constant, row_max, row_sum, sigmoid, softmax
from .links import LOSS_LINKS
from .normalization import batch_norm, layer_norm

__all__ = [
    "ACTIVATIONS",
    "LOSS_LINKS",
    "activation_function",
    "batch_norm",
    "constant",
    "layer_norm",
    "row_max",
    "row_sum",
    "sigmoid",
    "softmax",
]
