"""The built-in layers:

- `dense` (defined in the core, `framework.model.Dense`: the layer every model is made of);
- `dropout` (inverted dropout, training only);
- `batch_norm` (each feature normalised over the batch, with running statistics for inference) and
  `layer_norm` (each sample normalised over its features), in `normalization.py`;
- `gaussian_noise` (additive Gaussian noise, training only), in `noise.py`;
- `activation` (an activation on its own, for dense -> batch_norm -> activation), in `activation.py`.
"""

from __future__ import annotations

from framework.components import Layer
from framework.markers import hookimpl
from framework.model import Dense
from plugins.layers.activation import ActivationLayer
from plugins.layers.dropout import Dropout
from plugins.layers.noise import GaussianNoise
from plugins.layers.normalization import BatchNorm, LayerNorm

BUILTIN: list[type[Layer]] = [Dense, Dropout, BatchNorm, LayerNorm, GaussianNoise, ActivationLayer]


@hookimpl
def register_layers() -> list[type[Layer]]:
    return list(BUILTIN)
