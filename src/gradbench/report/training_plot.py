"""The figure of a training run (``gradbench train --plot``): PNG or SVG with matplotlib.

One row of panels per objective:

* J(θ) against the step, and J(θ) against the wall time of the gradient steps: one line per
  trained estimator, the mean over seeds; with two or more seeds a band of ± one standard error
  of that mean (std/√R), with one seed a band of ±1.96·se of the estimate of J where it has one;
* where the basket has measured rows: the variance (trace of the covariance of one estimate)
  against the step, log scale. Solid: each basket estimator along its own trajectory, with the
  band of its interval when there is one seed; thin dashed (only with at most
  :data:`MAX_DASHED_TRAJECTORIES` trained estimators): every other basket estimator along each
  trajectory, the trajectory marked by its marker.

The colour of an estimator is the same in every panel (a fixed cycle over the names sorted).
matplotlib is the optional ``plot`` extra, imported only inside the function that draws; drawing
uses the Agg canvas directly, never pyplot, so it changes no global state.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gradbench.core.errors import InputError
from gradbench.records.files import write_atomic
from gradbench.report.plot import figure_format

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MISSING_MATPLOTLIB = "--plot needs matplotlib: pip install 'gradbench[plot]'"
PANEL_SIZE = (3.9, 2.9)  # inches per panel
#: Other basket estimators along each trajectory are drawn only up to this many trained ones.
MAX_DASHED_TRAJECTORIES = 4
#: One marker per trajectory for the dashed basket lines (in the order of the trained names).
TRAJECTORY_MARKERS = ("o", "s", "^", "D")
Z_95 = 1.96
LEGEND_COLUMNS = 4


def write_training_figure(table: pd.DataFrame, basket: pd.DataFrame | None, path: Path) -> None:
    """Draw the checkpoints of ``table`` (and the measured rows of ``basket``) and write the
    figure to ``path`` (.png or .svg) atomically."""
    path = Path(path)
    fmt = figure_format(path, flag="--plot")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InputError(MISSING_MATPLOTLIB) from None
    if table is None or table.empty:
        raise InputError("--plot: the training run has no checkpoints to draw")
    figure = draw_training(table, basket)
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {}  # reproducible SVG
    figure.savefig(buffer, format=fmt, dpi=150, metadata=metadata)
    write_atomic(path, buffer.getvalue())


def draw_training(table: pd.DataFrame, basket: pd.DataFrame | None) -> Figure:
    """The figure: the legend on top, one row of panels per objective, a caption below."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if "status" in table:  # a skipped trajectory has no checkpoint to draw
        table = table[table["status"] != "skipped"]
    measured = _measured(basket)
    trained = sorted(table["estimator"].astype(str).unique())
    dashed = len(trained) <= MAX_DASHED_TRAJECTORIES
    drawn_dashed = dashed and _has_other_pairs(measured)
    # The names drawn: the basket's others only where their dashed lines are.
    others = set(measured["basket_estimator"].astype(str)) if drawn_dashed else set()
    names = sorted(set(trained) | others)
    colours = {name: f"C{i % 10}" for i, name in enumerate(names)}
    markers = {
        name: TRAJECTORY_MARKERS[i % len(TRAJECTORY_MARKERS)] for i, name in enumerate(trained)
    }
    objectives = list(dict.fromkeys(table["objective"].astype(str)))
    columns = 3 if not measured.empty else 2

    caption = _caption(table, measured, dashed)
    width = PANEL_SIZE[0] * columns
    entries = len(names) + (0 if measured.empty else 1) + (len(trained) if drawn_dashed else 0)
    legend_rows = math.ceil(entries / min(entries, LEGEND_COLUMNS))
    heights = [
        0.25 + 0.22 * legend_rows,
        *([PANEL_SIZE[1]] * len(objectives)),
        0.2 + 0.15 * len(caption),
    ]
    figure = Figure(figsize=(width, sum(heights)), layout="constrained")
    FigureCanvasAgg(figure)
    legend, *rows, footer = figure.subfigures(len(heights), 1, height_ratios=heights)
    for objective, subfigure in zip(objectives, rows, strict=True):
        subfigure.suptitle(objective, x=0.01, ha="left", fontsize=10, fontweight="bold")
        axes = subfigure.subplots(1, columns, squeeze=False)[0]
        rows_of = table[table["objective"].astype(str) == objective]
        label = _j_label(rows_of)
        _draw_objective(axes[0], rows_of, "step", colours, label)
        axes[0].set_title("J(θ) by step", fontsize=9)
        axes[0].set_xlabel("step", fontsize=8)
        _draw_objective(axes[1], rows_of, "wall_time_s", colours, label)
        axes[1].set_title("J(θ) by wall time", fontsize=9)
        axes[1].set_xlabel("wall time of the gradient steps (s)", fontsize=8)
        if columns == 3:
            basket_of = measured[measured["objective"].astype(str) == objective]
            _draw_basket(axes[2], basket_of, colours, markers, dashed)
    _draw_legend(legend, names, trained, colours, markers, not measured.empty, drawn_dashed)
    footer.text(0.01, 0.95, "\n".join(caption), ha="left", va="top", fontsize=7.5)
    return figure


