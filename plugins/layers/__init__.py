"""The built-in layers:

- `dense` (defined in the core, `framework.model.Dense`: the layer every model is made of);
- `dropout` (inverted dropout, training only).
"""

from __future__ import annotations

from framework.components import Layer
from framework.markers import hookimpl
from framework.model import Dense
from plugins.layers.dropout import Dropout

BUILTIN: list[type[Layer]] = [Dense, Dropout]


@hookimpl
def register_layers() -> list[type[Layer]]:
    return list(BUILTIN)
