"""The x axis of a figure: the swept parameter (a ``param_*`` column), and whether its grid is
drawn in log."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gradbench.core.errors import InputError

AXIS_PREFIX = "param_"


def swept_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith(AXIS_PREFIX)]


def choose_axis(ok: pd.DataFrame, x: str | None) -> str | None:
    axes = swept_columns(ok)
    if x is None:
        numeric = [a for a in axes if pd.api.types.is_numeric_dtype(ok[a])]
        return next((a for a in numeric if ok[a].nunique() > 1), None)
    name = x if x.startswith(AXIS_PREFIX) else AXIS_PREFIX + x
    if name not in axes:
        valid = ", ".join(a.removeprefix(AXIS_PREFIX) for a in axes) or "none (not a sweep)"
        raise InputError(f"--x {x!r} is not a swept parameter of this result; valid: {valid}")
    if not pd.api.types.is_numeric_dtype(ok[name]):
        raise InputError(f"--x {x!r}: its values are not numbers")
    return name


def is_log_spaced(values: np.ndarray) -> bool:
    """Whether the distinct values are positive and more evenly spaced in log than linearly
    (a log scan, or a list such as 0.1, 0.2, 0.5, 1, 2, 5, 10): their axis is drawn in log."""
    grid = np.unique(values)
    if len(grid) < 3 or (grid <= 0).any():
        return False

    def unevenness(steps: np.ndarray) -> float:
        return float(np.std(steps) / np.mean(steps))

    return unevenness(np.diff(np.log(grid))) < unevenness(np.diff(grid))
