"""The default view of a comparison: one small table per objective, ranked, that fits 80 columns.

Per objective configuration: a title (the objective, its settings, n and where the reference
comes from), its measured estimators ranked by the ranking quantity — the ★ first, then the
other candidates for it by work×variance (variance × seconds per estimate, lower is better),
then the rest — with the chosen columns (default :data:`~gradbench.report.columns.
DEFAULT_COLUMNS`), the skipped and failed estimators in a line each, and one verdict line::

    ★ reparam: lowest work×variance; at equal cost reinforce is 60× noisier, rloo 3.2×

``--wide`` (:mod:`gradbench.report.tables`) shows every column instead; the CSV and JSON hold
every number whatever is displayed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from gradbench.core.status import Status
from gradbench.engine.run import MIN_RELIABLE_SAMPLES
from gradbench.records.ranking import BIAS_SIGNIFICANCE, is_candidate, timing_is_stable
from gradbench.report.columns import DEFAULT_COLUMNS, Column, check_names, columns
from gradbench.report.format import (
    BEST_MARK,
    BEST_RULE,
    MADE_REFERENCE,
    has_made_reference,
    number,
    objective_labels,
    sample_counts,
)
from gradbench.stats.intervals import SAMPLES_PER_KURTOSIS


@dataclass
class Section:
    """One objective configuration of the view."""

    title: str
    rows: list[dict]
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    verdict: str = ""


def sections(table: pd.DataFrame, sort: str | None = None) -> list[Section]:
    """The view's sections, in the table's order of objectives; rows ranked (see the module),
    or by the CSV column ``sort`` (ascending; ``-name`` descending; undefined last)."""
    records = table.to_dict("records")
    if sort is not None:
        check_names([sort.removeprefix("-")], "--sort")
    labels = objective_labels(records)
    shown = []
    for label in dict.fromkeys(labels):
        mine = [row for row, own in zip(records, labels, strict=True) if own == label]
        measured = [row for row in mine if row["status"] == Status.OK]
        section = Section(
            title=_title(label, measured or mine),
            rows=_ordered(measured, sort),
            skipped=[row["estimator"] for row in mine if row["status"] == Status.SKIPPED],
            failed=[
                f"{row['estimator']} ({row['reason']})"
                for row in mine
                if row["status"] == Status.FAILED
            ],
        )
        section.verdict = verdict(measured)
        shown.append(section)
    return shown


def _title(label: str, rows: list[dict]) -> str:
    """The objective, n and its reference: how it is obtained, or for an estimated one the
    estimator that made it and its largest standard error over the rows it tests (each pair's
    reference is sized to its run; its maker's, untested, is the smallest)."""
    row = rows[0]
    reference = str(row.get("reference") or "")
    tested = [r for r in rows if r.get("made_reference") is not True] or rows
    errors = [r["reference_se_max"] for r in tested if not pd.isna(r.get("reference_se_max"))]
    if errors:
        made_by = row.get("reference_estimator")
        reference = "estimated" if pd.isna(made_by) else f"estimated by {made_by}"
        reference += f", largest error ±{number(max(errors))}"
    return f"{label}  (n = {row['n_samples']}; reference {reference})"


def _rank(row: dict) -> tuple:
    """★ first, then the other candidates for it, then the rest; each by work×variance."""
    work = row["work_variance"]
    return (not row["best"], not is_candidate(row), math.isnan(work), work)


def _ordered(rows: list[dict], sort: str | None) -> list[dict]:
    if sort is None:
        return sorted(rows, key=_rank)
    name, descending = sort.removeprefix("-"), sort.startswith("-")

    def key(row: dict) -> tuple:
        value = row.get(name)
        undefined = (
            value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
        )
        if undefined:
            return (1, 0)
        if isinstance(value, int | float):
            return (0, -value if descending else value)
        return (0, str(value))

    ordered = sorted(rows, key=key)
    if descending and ordered and not isinstance(ordered[0].get(name), int | float):
        ordered.reverse()
    return ordered


def verdict(rows: Sequence[dict]) -> str:
    """One line: who earns the ★ and how much noisier the other candidates are at equal time
    (their work×variance over the leader's), or why no ★ is awarded."""
    best = [row for row in rows if row["best"]]
    candidates = [row for row in rows if is_candidate(row)]
    unstable = [row["estimator"] for row in candidates if not timing_is_stable(row)]
    if best:
        leader = min(best, key=lambda row: row["work_variance"])
        names = ", ".join(row["estimator"] for row in best)
        tie = " (not distinguishable)" if len(best) > 1 else ""
        line = f"{BEST_MARK} {names}: lowest work×variance{tie}"
        others = sorted(
            (row for row in candidates if not row["best"] and timing_is_stable(row)),
            key=lambda row: row["work_variance"],
        )
        ratios = [
            (row["estimator"], _ratio(row["work_variance"] / leader["work_variance"]))
            for row in others
            if leader["work_variance"] > 0
        ]
        if ratios:
            (name, ratio), rest = ratios[0], ratios[1:]
            line += f"; at equal cost {name} is {ratio} noisier"
            line += "".join(f", {other} {times}" for other, times in rest)
        if unstable:
            line += f"; timing unstable: {', '.join(unstable)}"
        return line
    if not rows:
        return ""
    if not candidates:
        return (
            f"no {BEST_MARK}: no estimator that is unbiased by design, without significant bias"
            f" (p ≥ {BIAS_SIGNIFICANCE:g}), timed, and with at least {MIN_RELIABLE_SAMPLES}"
            f" estimates and {SAMPLES_PER_KURTOSIS} × their kurtosis (see the warnings)"
        )
    return (
        f"no {BEST_MARK}: the timing of {', '.join(unstable)} is unstable and could change the"
        " ranking (see the warnings)"
    )


def _ratio(value: float) -> str:
    """``3.2×``, ``60×``, ``1.2e15×``."""
    if value < 10:
        return f"{value:.2g}×"
    return f"{value:.0f}×" if value < 1e4 else f"{number(value)}×"


CAPTION = (
    "variance: trace of the covariance of one estimate [95% interval]. bias: n.s. = not"
    f" distinguishable from zero (Bonferroni p ≥ {BIAS_SIGNIFICANCE:g}){{reference}}. work×var ="
    " variance × seconds per estimate, the variance at equal compute: lower is better."
    f" {BEST_RULE}. --wide shows every column; the CSV and JSON hold every number."
)


def _caption(table: pd.DataFrame) -> str:
    made = has_made_reference(table)
    return f"{_run_line(table)} " + CAPTION.format(reference=MADE_REFERENCE if made else "")


def _run_line(table: pd.DataFrame) -> str:
    if not len(table):
        return ""
    first = table.iloc[0]
    return (
        f"{sample_counts(table)}, seed {first['seed']}, {first['device']}"
        f" ({first['device_name']}), {first['dtype']}."
    )


def compact_view(
    table: pd.DataFrame, names: Sequence[str] = DEFAULT_COLUMNS, sort: str | None = None
) -> RenderableType:
    """The terminal view: a table per objective configuration, its lines, the caption."""
    chosen = columns(names)
    parts: list[RenderableType] = []
    for section in sections(table, sort):
        view = Table(
            box=None,
            header_style="bold underline",
            pad_edge=False,
            padding=(0, 1),
        )
        for column in chosen:
            view.add_column(
                column.header, justify="right" if column.numeric else "left", no_wrap=True
            )
        for row in section.rows:
            style = "bold green" if row["best"] else None
            view.add_row(*(escape(column.cell(row)) for column in chosen), style=style)
        parts += [Text(section.title, style="bold cyan"), view]
        parts.extend(Text(line, style="dim") for line in _lines(section)[:-1])
        if section.verdict:
            parts.append(Text(section.verdict))
        parts.append(Text(""))
    parts.append(Text(_caption(table), style="dim"))
    return Group(*parts)


def _lines(section: Section) -> list[str]:
    """The section's lines below its table: skipped, failed, then the verdict."""
    lines = []
    if section.skipped:
        lines.append(
            f"skipped (the objective lacks what they require): {', '.join(section.skipped)}"
        )
    for failure in section.failed:
        lines.append(f"failed: {failure}")
    return [*lines, section.verdict]


def compact_markdown(
    table: pd.DataFrame, names: Sequence[str] = DEFAULT_COLUMNS, sort: str | None = None
) -> str:
    """The same view as GitHub-flavoured Markdown: per section a bold title, a table, its
    lines; the caption at the end."""
    chosen = columns(names)
    blocks = []
    for section in sections(table, sort):
        lines = [f"**{section.title}**", "", _markdown_header(chosen)]
        lines += ["| " + " | ".join(_cells(chosen, row)) + " |" for row in section.rows]
        lines += [""] + [f"{line}  " for line in _lines(section) if line]
        blocks.append("\n".join(lines).rstrip())
    return "\n\n".join(blocks) + f"\n\n{_caption(table)}\n"


def _markdown_header(chosen: list[Column]) -> str:
    header = "| " + " | ".join(column.header for column in chosen) + " |"
    rule = "|" + "|".join("---:" if column.numeric else "---" for column in chosen) + "|"
    return f"{header}\n{rule}"


def _cells(chosen: list[Column], row: dict) -> list[str]:
    return [column.cell(row).replace("|", "\\|").strip() for column in chosen]
