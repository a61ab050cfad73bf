"""``gradbench sweep``'s summary: the aggregate over replicates, one row per (objective,
estimator, grid point), with its caption and warnings."""

from __future__ import annotations

import pandas as pd
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from gradbench.core.status import Status
from gradbench.engine.timing import UNSTABLE
from gradbench.records.comparison import WARNING_SEPARATOR
from gradbench.records.ranking import BIAS_SIGNIFICANCE
from gradbench.report.format import (
    MADE_REFERENCE,
    duration,
    has_made_reference,
    number,
    sample_counts,
    verdict_cell,
    with_se,
)
from gradbench.sweeps.result import SweepResult

SWEEP_HEADERS = ("R", "variance", "bias", "time/est.", "work×var")


def sweep_table(result: SweepResult) -> RenderableType:
    """``gradbench sweep``: the aggregate, a table per objective with one row per (estimator,
    grid point), then the caption; it fits 80 columns for a sweep of one or two axes."""
    aggregate = result.aggregate().to_dict("records")
    parts: list[RenderableType] = []
    for objective in dict.fromkeys(row["objective"] for row in aggregate):
        view = Table(
            title=escape(objective),
            title_justify="left",
            title_style="bold cyan",
            box=None,
            header_style="bold underline",
            pad_edge=False,
        )
        view.add_column("estimator", no_wrap=True)
        for header in [*result.axes, *SWEEP_HEADERS]:
            view.add_column(header, justify="right", no_wrap=True)
        for row in aggregate:
            if row["objective"] == objective:
                cells = [row["estimator"], *sweep_cells(row, result.axes)]
                style = None if row["status"] == Status.OK else "dim"
                view.add_row(*map(escape, cells), style=style)
        parts += [view, Text("")]
    parts.append(Text(sweep_caption(result), style="dim"))
    return Group(*parts)


def sweep_cells(row: dict, axes: tuple[str, ...]) -> list[str]:
    """The parameter values, the replicates R and, per metric, the mean ± standard error over
    them; the bias as the verdict of the replicates' combined test."""
    values = [number(row[f"param_{name}"]) for name in axes]
    if row["replicates"] == 0:
        return [*values, "0", row["status"], *[""] * (len(SWEEP_HEADERS) - 2)]

    def spread(metric: str) -> str:
        return with_se(row[f"{metric}_mean"], row[f"{metric}_se"])

    return [
        *values,
        str(row["replicates"]),
        spread("variance"),
        verdict_cell(row),
        duration(row["time_per_sample_s_mean"]),
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
        f"{done}{run}; {result.executor}. Each cell: mean ± standard error over the R"
        f" replicates of its point, each run with its own seed (from seed {result.options.seed}"
        " and the task). bias: n.s. = no replicate's bias test rejects (smallest p × replicates"
        f" ≥ {BIAS_SIGNIFICANCE:g}){MADE_REFERENCE if has_made_reference(table) else ''}."
        " work×var = variance × seconds per estimate. The aggregate"
        f" CSV has MSE and every other metric. timings: {result.timing_note()}."
    )


def sweep_warning_lines(table: pd.DataFrame) -> list[str]:
    """Each distinct warning of a sweep's rows once, with the number of rows it concerns; the
    unstable timings as one (their detail differs, their cause and remedy do not)."""
    counts: dict[str, int] = {}
    for cell in table["warnings"]:
        for note in filter(None, str(cell).split(WARNING_SEPARATOR)):
            key = UNSTABLE_LINE if note.startswith(UNSTABLE) else note
            counts[key] = counts.get(key, 0) + 1
    return [f"{count} row(s): {note}" for note, count in counts.items()]


UNSTABLE_LINE = (
    f"{UNSTABLE}: a repeat far from the median, the machine was busy; no ★ rests on them;"
    " rerun on an idle machine"
)
