"""What a figure's caption and notes say: the run, the bands, the exact curves and how many
of the measured points their bands hold, and the rows left out."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gradbench.core.status import Status
from gradbench.records.ranking import BIAS_SIGNIFICANCE
from gradbench.report.figure.model import Row
from gradbench.report.format import BEST_RULE


def band_coverage(rows: list[Row]) -> tuple[int, int]:
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


def rows_left_out(table: pd.DataFrame) -> list[str]:
    """One line per status and objective: the estimators whose rows are not ``ok``."""
    lines = []
    rest = table[table["status"] != Status.OK]
    for (status, objective), rows in rest.groupby(["status", "objective"], sort=False):
        lines.append(f"{status}: {objective} × {', '.join(dict.fromkeys(rows['estimator']))}")
    return lines


def figure_caption(
    ok: pd.DataFrame,
    replicates: int,
    exact: bool,
    left_out: list[str],
    per_coordinate: bool,
    categorical: bool,
    coverage: str,
) -> str:
    """The caption: what the panels show (variance, bias, time and, for a comparison,
    work×variance and the ★), how the bands are made, and the rows left out."""
    counts = ", ".join(str(n) for n in dict.fromkeys(ok["n_samples"]))
    first = ok.iloc[0]
    what = "per coordinate" if per_coordinate else "trace of the covariance"
    band = (
        "band: the run's 95% jackknife interval"
        if replicates == 1
        else f"band: mean over {replicates} replicates, 95% jackknife interval over them"
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
    if categorical:
        work_band = (
            "the variance interval × the median time"
            if replicates == 1
            else "mean over the replicates, the variance's jackknife interval over them"
        )
        parts.append(
            "Work×variance: variance × median seconds per estimate, what the table ranks by;"
            f" band: {work_band}. {BEST_RULE}"
            + (f" (in each of the {replicates} replicates)" if replicates > 1 else "")
            + "."
        )
    if left_out:
        parts.append("Left out: " + "; ".join(left_out) + ".")
    return " ".join(parts)
