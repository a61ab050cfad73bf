"""What a figure shows, as data: rows of panels of lines of points, with no drawing here
(:mod:`gradbench.report.plot` draws it)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: The panel of the total variance (the trace), as opposed to one coordinate's (``mu[0]``).
TRACE_PANEL = "(trace)"


@dataclass(frozen=True)
class Points:
    """Measured values at positions ``x`` with a band [low, high] (NaN where there is none)."""

    x: np.ndarray
    y: np.ndarray
    low: np.ndarray
    high: np.ndarray
    #: Whether each point's bias is distinguishable from zero (bias panels only).
    significant: np.ndarray | None = None


@dataclass(frozen=True)
class Line:
    """One line key (an estimator, with the values of other varying axes) in one panel."""

    key: str
    points: Points
    exact_x: np.ndarray | None = None
    exact_y: np.ndarray | None = None


@dataclass(frozen=True)
class Panel:
    title: str
    y_label: str
    lines: list[Line]
    note: str = ""


@dataclass(frozen=True)
class Row:
    title: str
    panels: list[Panel]
    #: A comparison's line keys at positions 0, 1, …; None for a sweep.
    categories: list[str] | None = None


@dataclass(frozen=True)
class FigureData:
    rows: list[Row]
    #: The swept parameter, or None for a comparison.
    x_label: str | None
    log_x: bool
    caption: str
    #: Every line key, in first-seen order, so that colours agree across panels.
    keys: list[str]
    has_exact: bool
    #: (held, total): measured points with an exact value, and those whose band holds it.
    coverage: tuple[int, int] = (0, 0)
    #: Rows left out, exact curves not drawn and the coverage, one line each.
    notes: list[str] = field(default_factory=list)