def _measured(basket: pd.DataFrame | None) -> pd.DataFrame:
    """The basket's ``ok`` rows with a positive, finite variance (the log axis shows no other)."""
    columns = ["objective", "estimator", "seed", "step", "basket_estimator", "variance"]
    if basket is None or basket.empty or "status" not in basket:
        return pd.DataFrame(columns=columns)
    rows = basket[basket["status"] == "ok"].copy()
    variance = pd.to_numeric(rows["variance"], errors="coerce")
    rows = rows[np.isfinite(variance) & (variance > 0)]
    for column in ("variance_ci_low", "variance_ci_high"):
        if column not in rows:
            rows[column] = math.nan
    return rows


def _has_other_pairs(measured: pd.DataFrame) -> bool:
    return bool((measured["basket_estimator"] != measured["estimator"]).any())


def _j_label(rows: pd.DataFrame) -> str:
    """``J(θ) (maximised)`` or ``(minimised)`` from the objective's ``direction``."""
    directions = set(rows["direction"].dropna().astype(str)) if "direction" in rows else set()
    if directions == {"maximise"}:
        return "J(θ) (maximised)"
    if directions == {"minimise"}:
        return "J(θ) (minimised)"
    return "J(θ)"


def _draw_objective(ax: Axes, rows: pd.DataFrame, x: str, colours: dict, y_label: str) -> None:
    """One line per estimator: the mean over seeds at each step, with its band."""
    _style(ax)
    ax.set_ylabel(y_label, fontsize=8)
    for estimator, group in rows.groupby(rows["estimator"].astype(str), sort=True):
        line = _mean_over_seeds(group)
        colour = colours[estimator]
        ax.plot(
            line[x], line["mean"], color=colour, lw=1.3, marker="o", ms=2.5, markevery=_every(line)
        )
        band = np.isfinite(line["low"]) & np.isfinite(line["high"])
        if band.any():
            ax.fill_between(
                line[x][band], line["low"][band], line["high"][band], color=colour, alpha=0.18, lw=0
            )
    optimum = _optimum(rows)
    if optimum is not None:
        ax.axhline(optimum, color="0.35", ls=":", lw=1)


def _optimum(rows: pd.DataFrame) -> float | None:
    """The objective's optimal J where the table knows it (the ``optimum`` column)."""
    if "optimum" not in rows:
        return None
    known = pd.to_numeric(rows["optimum"], errors="coerce").dropna()
    return float(known.iloc[0]) if len(known) else None


def _mean_over_seeds(group: pd.DataFrame) -> pd.DataFrame:
    """Per step: the mean of J over seeds, the mean wall time, and the band's ends (± the
    standard error over seeds with two or more, ±1.96·se of the one seed's estimate)."""
    values = pd.to_numeric(group["objective_value"], errors="coerce")
    se = (
        pd.to_numeric(group["objective_value_se"], errors="coerce")
        if "objective_value_se" in group
        else pd.Series(math.nan, index=group.index)
    )
    frame = pd.DataFrame(
        {"step": group["step"], "wall_time_s": group["wall_time_s"], "value": values, "se": se}
    )
    by_step = frame.groupby("step", sort=True)
    line = by_step.agg(
        wall_time_s=("wall_time_s", "mean"),
        mean=("value", "mean"),
        std=("value", "std"),
        count=("value", "count"),
        se=("se", "first"),
    ).reset_index()
    count = line["count"].to_numpy()
    half = np.where(
        count >= 2,
        line["std"].to_numpy() / np.sqrt(np.maximum(count, 1)),
        Z_95 * line["se"].to_numpy(dtype=float),
    )
    line["low"] = line["mean"] - half
    line["high"] = line["mean"] + half
    return line


