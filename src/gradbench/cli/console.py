"""Where the command line writes: data to stdout, one-line diagnostics to stderr."""

from __future__ import annotations

import sys

from rich.console import Console

USAGE_ERROR, RUNTIME_ERROR, INTERRUPTED = 2, 1, 130


def error(message: str) -> None:
    print(f"gradbench: error: {message}", file=sys.stderr)


def warn(message: str) -> None:
    print(f"gradbench: warning: {message}", file=sys.stderr)


def note(message: str) -> None:
    print(message, file=sys.stderr)


def stdout() -> Console:
    """The data console: the terminal's width, or ``COLUMNS`` (80 unset) when piped."""
    return Console()
