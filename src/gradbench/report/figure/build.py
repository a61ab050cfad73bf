"""What a figure of a stored result shows, computed from its tables (no drawing here).

One row of panels per objective, in two layouts:

* a **sweep** (a ``param_*`` column varies): the per-sample variance against the swept parameter,
  one line per estimator with an interval band and, where the estimator knows it
  (:meth:`~gradbench.core.estimator.Estimator.exact_variance`), the exact variance as a dense curve;
  then ‖ḡ − g*‖ with its significance; then the time per estimate. Other swept parameters that
  vary split the lines (``reinforce, sigma=2``).
* a **comparison** without a swept parameter: the same panels, one position per estimator, and
  a fourth: work×variance (variance × seconds per estimate, what the table ranks by), its band
  the variance interval × the median time; the estimators with the ★ (the ``best`` column) are
  marked in every panel of their row.

A sweep's x ticks are its grid values (thinned past a few on a log axis), with compact labels.

With a detail table the variance panel becomes one panel per parameter coordinate (∂/∂mu[0],
∂/∂sigma[0], …), the survey's layout. Bands: with one run per point, the run's 95% jackknife
interval of the variance; with S > 1 replicates, their mean with the same interval over them
(:func:`gradbench.stats.replicates.replicate_variance_interval`).
Rows whose status is not ``ok`` are left out and listed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd

from gradbench.core.errors import InputError
from gradbench.core.status import Status
from gradbench.extend import registry
from gradbench.records.ranking import BIAS_SIGNIFICANCE
from gradbench.records.stored import StoredResult, match_details
from gradbench.report.figure.axes import (
    AXIS_PREFIX,
    choose_axis,
    grid_ticks,
    is_log_spaced,
    swept_columns,
    tick_labels,
)
from gradbench.report.figure.captions import band_coverage, figure_caption, rows_left_out
from gradbench.report.figure.exact_curves import ExactVariances
from gradbench.report.figure.model import TRACE_PANEL, FigureData, Line, Panel, Points, Row
from gradbench.report.format import objective_labels
from gradbench.stats.replicates import (
    combined_bias_p,
    replicate_band,
    replicate_variance_interval,
)

#: The title of a comparison's panel of work×variance (variance × seconds per estimate).
WORK_VARIANCE = "work×variance"
#: Coordinate panels per row at most: one panel per coordinate is readable for a few only.
MAX_COORDINATE_PANELS = 6


def figure_data(stored: StoredResult, x: str | None = None) -> FigureData:
    """The figure of ``stored``: against the swept parameter ``x`` (with or without the
    ``param_`` prefix; default: the first that varies), or a comparison when none varies."""
    table = stored.table
    ok = table[table["status"] == Status.OK].copy()
    if ok.empty:
        raise InputError(f"{stored.source!r}: no row with status ok to plot")
    axis = choose_axis(ok, x)
    left_out = rows_left_out(table)
    if axis:  # objectives without the swept setting have no x
        unswept = ok[axis].isna()
        along = axis.removeprefix(AXIS_PREFIX)
        names = dict.fromkeys(ok.loc[unswept, "objective"])
        left_out += [f"not swept along {along}: {name}" for name in names]
        ok = ok[~unswept]
        if ok.empty:
            raise InputError(f"{stored.source!r}: no row with status ok has a value of {along}")
    others = [c for c in swept_columns(ok) if c != axis and ok[c].nunique() > 1]
    ok["_group"] = ok["objective"] if axis else objective_labels(ok.to_dict("records"))
    ok["_key"] = _line_keys(ok, others)
    ok["_x"] = ok[axis].astype(float) if axis else _positions(ok)
    measured = _variance_source(ok, stored)
    exact = ExactVariances(axis)
    rows = [
        _row(str(group), ok[ok["_group"] == group], measured, exact, categorical=axis is None)
        for group in dict.fromkeys(ok["_group"])
    ]
    replicates = int(ok.groupby(["_group", "_key", "_x"]).size().max())
    held, total = band_coverage(rows)
    coverage = f"the bands hold the exact variance at {held} of {total} points" if total else ""
    log_x = axis is not None and is_log_spaced(ok["_x"].to_numpy())
    ticks = grid_ticks(ok["_x"].to_numpy(dtype=float), log_x) if axis else []
    return FigureData(
        rows=rows,
        x_label=axis.removeprefix(AXIS_PREFIX) if axis else None,
        log_x=log_x,
        caption=figure_caption(
            ok,
            replicates,
            exact.drawn,
            left_out,
            per_coordinate=stored.details is not None,
            categorical=axis is None,
            coverage=coverage,
        ),
        keys=list(dict.fromkeys(ok["_key"])),
        has_exact=exact.drawn,
        coverage=(held, total),
        notes=[f"left out {line}" for line in left_out] + exact.notes + [coverage] * bool(total),
        x_ticks=ticks,
        x_tick_labels=tick_labels(ticks),
    )


def _line_keys(ok: pd.DataFrame, others: list[str]) -> pd.Series:
    """Each row's line key: its estimator, with the values of the other varying parameters."""
    keys = ok["estimator"].astype(str)
    for column in others:
        keys = keys + f", {column.removeprefix(AXIS_PREFIX)}=" + ok[column].map(_text)
    return keys


