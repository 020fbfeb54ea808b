"""The pluggy markers of the `backprop` project: `hookimpl` for plugins, `hookspec` for the core."""

from __future__ import annotations

import pluggy

PROJECT = "backprop"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
