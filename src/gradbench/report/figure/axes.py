"""The x axis of a figure: the swept parameter (a ``param_*`` column), and whether its grid is
drawn in log."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gradbench.core.errors import InputError

AXIS_PREFIX = "param_"


def swept_columns(frame: pd.DataFrame) -> list[str]:
    """The ``param_*`` columns of a result: its swept parameters."""
    return [c for c in frame.columns if c.startswith(AXIS_PREFIX)]


def choose_axis(ok: pd.DataFrame, x: str | None) -> str | None:
    """The x axis column: ``x`` (checked: swept and numeric), or the first numeric swept
    parameter that varies; None for a comparison."""
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


#: Labelled x ticks at most: more overlap at the panel width, so a longer grid is thinned.
MAX_TICKS = 8
#: A tick label is the grid value to the fewest significant figures within this relative error.
LABEL_TOLERANCE = 0.03


def grid_ticks(values: np.ndarray, log: bool) -> list[float]:
    """The x ticks of a swept axis: its grid values, every k-th of them on a log axis with more
    than MAX_TICKS (k chosen, where it can be, so that both ends are ticks); none (the drawing's
    own ticks) on a linear axis with more than MAX_TICKS values."""
    grid = np.unique(values[np.isfinite(values)])
    if len(grid) <= MAX_TICKS:
        return grid.tolist()
    if not log:
        return []
    step = -(-len(grid) // MAX_TICKS)  # ceil
    ends = [k for k in (step, step + 1) if (len(grid) - 1) % k == 0]
    return grid[:: ends[0] if ends else step].tolist()


def tick_labels(ticks: list[float]) -> list[str]:
    """Compact labels of ``ticks``: each value to the fewest significant figures that is within
    LABEL_TOLERANCE of it (0.1, 0.22, 0.46, 1, 2.2, 10), with more where two labels would be equal;
    integers below 1e5 exactly, plain decimals from 0.001 to below 1e5, else ``2.5e-7``."""
    for extra in range(4):
        labels = [_compact(value, extra) for value in ticks]
        if len(set(labels)) == len(labels):
            break
    return labels


def _compact(value: float, extra: int) -> str:
    """``value`` to the fewest significant figures within LABEL_TOLERANCE, plus ``extra``; an
    integer below 1e5 as itself (256 particles, not 260)."""
    if float(value).is_integer() and abs(value) < 1e5:
        return str(int(value))
    close = (
        d
        for d in range(1, 7)
        if abs(float(f"{value:.{d}g}") - value) <= LABEL_TOLERANCE * abs(value)
    )
    digits = next(close, 7) + extra
    rounded = float(f"{value:.{digits}g}")
    if rounded == 0 or 1e-3 <= abs(rounded) < 1e5:
        return np.format_float_positional(rounded, trim="-")
    mantissa, exponent = f"{rounded:.{digits - 1}e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
    return f"{mantissa}e{int(exponent)}"