def _text(value: object) -> str:
    """A parameter value in a line key: numbers as ``%g``."""
    return f"{value:g}" if isinstance(value, int | float | np.number) else str(value)


def _positions(ok: pd.DataFrame) -> pd.Series:
    """A comparison's x: each line key's position in its objective's row."""
    order = {
        group: {key: i for i, key in enumerate(dict.fromkeys(keys))}
        for group, keys in ok.groupby("_group", sort=False)["_key"]
    }
    return pd.Series(
        [float(order[g][k]) for g, k in zip(ok["_group"], ok["_key"], strict=True)], ok.index
    )


def _variance_source(ok: pd.DataFrame, stored: StoredResult) -> pd.DataFrame:
    """Rows of measured variance: the main table's (panel TRACE_PANEL), or the detail table's, one
    per coordinate (panel = its label), each with its main row's ``_group``, ``_key``, ``_x``
    and ``n_used``."""
    context = ["_group", "_key", "_x", "n_used"]
    if stored.details is None:
        return ok.assign(_panel=TRACE_PANEL)
    details = match_details(stored.table, stored.details, stored.source)
    details = details[details["_row"].isin(ok.index)]
    joined = details.join(ok[context], on="_row")
    return joined.rename(columns={"param": "_panel"})


def _row(
    group: str, rows: pd.DataFrame, measured: pd.DataFrame, exact: ExactVariances, categorical: bool
) -> Row:
    """One objective's row: its variance panels, bias and time; a comparison's also work×variance
    and the ★ of its estimators."""
    keys = list(dict.fromkeys(rows["_key"]))
    mine = measured[measured["_group"] == group]
    panels_of = list(dict.fromkeys(mine["_panel"]))
    if len(panels_of) > MAX_COORDINATE_PANELS:
        raise InputError(
            f"{group}: {len(panels_of)} coordinates; per-coordinate panels need at most "
            f"{MAX_COORDINATE_PANELS} (plot without the detail table for the total variance)"
        )
    variance_panels = []
    for panel in panels_of:
        lines = []
        for key in keys:
            values = mine[(mine["_panel"] == panel) & (mine["_key"] == key)]
            if values.empty:
                continue
            curve = exact.curve(rows[rows["_key"] == key], panel)
            lines.append(Line(key, _interval_points(values), *curve))
        title = "variance" if panel == TRACE_PANEL else f"variance of ∂/∂{panel}"
        variance_panels.append(Panel(title, "variance of one estimate", lines))
    bias_lines = [Line(key, _bias_points(rows[rows["_key"] == key])) for key in keys]
    time_lines = [Line(key, _time_points(rows[rows["_key"] == key])) for key in keys]
    timed = any(np.isfinite(line.points.y).any() for line in time_lines)
    not_timed = "" if timed else "not timed"
    panels = [
        *variance_panels,
        Panel("bias", "‖ḡ − g*‖", bias_lines),
        Panel("time per estimate", "seconds", time_lines, note=not_timed),
    ]
    if not categorical:
        return Row(_row_title(group, rows), panels)
    work_lines = [Line(key, _work_variance_points(rows[rows["_key"] == key])) for key in keys]
    panels.append(
        Panel(WORK_VARIANCE, "variance × seconds", work_lines, note=not_timed, ranks=True)
    )
    return Row(_row_title(group, rows), panels, keys, starred=_starred(rows, keys))


