"""Slow work a tracked run will need, started first thing by `backprop run` (entry-point group `backprop.warm_up`).

A command of a second spends its time in imports. Some of that can run on the other core while the run parses
its config, loads its plugins and data and trains: the tracking plugin starts its painter process here, which
imports matplotlib for the run's pictures (plugins/painter.py). Each entry point names a callable
without arguments, in a module that is cheap to import (this runs before the plugins are loaded). A warm-up is
an optimisation: one that fails is logged and costs the run nothing but its head start.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)

GROUP = "backprop.warm_up"


def start(disabled: Iterable[str] = ()) -> list[str]:
    """Call every warm-up of the installed plugins, except those of `disabled` plugins; the names called."""
    skip = set(disabled)
    called = []
    for ep in sorted(importlib.metadata.entry_points(group=GROUP), key=lambda ep: ep.name):
        if ep.name in skip or ep.name in called:
            continue
        try:
            ep.load()()
        except Exception as exc:
            log.info("warm-up %r (%s) failed: %s: %s", ep.name, ep.value, type(exc).__name__, exc)
            continue
        called.append(ep.name)
    return called
