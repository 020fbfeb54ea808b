"""Calling event hooks: the plugin's name on every error, and nothing at all for unimplemented hooks.

pluggy's own call costs about 1 µs even with no implementation (research/pluggy.md), and a small model's
whole training step is 30-60 µs. So the trainer asks this dispatcher, once per run, for the callers of each
hook: an empty tuple for a hook nobody implements (the trainer then skips it), otherwise the
implementations' functions in pluggy's call order, called directly with the arguments they ask for.
A hook with a wrapper (`wrapper=True`) is called through pluggy so the wrapper semantics hold.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

from framework.hookspecs import EVENT_HOOKS

Caller = tuple[str, Callable[..., Any], tuple[str, ...]]


def _note(error: BaseException, hook: str, plugin: str | None) -> None:
    if isinstance(error, Exception):
        who = f" of plugin {plugin!r}" if plugin else ""
        error.add_note(f"(raised in hook {hook}{who})")
        error.__dict__.setdefault("backprop_plugin", plugin)
        error.__dict__.setdefault("backprop_hook", hook)


class EventDispatcher:
    """The event hooks of one run's plugin manager, resolved once."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self._pm = pm
        self.callers: dict[str, tuple[Caller, ...]] = {}
        self._through_pluggy: set[str] = set()
        for name in EVENT_HOOKS:
            impls = getattr(pm.hook, name).get_hookimpls()
            if any(impl.wrapper or impl.hookwrapper for impl in impls):
                self._through_pluggy.add(name)
            # pluggy calls the implementations in the reverse order of get_hookimpls().
            self.callers[name] = tuple(
                (impl.plugin_name, impl.function, tuple(impl.argnames)) for impl in reversed(impls)
            )

    def has(self, name: str) -> bool:
        return bool(self.callers[name])

    def call(self, name: str, **kwargs: Any) -> list[Any]:
        """Call every implementation of `name`; an exception gets a note naming the plugin and hook."""
        if name in self._through_pluggy:
            try:
                result: list[Any] = getattr(self._pm.hook, name)(**kwargs)
            except BaseException as error:
                _note(error, name, None)
                raise
            return result
        results = []
        for plugin, function, argnames in self.callers[name]:
            try:
                results.append(function(*[kwargs[a] for a in argnames]))
            except BaseException as error:
                _note(error, name, plugin)
                raise
        return results

    def call_all(self, name: str, **kwargs: Any) -> list[BaseException]:
        """Call every implementation even if some fail; return the failures (for `on_fit_error`)."""
        failures: list[BaseException] = []
        for plugin, function, argnames in self.callers[name]:
            try:
                function(*[kwargs[a] for a in argnames])
            except Exception as error:
                _note(error, name, plugin)
                failures.append(error)
        return failures

    def collect_reasons(self, **kwargs: Any) -> list[str]:
        """Ask every `should_stop` implementation; keep the non-empty answers."""
        reasons = []
        for plugin, function, argnames in self.callers["should_stop"]:
            try:
                answer = function(*[kwargs[a] for a in argnames])
            except BaseException as error:
                _note(error, "should_stop", plugin)
                raise
            if answer is None or answer == "":
                continue
            if not isinstance(answer, str):
                raise TypeError(
                    f"plugin {plugin!r}: hook should_stop must return a reason (str) or None, "
                    f"got {type(answer).__name__}"
                )
            reasons.append(answer)
        return reasons