def _starred(rows: pd.DataFrame, keys: list[str]) -> list[str]:
    """The line keys with the ★: ``best`` in every one of their rows (each replicate's)."""
    best = rows["best"].eq(True).groupby(rows["_key"]).all()
    return [key for key in keys if best[key]]


def _row_title(group: str, rows: pd.DataFrame) -> str:
    """A row's title: its objective label with the objective's description where registered."""
    name = str(rows["objective"].iloc[0])
    description = registry.objectives.entries().get(name)
    return f"{group}: {description.cls.description}" if description else group


def _points(frame: pd.DataFrame, point: Callable[[pd.DataFrame], tuple]) -> Points:
    """(y, low, high) = ``point(rows at x)`` for each position x, in order."""
    rows = [(x, *point(at)) for x, at in frame.groupby("_x", sort=True)]
    return Points(*np.array(rows, dtype=float).T)


def _estimates(at: pd.DataFrame) -> int:
    """The estimates the replicates at one position used in all; 0 where unknown."""
    if "n_used" not in at:
        return 0
    used = pd.to_numeric(at["n_used"], errors="coerce")
    return 0 if used.isna().any() else int(used.sum())


def _interval_points(frame: pd.DataFrame) -> Points:
    """Variance per position: one run's interval, or the replicates' mean with the same
    interval over replicates (:func:`gradbench.stats.replicates.replicate_variance_interval`)."""

    def point(at: pd.DataFrame) -> tuple:
        values = at["variance"].to_numpy(dtype=float)
        if len(values) == 1:
            return values[0], at["variance_ci_low"].iloc[0], at["variance_ci_high"].iloc[0]
        return replicate_variance_interval(values, _estimates(at))

    return _points(frame, point)


def _bias_points(frame: pd.DataFrame) -> Points:
    """‖bias‖ per position (mean ± t·SE over replicates), significant when the smallest p-value
    of its S replicates, Bonferroni-corrected (× S), is below the table's threshold."""

    def point(at: pd.DataFrame) -> tuple:
        values = at["bias_norm"].to_numpy(dtype=float)
        mean, half = replicate_band(values)
        return mean, mean - half, mean + half

    significant = [
        combined_bias_p(at["bias_p"]) < BIAS_SIGNIFICANCE
        for _, at in frame.groupby("_x", sort=True)
    ]
    return replace(_points(frame, point), significant=np.array(significant))


def _work_variance_points(frame: pd.DataFrame) -> Points:
    """work×variance per position, the ranking's: one run's ``work_variance`` with its variance
    interval × the median time per estimate; or the replicates' mean with the variance's
    interval over replicates (:func:`gradbench.stats.replicates.replicate_variance_interval`)."""

    def point(at: pd.DataFrame) -> tuple:
        values = at["work_variance"].to_numpy(dtype=float)
        if len(values) == 1:
            time = at["time_per_sample_s"].iloc[0]
            low, high = at["variance_ci_low"].iloc[0], at["variance_ci_high"].iloc[0]
            return values[0], low * time, high * time
        return replicate_variance_interval(values, _estimates(at))

    return _points(frame, point)


def _time_points(frame: pd.DataFrame) -> Points:
    """Median seconds per estimate per position, band from the fastest to the slowest repeat."""
    grouped = frame.groupby("_x", sort=True)
    return Points(
        np.asarray(list(grouped.groups), dtype=float),
        grouped["time_per_sample_s"].median().to_numpy(dtype=float),
        grouped["time_per_sample_min_s"].min().to_numpy(dtype=float),
        grouped["time_per_sample_max_s"].max().to_numpy(dtype=float),
    )
