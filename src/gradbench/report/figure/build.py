"""What a figure of a stored result shows, computed from its tables (no drawing here).

One row of panels per objective, in two layouts:

* a **sweep** (a ``param_*`` column varies): the per-sample variance against the swept parameter,
  one line per estimator with an interval band and, where the estimator knows it
  (:meth:`~gradbench.core.estimator.Estimator.exact_variance`), the exact variance as a dense curve;
  then ‖ḡ − g*‖ with its significance; then the time per estimate. Other swept parameters that
  vary split the lines (``reinforce, sigma=2``).
* a **comparison** without a swept parameter: the same panels, one position per estimator.

With a detail table the variance panel becomes one panel per parameter coordinate (∂/∂mu[0],
∂/∂sigma[0], …), the survey's layout. Bands: with one run per point, the run's 95% jackknife
interval of the variance; with S > 1 replicates, mean ± t_{0.975, S−1}·SE over the replicates.
Rows whose status is not ``ok`` are left out and listed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from gradbench.core.errors import InputError
from gradbench.core.estimator import Estimator
from gradbench.core.objective import Objective
from gradbench.core.params import ParamLayout
from gradbench.core.routing import Side, addressed, declared, split_key
from gradbench.core.status import Status
from gradbench.extend import registry
from gradbench.records.ranking import BIAS_SIGNIFICANCE
from gradbench.records.stored import StoredResult
from gradbench.report.format import objective_labels
from gradbench.stats.replicates import combined_bias_p, replicate_band

AXIS_PREFIX = "param_"
#: Points of an exact curve across the swept range; the measured positions are added to them.
CURVE_POINTS = 121
#: Coordinate panels per row at most: one panel per coordinate is readable for a few only.
MAX_COORDINATE_PANELS = 6
TOTAL = ""  # the panel of the total variance (trace), as opposed to one coordinate's


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


def figure_data(stored: StoredResult, x: str | None = None) -> FigureData:
    """The figure of ``stored``: against the swept parameter ``x`` (with or without the
    ``param_`` prefix; default: the first that varies), or a comparison when none varies."""
    table = stored.table
    ok = table[table["status"] == Status.OK].copy()
    if ok.empty:
        raise InputError(f"{stored.source!r}: no row with status ok to plot")
    axis = _choose_axis(ok, x)
    left_out = _left_out(table)
    if axis:  # objectives without the swept setting have no x
        unswept = ok[axis].isna()
        along = axis.removeprefix(AXIS_PREFIX)
        names = dict.fromkeys(ok.loc[unswept, "objective"])
        left_out += [f"not swept along {along}: {name}" for name in names]
        ok = ok[~unswept]
        if ok.empty:
            raise InputError(f"{stored.source!r}: no row with status ok has a value of {along}")
    others = [c for c in _axes(ok) if c != axis and ok[c].nunique() > 1]
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
    held, total = _coverage(rows)
    coverage = f"the bands hold the exact variance at {held} of {total} points" if total else ""
    return FigureData(
        rows=rows,
        x_label=axis.removeprefix(AXIS_PREFIX) if axis else None,
        log_x=axis is not None and _is_log_spaced(ok["_x"].to_numpy()),
        caption=_caption(
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
    )


def _axes(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith(AXIS_PREFIX)]


def _choose_axis(ok: pd.DataFrame, x: str | None) -> str | None:
    axes = _axes(ok)
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


def _line_keys(ok: pd.DataFrame, others: list[str]) -> pd.Series:
    keys = ok["estimator"].astype(str)
    for column in others:
        keys = keys + f", {column.removeprefix(AXIS_PREFIX)}=" + ok[column].map(_text)
    return keys


def _text(value: object) -> str:
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
    """Rows of measured variance: the main table's (panel TOTAL), or the detail table's, one
    per coordinate (panel = its label), each with its main row's ``_group``, ``_key``, ``_x``."""
    context = ["_group", "_key", "_x"]
    if stored.details is None:
        return ok.assign(_panel=TOTAL)
    details = _match_details(stored.table, stored.details, stored.source)
    details = details[details["_row"].isin(ok.index)]
    joined = details.join(ok[context], on="_row")
    return joined.rename(columns={"param": "_panel"})


def _match_details(table: pd.DataFrame, details: pd.DataFrame, source: str) -> pd.DataFrame:
    """Each detail row with ``_row``, the index of its main-table row.

    A sweep's rows carry ``task`` and ``replicate``, matched with the pair; a comparison's
    detail rows follow its main rows in order, ``grad_dim`` rows for each row that has them.
    """
    keys = [c for c in ("task", "replicate", "objective", "estimator") if c in details.columns]
    keys += [c for c in _axes(details) if c in table.columns]
    if "task" in keys:
        index = table[keys].reset_index(names="_row")
        try:
            matched = details.merge(index, on=keys, how="left", validate="many_to_one")
        except pd.errors.MergeError:
            raise InputError(f"{source!r}: the main table repeats a task") from None
        if matched["_row"].isna().any():
            raise InputError(f"{source!r}: detail rows without a matching main row")
        return matched.astype({"_row": int})
    rows, position = [], 0
    pairs = list(zip(details["objective"], details["estimator"], strict=True))
    for index, row in table.iterrows():
        pair, count = (row["objective"], row["estimator"]), row["grad_dim"]
        if position < len(pairs) and pairs[position] == pair and not pd.isna(count):
            rows += [index] * int(count)
            position += int(count)
    if position != len(pairs) or len(rows) != len(details):
        raise InputError(
            f"{source!r}: the detail rows do not follow the main table's rows"
            " (pass the detail CSV written with it)"
        )
    return details.assign(_row=rows)


