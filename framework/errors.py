"""Errors backprop raises on purpose.

`UserError` and its subclasses are mistakes a user can fix (a bad config, an unknown component, a missing
file): the CLI prints their message on one line and exits with code 2, without a traceback. Everything else
is a bug or a failure of the environment and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A mistake in the user's input; the message says what is wrong and what is allowed."""


class ConfigError(UserError):
    """An experiment file or an override that does not validate."""


class UnknownComponentError(UserError):
    """A component name that no plugin registers."""

    def __init__(self, kind: str, name: str, available: Iterable[str], where: str | None = None) -> None:
        self.kind = kind
        self.name = name
        self.available = sorted(available)
        at = f"{where}: " if where else ""
        message = f"{at}unknown {kind} {name!r}. Available: {', '.join(self.available) or '(none)'}."
        hint = did_you_mean(name, self.available)
        if hint:
            message += f" Did you mean {hint!r}?"
        super().__init__(message)


class ComponentClashError(UserError):
    """Two plugins register the same name for the same kind of component."""


class PluginError(UserError):
    """A plugin that cannot be found, imported or registered, or that breaks a hook's contract."""


class DataError(UserError):
    """Data that cannot be used with the experiment (shape mismatch, non-finite values, ...)."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelt name, if any is close enough."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None
