"""The comparison for people: a rich table for the terminal and the same cells as Markdown,
one section per objective configuration, with the caption that defines every column."""

from __future__ import annotations

import pandas as pd
from rich.markup import escape
from rich.table import Table

from gradbench.core.status import Status
from gradbench.engine.timing import UNSTABLE
from gradbench.records.comparison import WARNING_SEPARATOR
from gradbench.records.ranking import BIAS_SIGNIFICANCE
from gradbench.report.format import (
    BEST_MARK,
    BEST_RULE,
    bias_cell,
    duration,
    has_made_reference,
    number,
    objective_labels,
    sample_counts,
    variance_cell,
    with_se,
)

HEADERS = (
    "estimator",
    "evals",
    "variance [95% CI]",
    "bias ‖ḡ−g*‖",
    "MSE",
    "SNR",
    "cosine",
    "sign error",
    "evals×variance",
    "time/estimate",
    "work×variance",
)


def cells(row: dict) -> list[str]:
    """The displayed cells of one row of the main table."""
    name = f"{BEST_MARK} {row['estimator']}" if row["best"] else row["estimator"]
    if row["status"] != Status.OK:
        return [name, str(row["evals_per_sample"]), f"{row['status']}: {row['reason']}"] + [""] * (
            len(HEADERS) - 3
        )
    return [
        name,
        str(row["evals_per_sample"]),
        variance_cell(row),
        bias_cell(row),
        with_se(row["mse"], row["mse_se"]),
        number(row["snr"]),
        with_se(row["cosine"], row["cosine_se"]),
        with_se(row["sign_error"], row["sign_error_se"]),
        number(row["evals_variance"]),
        duration(row["time_per_sample_s"]),
        number(row["work_variance"]),
    ]


ESTIMATED_REFERENCE = (
    "; ref ±r: bias against an estimated reference, r its largest standard error, which the"
    " test includes"
)


def _has_estimated_reference(table: pd.DataFrame) -> bool:
    return "reference_se_max" in table and bool(table["reference_se_max"].notna().any())


#: Said when a row made its objective's estimated reference.
MADE_REFERENCE = "; (ref): made the estimated reference, so its bias is not tested"


def caption(table: pd.DataFrame) -> str:
    first = table.iloc[0] if len(table) else None
    run = (
        f"{sample_counts(table)}, seed {first['seed']}, "
        f"{first['device']} ({first['device_name']}), {first['dtype']}"
        if first is not None
        else ""
    )
    return (
        f"{run}. variance: trace of the covariance of one estimate, 95% jackknife interval. "
        f"bias: n.s. = not distinguishable from zero (Bonferroni p ≥ {BIAS_SIGNIFICANCE:g})"
        f"{ESTIMATED_REFERENCE if _has_estimated_reference(table) else ''}"
        f"{MADE_REFERENCE if has_made_reference(table) else ''}. "
        "MSE, cosine, sign error: per estimate, ± standard error. evals×variance: variance at "
        "equal cost-function evaluations. (skipped): the objective lacks what they require "
        "(reasons in the CSV). "
        f"{BEST_RULE}; biased ones compare on MSE."
    )


def displayed_rows(table: pd.DataFrame) -> list[tuple[str, list[str], str | None]]:
    """(objective label, cells, style) per displayed row, in sections of one configuration.

    Skipped pairs fold into one ``(skipped)`` row per section naming the estimators (their
    reasons are in the CSV).
    """
    rows = table.to_dict("records")
    labels = objective_labels(rows)
    shown: list[tuple[str, list[str], str | None]] = []
    for label in dict.fromkeys(labels):
        section = [row for row, own in zip(rows, labels, strict=True) if own == label]
        for row in section:
            if row["status"] != Status.SKIPPED:
                style = (
                    "bold green" if row["best"] else ("dim" if row["status"] != Status.OK else None)
                )
                shown.append((label, cells(row), style))
        skipped = [row["estimator"] for row in section if row["status"] == Status.SKIPPED]
        if skipped:
            blank = [""] * (len(HEADERS) - 3)
            shown.append((label, ["(skipped)", "", ", ".join(skipped), *blank], "dim"))
    return shown


def rich_table(table: pd.DataFrame) -> Table:
    """The terminal view: one section per objective, the best estimator in bold."""
    view = Table(caption=caption(table), caption_justify="left", header_style="bold")
    view.add_column("objective", style="cyan", no_wrap=True)
    for header in HEADERS:
        view.add_column(header, justify="left" if header == "estimator" else "right")
    previous = None
    for label, shown, style in displayed_rows(table):
        if previous is not None and label != previous:
            view.add_section()
        view.add_row(*map(escape, [label if label != previous else "", *shown]), style=style)
        previous = label
    return view


def markdown_table(table: pd.DataFrame) -> str:
    """The same cells as a GitHub-flavoured Markdown table, caption below."""
    header = ["objective", *HEADERS]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|",
    ]
    for label, shown, _ in displayed_rows(table):
        lines.append("| " + " | ".join([label, *shown]).replace("\n", " ") + " |")
    return "\n".join(lines) + "\n\n" + caption(table) + "\n"


def warning_lines(table: pd.DataFrame) -> list[str]:
    """One line per warning of each row, prefixed with its pair; the unstable timings of a run
    in one line (they share their cause and their remedy)."""
    lines, unstable = [], []
    for row in table.to_dict("records"):
        pair = f"{row['objective']} × {row['estimator']}"
        for note in filter(None, str(row["warnings"]).split(WARNING_SEPARATOR)):
            if note.startswith(UNSTABLE):
                unstable.append(pair)
            else:
                lines.append(f"{pair}: {note}")
    if unstable:
        lines.append(
            f"{UNSTABLE} for {len(unstable)} pair(s): a repeat far from the median, the machine"
            f" was busy; no ★ rests on them; rerun on an idle machine: {', '.join(unstable)}"
        )
    return lines
