"""Figures of results (``gradbench plot``, ``--plot``): PNG or SVG with matplotlib.

matplotlib is the optional ``plot`` extra and is imported here only, inside the functions that
draw; drawing uses the Agg canvas directly, never pyplot, so it changes no global state. What
the figure shows is computed in :mod:`gradbench.report.figure.build`; this module only draws it:

* variance panels: measured points with their band (filled), the exact variance dashed in the
  same colour where known; a thin solid line joins the points of a line without exact curve;
* bias panel: ‖ḡ − g*‖, filled markers where distinguishable from zero, hollow where not;
* time panel: median seconds per estimate with the band of the timing repeats;
* for a comparison, one position per estimator with error bars, the exact value as a black bar,
  a work×variance panel, ``★`` (in bold) on the tick labels of the starred estimators in every
  panel and a star for their point in the work×variance panel;
* for a sweep, major x ticks at the positions and labels the model gives (its grid values).
"""

from __future__ import annotations

import io
import math
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gradbench.core.errors import InputError
from gradbench.records.files import write_atomic

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from gradbench.report.figure.build import FigureData, Line, Panel, Row

FORMATS = {".png": "png", ".svg": "svg"}
INSTALL_HINT = "install it with: pip install 'gradbench[plot]'"
PANEL_SIZE = (3.7, 2.8)  # inches per panel
#: The log-scale panels show at most this many decades below their largest value, so a value
#: that is zero up to rounding (1e-32) does not flatten the rest; and at least MIN_DECADES.
DECADES = 7
MIN_DECADES = 1.2
BELOW_AXIS = (
    f"▼ on the bottom edge: a value of zero, or more than {DECADES} decades below the panel's"
    " largest (not to scale)."
)


def require_matplotlib() -> None:
    """Raise :class:`InputError` with the install line when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InputError(f"plotting needs matplotlib; {INSTALL_HINT}") from None


def figure_format(path: Path, flag: str = "--out") -> str:
    """``png`` or ``svg`` from the output's suffix."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"{flag} {str(path)!r}: unknown figure suffix {path.suffix or '(none)'!r};"
            f" valid: {', '.join(FORMATS)}"
        )
    return fmt


def write_figure(data: FigureData, path: Path) -> None:
    """Draw ``data`` and write it to ``path`` (.png or .svg) atomically."""
    fmt = figure_format(path)
    require_matplotlib()
    figure = draw(data)
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {}  # reproducible SVG
    figure.savefig(buffer, format=fmt, dpi=150, metadata=metadata)
    write_atomic(path, buffer.getvalue())


def draw(data: FigureData) -> Figure:
    """The figure: a legend on top, one row of panels per objective, the caption below."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = max(len(row.panels) for row in data.rows)
    width = PANEL_SIZE[0] * columns
    caption = textwrap.fill(data.caption, width=int(width * 16))
    caption_height = 0.2 + 0.14 * (caption.count("\n") + 2)
    heights = [0.45, *([PANEL_SIZE[1]] * len(data.rows)), caption_height]
    figure = Figure(figsize=(width, sum(heights)), layout="constrained")
    FigureCanvasAgg(figure)
    legend, *rows, footer = figure.subfigures(len(heights), 1, height_ratios=heights)
    colours = {key: f"C{i % 10}" for i, key in enumerate(data.keys)}
    marked = False
    for row, subfigure in zip(data.rows, rows, strict=True):
        subfigure.suptitle(row.title, x=0.01, ha="left", fontsize=10, fontweight="bold")
        axes = subfigure.subplots(1, columns, squeeze=False)[0]
        for ax, panel in zip(axes, row.panels, strict=False):
            marked = _draw_panel(ax, panel, row, data, colours) or marked
        for ax in axes[len(row.panels) :]:
            ax.set_visible(False)
    _draw_legend(legend, data, colours)
    if marked:
        caption += f"\n{BELOW_AXIS}"
    footer.text(0.01, 0.95, caption, ha="left", va="top", fontsize=8)
    return figure


def _draw_panel(ax: Axes, panel: Panel, row: Row, data: FigureData, colours: dict) -> bool:
    """Draw one panel of ``row``; whether it marked values under its axis."""
    categories = row.categories
    ax.set_title(panel.title, fontsize=9)
    ax.set_ylabel(panel.y_label, fontsize=8)
    ax.set_yscale("log", nonpositive="clip")
    ax.tick_params(which="both", labelsize=7)
    ax.grid(True, which="major", alpha=0.3)
    positions = []
    for line in panel.lines:
        if categories is None:
            _draw_sweep_line(ax, line, colours[line.key])
            positions.append(line.points.x)
        else:
            position = categories.index(line.key)
            star = panel.ranks and line.key in row.starred
            _draw_category(ax, line, colours[line.key], position, star)
            positions.append(np.full_like(line.points.y, position))
    if categories is None:
        _sweep_x_axis(ax, data)
    else:
        ax.set_xticks(
            range(len(categories)), row.category_labels(), rotation=40, ha="right", fontsize=7
        )
        for key, label in zip(categories, ax.get_xticklabels(), strict=True):
            if key in row.starred:
                label.set_fontweight("bold")
        ax.set_xlim(-0.6, len(categories) - 0.4)
    _fit_log_limits(ax, panel)
    if panel.note:
        ax.text(0.5, 0.5, panel.note, transform=ax.transAxes, ha="center", va="center")
    marks = [
        _mark_below(ax, x, line.points.y, colours[line.key])
        for x, line in zip(positions, panel.lines, strict=True)
    ]
    return any(marks)


def _sweep_x_axis(ax: Axes, data: FigureData) -> None:
    """The swept parameter's axis: log or linear, major ticks at the model's positions (its grid
    values) with its labels and no minor ticks; matplotlib's own ticks where it gives none."""
    from matplotlib.ticker import NullLocator

    ax.set_xlabel(data.x_label or "", fontsize=8)
    if data.log_x:
        ax.set_xscale("log")  # after this: the scale resets the locators
    if data.x_ticks:
        ax.set_xticks(data.x_ticks, data.x_tick_labels)
        ax.xaxis.set_minor_locator(NullLocator())


