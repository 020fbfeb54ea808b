"""The built-in layers: the Dense layer, defined in the core (`framework.model`) and registered here."""

from __future__ import annotations

from framework.components import Layer
from framework.markers import hookimpl
from framework.model import Dense


@hookimpl
def register_layers() -> list[type[Layer]]:
    return [Dense]