def _draw_basket(ax: Axes, rows: pd.DataFrame, colours: dict, markers: dict, dashed: bool) -> None:
    """The basket's variance along the trajectories, log scale: solid for each basket estimator
    along its own trajectory (its interval shaded with one seed), thin dashed for the others."""
    _style(ax)
    ax.set_title("basket variance by step", fontsize=9)
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel("variance of one estimate (trace)", fontsize=8)
    ax.set_yscale("log", nonpositive="clip")
    if rows.empty:
        ax.text(
            0.5,
            0.5,
            "no measured basket rows",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=8,
            color="0.4",
        )
        return
    keys = [rows["estimator"].astype(str), rows["basket_estimator"].astype(str)]
    for (trained, measured), group in rows.groupby(keys, sort=True):
        own = trained == measured
        if not own and not dashed:
            continue
        seeds = group["seed"].nunique()
        line = group.groupby("step", sort=True).agg(
            variance=("variance", "mean"),
            low=("variance_ci_low", "mean"),
            high=("variance_ci_high", "mean"),
        )
        steps = line.index.to_numpy()
        colour = colours.get(measured, "black")
        if own:
            ax.plot(steps, line["variance"], color=colour, lw=1.5, zorder=3)
            band = np.isfinite(line["low"]) & np.isfinite(line["high"]) & (line["low"] > 0)
            if seeds == 1 and band.any():
                ax.fill_between(
                    steps[band],
                    line["low"][band],
                    line["high"][band],
                    color=colour,
                    alpha=0.18,
                    lw=0,
                )
        else:
            ax.plot(
                steps,
                line["variance"],
                color=colour,
                lw=0.8,
                ls="--",
                alpha=0.8,
                marker=markers.get(trained, "x"),
                ms=3,
                mfc="none",
                markevery=_every(line),
            )
    _log_ticks(ax)


def _log_ticks(ax: Axes) -> None:
    """Plain-number labels at 1-2-5 (or 1-2-3-5) of each decade when the log axis spans less
    than two decades, where matplotlib's default leaves one label or none."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    low, high = ax.get_ylim()
    if not (0 < low < high) or math.log10(high / low) >= 2:
        return
    subs = (1.0, 2.0, 5.0) if math.log10(high / low) >= 1 else (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.3g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _every(line: pd.DataFrame) -> int:
    """Mark about ten checkpoints of a line, so long runs stay readable."""
    return max(1, len(line) // 10)


def _style(ax: Axes) -> None:
    ax.tick_params(which="both", labelsize=7)
    ax.grid(True, which="major", alpha=0.3)


def _draw_legend(
    subfigure: Any,
    names: list[str],
    trained: list[str],
    colours: dict,
    markers: dict,
    basket: bool,
    dashed: bool,
) -> None:
    """One entry per estimator in its colour; the basket panel's line styles where drawn."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colours[name], lw=2) for name in names]
    labels = list(names)
    if basket:
        handles.append(Line2D([], [], color="black", lw=1.5))
        labels.append("basket: along its own trajectory")
    if dashed:
        for name in trained:
            handles.append(
                Line2D(
                    [], [], color="black", lw=0.8, ls="--", marker=markers[name], ms=3, mfc="none"
                )
            )
            labels.append(f"basket: along {name}'s trajectory")
    subfigure.legend(
        handles,
        labels,
        loc="center",
        ncols=min(len(labels), LEGEND_COLUMNS),
        frameon=False,
        fontsize=8,
    )


def _caption(table: pd.DataFrame, measured: pd.DataFrame, dashed: bool) -> list[str]:
    """What the lines and bands are, for the seed counts this table has."""
    seeds = table.groupby(["objective", "estimator"])["seed"].nunique()
    lines = []
    if (seeds >= 2).any():
        lines.append("J(θ): mean over seeds; band ± one standard error of that mean (std/√R).")
    if (seeds == 1).any():
        lines.append("J(θ) with one seed: band ±1.96·se of the estimate of J where it has one.")
    if any(_optimum(rows) is not None for _, rows in table.groupby("objective")):
        lines.append("Dotted grey: the optimum of J (its infimum or supremum), where it is known.")
    if not measured.empty:
        text = "Basket variance: solid, each estimator along its own trajectory"
        if dashed and _has_other_pairs(measured):
            text += "; thin dashed, along another's trajectory (marker: the trajectory)"
        lines.append(text + "; mean over seeds, interval shaded with one seed.")
    return lines
