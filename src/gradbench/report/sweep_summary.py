"""``gradbench sweep``'s summary: the aggregate over replicates, one row per (objective,
estimator, grid point), with its caption and warnings."""

from __future__ import annotations

import math

import pandas as pd
from rich.markup import escape
from rich.table import Table

from gradbench.core.status import Status
from gradbench.records.comparison import WARNING_SEPARATOR
from gradbench.records.ranking import BIAS_SIGNIFICANCE
from gradbench.report.format import bias_verdict, duration, number, sample_counts, with_se
from gradbench.sweeps.result import SweepResult

SWEEP_HEADERS = ("replicates", "variance", "bias ‖ḡ−g*‖", "MSE", "time/estimate", "work×variance")


def sweep_table(result: SweepResult) -> Table:
    """``gradbench sweep``: the aggregate, one row per (objective, estimator, grid point)."""
    view = Table(caption=sweep_caption(result), caption_justify="left", header_style="bold")
    view.add_column("objective", style="cyan", no_wrap=True)
    view.add_column("estimator")
    for header in [*result.axes, *SWEEP_HEADERS]:
        view.add_column(header, justify="right")
    previous = None
    for row in result.aggregate().to_dict("records"):
        if previous is not None and row["objective"] != previous:
            view.add_section()
        label = row["objective"] if row["objective"] != previous else ""
        cells = [label, row["estimator"], *sweep_cells(row, result.axes)]
        view.add_row(*map(escape, cells), style=None if row["status"] == Status.OK else "dim")
        previous = row["objective"]
    return view


def sweep_cells(row: dict, axes: tuple[str, ...]) -> list[str]:
    """The parameter values and, per metric, mean ± standard error over the replicates."""
    values = [number(row[f"param_{name}"]) for name in axes]
    if row["replicates"] == 0:
        return [*values, "0", row["status"], *[""] * (len(SWEEP_HEADERS) - 2)]

    def spread(metric: str) -> str:
        return with_se(row[f"{metric}_mean"], row[f"{metric}_se"])

    time, time_se = row["time_per_sample_s_mean"], row["time_per_sample_s_se"]
    timing = duration(time) if math.isnan(time_se) else f"{duration(time)} ± {duration(time_se)}"
    return [
        *values,
        str(row["replicates"]),
        spread("variance"),
        f"{spread('bias_norm')} ({bias_verdict(row)})",
        spread("mse"),
        timing,
        spread("work_variance"),
    ]


def sweep_caption(result: SweepResult) -> str:
    table = result.table()
    done = f"{len(result.finished)} of {len(result.tasks)} tasks"
    if result.reused:
        done += f" ({result.reused} from the journal)"
    run = ""
    if len(table):
        first = table.iloc[0]
        device = f"{first['device']} ({first['device_name']}), {first['dtype']}"
        run = f"; {sample_counts(table)}, {device}"
    return (
        f"{done}{run}; {result.executor}. Each cell: mean ± standard error over the replicates"
        f" of its point, each run with its own seed (from seed {result.options.seed} and the"
        " task). bias: n.s. = no replicate's bias test rejects (smallest p × replicates"
        f" ≥ {BIAS_SIGNIFICANCE:g}); for an unbiased estimator the mean ‖bias‖ is its noise"
        f" floor, ≈ √(variance/n). timings: {result.timing_note()}."
    )


def sweep_warning_lines(table: pd.DataFrame) -> list[str]:
    """Each distinct warning of a sweep's rows once, with the number of rows it concerns."""
    counts: dict[str, int] = {}
    for cell in table["warnings"]:
        for note in filter(None, str(cell).split(WARNING_SEPARATOR)):
            counts[note] = counts.get(note, 0) + 1
    return [f"{count} row(s): {note}" for note, count in counts.items()]