def _draw_sweep_line(ax: Axes, line: Line, colour: str) -> None:
    """One line along the swept parameter: points (filled or hollow by significance in a bias
    panel), its band, and the exact curve dashed where known."""
    p = line.points
    significant = p.significant
    if significant is not None:  # bias: filled where distinguishable from zero
        ax.plot(p.x, p.y, color=colour, lw=0.8, alpha=0.6)
        faces = np.where(significant, colour, "none")
        ax.scatter(p.x, p.y, s=16, facecolors=faces, edgecolors=colour, linewidths=1, zorder=3)
    else:
        has_exact = line.exact_x is not None
        ax.plot(p.x, p.y, "o", ls="none" if has_exact else "-", color=colour, ms=3.5, lw=0.8)
    band = np.isfinite(p.low) & np.isfinite(p.high)
    if band.any():
        ax.fill_between(p.x[band], p.low[band], p.high[band], color=colour, alpha=0.18, lw=0)
    if line.exact_x is not None:
        ax.plot(line.exact_x, line.exact_y, "--", color=colour, lw=1.2)


def _draw_category(ax: Axes, line: Line, colour: str, position: int, star: bool) -> None:
    """One estimator at its position: the point with its error bar (hollow where a bias is not
    distinguishable from zero; a large star where ``star``), the exact value as a black bar."""
    p = line.points
    below, above = np.clip(p.y - p.low, 0, None), np.clip(p.high - p.y, 0, None)
    error = None if np.isnan(below + above).all() else np.vstack([below, above])
    faces: Any = colour
    if p.significant is not None and not p.significant.all():
        faces = "none"
    x = np.full_like(p.y, position)
    marker, size = ("*", 11) if star else ("o", 5)
    ax.errorbar(
        x,
        p.y,
        yerr=error,
        fmt=marker,
        color=colour,
        mfc=faces,
        ms=size,
        capsize=3,
        lw=1,
        mec=colour,
    )
    if line.exact_x is not None:
        ax.plot([position], line.exact_y, "_", color="black", ms=16, mew=1.6, zorder=4)


def _fit_log_limits(ax: Axes, panel: Panel) -> None:
    """Log limits around the panel's positive values: at most DECADES below the largest, at
    least MIN_DECADES wide (so that ticks land on powers of ten), with a margin."""
    arrays = [
        values
        for line in panel.lines
        for values in (line.points.y, line.points.low, line.points.high, line.exact_y)
        if values is not None
    ]
    values = np.concatenate(arrays) if arrays else np.array([])
    values = values[np.isfinite(values) & (values > 0)]
    if not values.size:
        return
    high = math.log10(values.max())
    low = max(math.log10(values.min()), high - DECADES)
    widen = max(MIN_DECADES - (high - low), 0) / 2 + 0.05 * (high - low) + 0.05
    ax.set_ylim(10 ** (low - widen), 10 ** (high + widen))


def _mark_below(ax: Axes, x: np.ndarray, y: np.ndarray, colour: str) -> bool:
    """▼ on the bottom edge for values under the axis (zero, or rounding noise such as 1e-32
    more than DECADES below the rest), which a log scale would drop silently. Whether any."""
    below = np.isfinite(y) & (y < ax.get_ylim()[0])
    if below.any():
        ax.plot(
            x[below],
            np.full(below.sum(), 0.03),
            "v",
            color=colour,
            ms=6,
            transform=ax.get_xaxis_transform(),
            clip_on=False,
        )
    return bool(below.any())


def _draw_legend(subfigure: Any, data: FigureData, colours: dict) -> None:
    """One entry per line key in its colour, and the exact variance's style where drawn."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colours[key], marker="o", ms=4, lw=1) for key in data.keys]
    labels = list(data.keys)
    if data.has_exact:
        style = (
            {"color": "black", "ls": "--", "lw": 1.2}
            if data.x_label
            else {"color": "black", "marker": "_", "ms": 12, "mew": 1.6, "ls": "none"}
        )
        handles.append(Line2D([], [], **style))
        labels.append("exact variance")
    subfigure.legend(
        handles, labels, loc="center", ncols=min(len(labels), 8), frameon=False, fontsize=8
    )
