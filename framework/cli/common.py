"""What the commands share: error handling, the consoles, options."""

from __future__ import annotations

import contextlib
import signal
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any, NoReturn

import typer


@dataclass
class _State:
    debug: bool = False


state = _State()

EXIT_USER_ERROR = 2
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130


def fail(message: str, code: int = EXIT_USER_ERROR) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that the run ends like a Ctrl-C (tracked as KILLED)."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated("terminated by SIGTERM")


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn expected failures into one clear message and an exit code; tracebacks only with --debug."""
    from framework.errors import UserError

    previous: Any = signal.signal(signal.SIGTERM, _on_sigterm)
    # Ctrl-C must interrupt even when we were started with SIGINT ignored (a background job of a
    # non-interactive shell inherits SIG_IGN, and Python then installs no KeyboardInterrupt handler).
    previous_int: Any = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    except UserError as exc:
        if state.debug:
            traceback.print_exc()
        fail(str(exc))
    except KeyboardInterrupt as exc:
        if state.debug:
            traceback.print_exc()
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        typer.echo(f"{what}: training stopped; the run was recorded as KILLED", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        if state.debug:
            traceback.print_exc()
        notes = " ".join(getattr(exc, "__notes__", []))
        where = f" {notes}" if notes else ""
        typer.echo(f"error: {type(exc).__name__}: {exc}{where}", err=True)
        if not state.debug:
            typer.echo("(run with --debug for the traceback)", err=True)
        raise typer.Exit(EXIT_FAILURE) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        sys.stdout.flush()
