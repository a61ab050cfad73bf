"""Exact variance curves of a figure's lines, where the estimator knows them
(:meth:`~gradbench.core.estimator.Estimator.exact_variance`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gradbench.core.errors import InputError
from gradbench.core.estimator import Estimator
from gradbench.core.objective import Objective
from gradbench.core.params import ParamLayout
from gradbench.core.routing import Side, addressed, declared, split_key
from gradbench.extend import registry
from gradbench.report.figure.axes import AXIS_PREFIX, is_log_spaced
from gradbench.report.figure.model import TRACE_PANEL

#: Points of an exact curve across the swept range; the measured positions are added to them.
CURVE_POINTS = 121


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
        """(x, exact variance) of one line in one panel (TRACE_PANEL: the trace), else
        (None, None)."""
        key = (rows["_group"].iloc[0], rows["_key"].iloc[0])
        if key not in self._vectors:
            self._vectors[key] = self._compute(rows)
        computed = self._vectors[key]
        if computed is None:
            return None, None
        x, vectors, labels = computed
        if panel == TRACE_PANEL:
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
    spaced = np.geomspace if is_log_spaced(measured) else np.linspace
    return np.union1d(spaced(low, high, CURVE_POINTS), measured)
