"""What a figure shows, as data: rows of panels of lines of points, with no drawing here
(:mod:`gradbench.report.plot` draws it)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gradbench.report.format import BEST_MARK

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
    """One panel of a row: a quantity (variance, bias, time, work×variance) of every line."""

    title: str
    y_label: str
    lines: list[Line]
    note: str = ""
    #: The panel the ★ ranks by (work×variance): its starred points are drawn as stars.
    ranks: bool = False


@dataclass(frozen=True)
class Row:
    """One objective (configuration): its panels side by side."""

    title: str
    panels: list[Panel]
    #: A comparison's line keys at positions 0, 1, …; None for a sweep.
    categories: list[str] | None = None
    #: A comparison's line keys with the ★ (the table's ``best``), marked in every panel.
    starred: list[str] = field(default_factory=list)

    def category_labels(self) -> list[str]:
        """The labels of a comparison's positions: each line key, ``★ key`` where starred."""
        starred = set(self.starred)
        return [f"{BEST_MARK} {key}" if key in starred else key for key in self.categories or []]


@dataclass(frozen=True)
class FigureData:
    """A whole figure: its rows, the x axis, the caption and the notes."""

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
    #: A sweep's major x ticks (its grid values, thinned past a few on a log axis) and their
    #: labels; empty: the drawing's own ticks (a comparison, or a long linear grid).
    x_ticks: list[float] = field(default_factory=list)
    x_tick_labels: list[str] = field(default_factory=list)
