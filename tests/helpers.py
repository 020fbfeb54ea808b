"""Small experiments and paths shared by the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"


def xor_config(**overrides: Any) -> dict[str, Any]:
    """The xor experiment as a dict, short enough for unit tests."""
    config: dict[str, Any] = {
        "name": "xor-test",
        "seed": 0,
        "data": {"name": "xor", "validation_split": 0, "standardize": False},
        "model": {"layers": [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]},
        "loss": {"name": "mse"},
        "optimizer": {"name": "sgd", "lr": 1.0},
        "training": {"epochs": 3, "batch_size": 4, "shuffle": False},
        "tracking": {"enabled": False},
    }
    config.update(overrides)
    return config


def digits_config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": "digits-test",
        "seed": 0,
        "data": {"name": "digits", "validation_split": 0.2},
        "model": {"layers": [{"units": 32, "activation": "relu"}, {"units": 10}]},
        "loss": {"name": "cross_entropy"},
        "optimizer": {"name": "momentum", "lr": 0.05, "momentum": 0.9},
        "training": {"epochs": 2, "batch_size": 32},
        "tracking": {"enabled": False},
    }
    config.update(overrides)
    return config
