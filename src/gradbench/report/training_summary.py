"""The terminal view of ``gradbench train``: per objective, each trained estimator's J(θ) at the
start and the end (mean ± standard error over its seeds), the seconds its gradient steps took,
and its own variance at the last checkpoint (from the basket), in 80 columns."""

from __future__ import annotations

import math

import pandas as pd
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from gradbench.report.format import duration, number, value_with_se
from gradbench.stats.replicates import mean_and_se


def training_view(table: pd.DataFrame, basket: pd.DataFrame) -> RenderableType:
    """One small table per objective, rows ordered by the final J (best first)."""
    parts: list[RenderableType] = []
    for objective, everything in table.groupby("objective", sort=False):
        rows = everything[everything["status"] != "skipped"]
        skipped = sorted(set(everything.loc[everything["status"] == "skipped", "estimator"]))
        if rows.empty:
            parts += [
                Text(f"{objective}: every estimator skipped ({', '.join(skipped)})"),
                Text(""),
            ]
            continue
        first = rows.iloc[0]
        view = Table(box=None, header_style="bold underline", pad_edge=False, padding=(0, 1))
        for header, justify in (
            ("estimator", "left"),
            ("R", "right"),
            ("J start", "right"),
            ("J end", "right"),
            ("steps took", "right"),
            ("variance end", "right"),
        ):
            view.add_column(header, justify=justify, no_wrap=True)
        lines = [_line(estimator, group, basket) for estimator, group in rows.groupby("estimator")]
        maximise = first["direction"] == "maximise"
        lines.sort(key=lambda line: -line[0] if maximise else line[0])
        for _, cells in lines:
            view.add_row(*cells)
        direction = "maximised" if maximise else "minimised"
        title = (
            f"{objective}  (J {direction}; {first['steps']} steps of {first['batch']} estimates,"
            f" {first['optimizer']} lr {number(first['lr'])})"
        )
        parts += [Text(title, style="bold cyan"), view]
        if skipped:
            line = f"skipped (the objective lacks what they require): {', '.join(skipped)}"
            parts.append(Text(line, style="dim"))
        parts.append(Text(""))
    parts.append(Text(CAPTION, style="dim"))
    return Group(*parts)


CAPTION = (
    "J start, J end: J(θ) at the first and last checkpoint, mean ± standard error over the R"
    " seeds (exact where the objective has a closed form, else estimated). steps took: seconds"
    " of gradient steps, mean over seeds. variance end: the trained estimator's own variance"
    " (trace) at the last checkpoint, from the basket. The CSVs hold every checkpoint."
)


def _line(estimator: str, rows: pd.DataFrame, basket: pd.DataFrame) -> tuple[float, list[str]]:
    """(final mean J, cells) of one trained estimator over its seeds."""
    first = rows[rows["step"] == rows.groupby("seed")["step"].transform("min")]
    last = rows[rows["step"] == rows.groupby("seed")["step"].transform("max")]
    start, start_se = mean_and_se(first["objective_value"])
    end, end_se = mean_and_se(last["objective_value"])
    seconds = float(last["wall_time_s"].mean())
    own = (
        basket[
            (basket["estimator"] == estimator)
            & (basket["basket_estimator"] == estimator)
            & (basket["objective"] == rows.iloc[0]["objective"])
        ]
        if len(basket)
        else basket
    )
    final = own[own["step"] == own.groupby("seed")["step"].transform("max")] if len(own) else own
    variance = float(final["variance"].mean()) if len(final) else math.nan
    failed = " (failed)" if (rows["status"] == "failed").any() else ""
    cells = [
        f"{estimator}{failed}",
        str(rows["seed"].nunique()),
        value_with_se(start, start_se),
        value_with_se(end, end_se),
        duration(seconds),
        number(variance),
    ]
    return (end if math.isfinite(end) else math.inf), cells