def _row(
    group: str, rows: pd.DataFrame, measured: pd.DataFrame, exact: ExactVariances, categorical: bool
) -> Row:
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
        title = "variance" if panel == TOTAL else f"variance of ∂/∂{panel}"
        variance_panels.append(Panel(title, "variance of one estimate", lines))
    bias_lines = [Line(key, _bias_points(rows[rows["_key"] == key])) for key in keys]
    time_lines = [Line(key, _time_points(rows[rows["_key"] == key])) for key in keys]
    timed = any(np.isfinite(line.points.y).any() for line in time_lines)
    panels = [
        *variance_panels,
        Panel("bias", "‖ḡ − g*‖", bias_lines),
        Panel("time per estimate", "seconds", time_lines, note="" if timed else "not timed"),
    ]
    return Row(_row_title(group, rows), panels, keys if categorical else None)


def _row_title(group: str, rows: pd.DataFrame) -> str:
    name = str(rows["objective"].iloc[0])
    description = registry.objectives.entries().get(name)
    return f"{group}: {description.cls.description}" if description else group


def _points(frame: pd.DataFrame, point: Callable[[pd.DataFrame], tuple]) -> Points:
    """(y, low, high) = ``point(rows at x)`` for each position x, in order."""
    rows = [(x, *point(at)) for x, at in frame.groupby("_x", sort=True)]
    return Points(*np.array(rows, dtype=float).T)


def _interval_points(frame: pd.DataFrame) -> Points:
    """Variance per position: one run's jackknife interval, or mean ± t·SE of replicates."""

    def point(at: pd.DataFrame) -> tuple:
        values = at["variance"].to_numpy(dtype=float)
        if len(values) == 1:
            return values[0], at["variance_ci_low"].iloc[0], at["variance_ci_high"].iloc[0]
        mean, half = replicate_band(values)
        return mean, mean - half, mean + half

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


def _time_points(frame: pd.DataFrame) -> Points:
    """Median seconds per estimate per position, band from the fastest to the slowest repeat."""
    grouped = frame.groupby("_x", sort=True)
    return Points(
        np.asarray(list(grouped.groups), dtype=float),
        grouped["time_per_sample_s"].median().to_numpy(dtype=float),
        grouped["time_per_sample_min_s"].min().to_numpy(dtype=float),
        grouped["time_per_sample_max_s"].max().to_numpy(dtype=float),
    )


def _is_log_spaced(values: np.ndarray) -> bool:
    """Whether the distinct values are positive and more evenly spaced in log than linearly
    (a log scan, or a list such as 0.1, 0.2, 0.5, 1, 2, 5, 10): their axis is drawn in log."""
    grid = np.unique(values)
    if len(grid) < 3 or (grid <= 0).any():
        return False

    def unevenness(steps: np.ndarray) -> float:
        return float(np.std(steps) / np.mean(steps))

    return unevenness(np.diff(np.log(grid))) < unevenness(np.diff(grid))


def _coverage(rows: list[Row]) -> tuple[int, int]:
    """(held, total): measured points of lines with an exact curve, and those whose band holds
    the exact value at the same position (the curves include every measured position)."""
    held = total = 0
    for line in (line for row in rows for panel in row.panels for line in panel.lines):
        if line.exact_x is None:
            continue
        points = line.points
        for x, low, high in zip(points.x, points.low, points.high, strict=True):
            at = np.flatnonzero(line.exact_x == x)
            if at.size and np.isfinite(low) and np.isfinite(high):
                total += 1
                held += bool(low <= line.exact_y[at[0]] <= high)
    return held, total


def _left_out(table: pd.DataFrame) -> list[str]:
    """One line per status and objective: the estimators whose rows are not ``ok``."""
    lines = []
    rest = table[table["status"] != Status.OK]
    for (status, objective), rows in rest.groupby(["status", "objective"], sort=False):
        lines.append(f"{status}: {objective} × {', '.join(dict.fromkeys(rows['estimator']))}")
    return lines


