"""Exceptions that carry a message meant for the user, and the hint for a mistyped name."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class InputError(ValueError):
    """Bad input from the user: an unknown name, an invalid value, an unusable path.

    The message names the bad value and the valid choices; the CLI prints it as one line and
    exits with status 2.
    """


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'gaussian-square'?)`` for the closest of ``choices`` to a mistyped
    ``name`` (difflib's ratio ≥ 0.6), or ``""`` when none is close."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
