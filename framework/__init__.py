"""backprop: a plugin-based neural-network training framework on numpy.

This module is the public API; everything else may move between releases.
"""

from __future__ import annotations

from framework.api import fit
from framework.components import (
    Activation,
    Array,
    Callback,
    Component,
    DataBundle,
    Dataset,
    Layer,
    Loss,
    Metric,
    Optimizer,
    OptimizerParams,
    Params,
)
from framework.config import Experiment
from framework.errors import ConfigError, UserError
from framework.markers import hookimpl
from framework.model import Dense, Model
from framework.trainer import FitResult, History, Trainer

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "Array",
    "Callback",
    "Component",
    "ConfigError",
    "DataBundle",
    "Dataset",
    "Dense",
    "Experiment",
    "FitResult",
    "History",
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
    "fit",
    "hookimpl",
]