def _caption(
    ok: pd.DataFrame,
    replicates: int,
    exact: bool,
    left_out: list[str],
    per_coordinate: bool,
    categorical: bool,
    coverage: str,
) -> str:
    counts = ", ".join(str(n) for n in dict.fromkeys(ok["n_samples"]))
    first = ok.iloc[0]
    what = "per coordinate" if per_coordinate else "trace of the covariance"
    band = (
        "band: the run's 95% jackknife interval"
        if replicates == 1
        else f"band: mean ± t·SE over {replicates} replicates (95%)"
    )
    parts = [
        f"Variance of one estimate ({what}), n = {counts} estimates per point, "
        f"{first['dtype']} on {first['device']}; {band}."
    ]
    if exact:
        shape = "Black bar" if categorical else "Dashed"
        parts.append(f"{shape}: exact variance; {coverage}." if coverage else f"{shape}: exact.")
    parts.append(
        f"Bias: filled marker = distinguishable from zero (Bonferroni p < {BIAS_SIGNIFICANCE:g}"
        + (f" across {replicates} replicates" if replicates > 1 else "")
        + "), hollow = not."
    )
    parts.append("Time: median seconds per estimate, band from fastest to slowest repeat.")
    if left_out:
        parts.append("Left out: " + "; ".join(left_out) + ".")
    return " ".join(parts)


class ExactVariances:
    """Exact variances of the lines' estimators, where the estimator provides them.

    The objective and estimator of a line are rebuilt from its first row's ``setting_*`` and
    ``option_*`` values. Along a swept setting or option the curve is dense (CURVE_POINTS plus
    the measured positions); along any other swept parameter (n, seed) it is evaluated at the
    measured positions with each position's own settings.
    """

    def __init__(self, axis: str | None) -> None:
        self.axis = axis
        self.notes: list[str] = []
        self.drawn = False
        self._vectors: dict[tuple, tuple[np.ndarray, np.ndarray, list[str]] | None] = {}

    def curve(self, rows: pd.DataFrame, panel: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(x, exact variance) of one line in one panel (TOTAL: the trace), or (None, None)."""
        key = (rows["_group"].iloc[0], rows["_key"].iloc[0])
        if key not in self._vectors:
            self._vectors[key] = self._compute(rows)
        computed = self._vectors[key]
        if computed is None:
            return None, None
        x, vectors, labels = computed
        if panel == TOTAL:
            values = vectors.sum(axis=1)
        elif panel in labels:
            values = vectors[:, labels.index(panel)]
        else:
            return None, None
        finite = np.isfinite(values)
        if not finite.any():
            return None, None
        self.drawn = True
        return x[finite], values[finite]

    def _compute(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
        first = rows.iloc[0]
        names = (str(first["objective"]), str(first["estimator"]))
        try:
            objective_cls = registry.objectives.get(names[0])
            estimator_cls = registry.estimators.get(names[1])
        except InputError:
            self.notes.append(
                f"no exact curve for {names[0]} × {names[1]}: not registered here "
                "(load its plugin with --plugin)"
            )
            return None
        target = _axis_target(self.axis, objective_cls, estimator_cls)
        if target is None:  # each measured position with its own settings
            firsts = rows.sort_values("_x").groupby("_x", sort=True).head(1)
            pairs = [
                (row["_x"], _values(row, "setting_"), _values(row, "option_"))
                for _, row in firsts.iterrows()
            ]
        else:  # the first row's settings, the swept one moved along a dense grid
            kind, name = target
            pairs = []
            for x in _dense(rows["_x"].to_numpy(dtype=float)):
                settings, options = _values(first, "setting_"), _values(first, "option_")
                (settings if kind is Side.OBJECTIVE else options)[name] = x
                pairs.append((x, settings, options))
        x_values, vectors, labels = [], [], []
        for x, objective_settings, estimator_options in pairs:
            try:
                objective = objective_cls(**objective_settings)
                estimator = estimator_cls(**estimator_options)
            except InputError:
                continue  # a swept value this objective refuses (its interval is open there)
            params = objective.parameters()
            variance = estimator.exact_variance(objective, params)
            if variance is None:
                return None
            labels = ParamLayout.of(params).labels()
            x_values.append(x)
            vectors.append(variance.detach().cpu().double().numpy())
        if not vectors:
            return None
        return np.asarray(x_values), np.stack(vectors), labels


def _values(row: pd.Series, prefix: str) -> dict[str, object]:
    """The row's defined ``setting_*`` (or ``option_*``) values by name, as Python numbers."""
    values = {}
    for column, value in row.items():
        if str(column).startswith(prefix) and not pd.isna(value):
            values[str(column).removeprefix(prefix)] = (
                value.item() if hasattr(value, "item") else value
            )
    return values


def _axis_target(
    axis: str | None, objective_cls: type[Objective], estimator_cls: type[Estimator]
) -> tuple[Side, str] | None:
    """(side, KEY): the setting or option of the pair that the swept parameter sets
    (:func:`gradbench.core.routing.addressed`), or None when it sets neither (n, seed)."""
    if axis is None:
        return None
    key = axis.removeprefix(AXIS_PREFIX)
    side = addressed(key, objective_cls, estimator_cls)
    if side is None:
        return None
    name = split_key(key)[1]
    member = objective_cls if side is Side.OBJECTIVE else estimator_cls
    return (side, name) if name in declared(member, side) else None


def _dense(measured: np.ndarray) -> np.ndarray:
    """CURVE_POINTS across the measured range (evenly in log for a log-spaced grid), and the
    measured positions themselves."""
    low, high = float(measured.min()), float(measured.max())
    spaced = np.geomspace if _is_log_spaced(measured) else np.linspace
    return np.union1d(spaced(low, high, CURVE_POINTS), measured)
