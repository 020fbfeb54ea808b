"""backprop: a plugin-based neural-network training framework on numpy.

This module is the public API; everything else may move between releases. Names are imported on first
use (PEP 562), so that `import framework.cli` (and `backprop --help`) does not pay for numpy and pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "fit": "framework.api",
    "Activation": "framework.components",
    "Array": "framework.components",
    "Callback": "framework.components",
    "Component": "framework.components",
    "ComponentSpec": "framework.components",
    "DataBundle": "framework.components",
    "Dataset": "framework.components",
    "Initializer": "framework.components",
    "Layer": "framework.components",
    "Loss": "framework.components",
    "Metric": "framework.components",
    "Optimizer": "framework.components",
    "OptimizerParams": "framework.components",
    "Params": "framework.components",
    "component_field": "framework.components",
    "Experiment": "framework.config",
    "ConfigError": "framework.errors",
    "UserError": "framework.errors",
    "hookimpl": "framework.markers",
    "Dense": "framework.model",
    "Model": "framework.model",
    "FitResult": "framework.trainer",
    "History": "framework.trainer",
    "Trainer": "framework.trainer",
}

__all__ = [
    "Activation",
    "Array",
    "Callback",
    "Component",
    "ComponentSpec",
    "ConfigError",
    "DataBundle",
    "Dataset",
    "Dense",
    "Experiment",
    "FitResult",
    "History",
    "Initializer",
    "Layer",
    "Loss",
    "Metric",
    "Model",
    "Optimizer",
    "OptimizerParams",
    "Params",
    "Trainer",
    "UserError",
    "__version__",
    "component_field",
    "fit",
    "hookimpl",
]

if TYPE_CHECKING:
    from framework.api import fit
    from framework.components import (
        Activation,
        Array,
        Callback,
        Component,
        ComponentSpec,
        DataBundle,
        Dataset,
        Initializer,
        Layer,
        Loss,
        Metric,
        Optimizer,
        OptimizerParams,
        Params,
        component_field,
    )
    from framework.config import Experiment
    from framework.errors import ConfigError, UserError
    from framework.markers import hookimpl
    from framework.model import Dense, Model
    from framework.trainer import FitResult, History, Trainer


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'framework' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__
