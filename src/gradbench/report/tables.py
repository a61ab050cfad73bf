"""Human views: the comparison as a rich table and as Markdown, a sweep's summary, listings,
conformance reports.

Both render the same cells, formatted here and only here: three significant figures, every
statistic with its uncertainty, times scaled to a readable unit. Machine formats stay raw.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd
from rich.markup import escape
from rich.table import Table

from gradbench.core.status import Status
from gradbench.extend.conformance import ALPHA, ConformanceReport
from gradbench.extend.registry import Entry
from gradbench.records.comparison import (
    BIAS_SIGNIFICANCE,
    WARNING_SEPARATOR,
    bias_is_significant,
    configuration,
)

if TYPE_CHECKING:
    from gradbench.sweep.orchestration import SweepResult

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
BEST_MARK = "★"


def number(value: float) -> str:
    """Three significant figures; ``—`` for undefined, ``∞`` for infinite."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.3g}"


def with_se(value: float, se: float) -> str:
    return number(value) if math.isnan(se) else f"{number(value)} ± {number(se)}"


def duration(seconds: float) -> str:
    """Seconds scaled to s, ms, µs or ns."""
    if math.isnan(seconds):
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def bias_verdict(row: dict) -> str:
    """``n.s.`` or ``p=…`` for a row's ``bias_p``, with ``ref ±r`` for an estimated reference."""
    verdict = f"p={row['bias_p']:.1g}" if bias_is_significant(row) else "n.s."
    reference_se = row.get("reference_se_max")  # absent or empty: an exact reference
    if reference_se is not None and not pd.isna(reference_se):
        verdict += f", ref ±{number(reference_se)}"
    return verdict


def bias_cell(row: dict) -> str:
    """‖bias‖ with the verdict of its test: ``n.s.`` when not distinguishable from zero; and
    ``ref ±r`` when the reference is itself estimated, r its largest standard error."""
    if math.isnan(row["bias_p"]):
        return number(row["bias_norm"])
    return f"{number(row['bias_norm'])} ({bias_verdict(row)})"


def cells(row: dict) -> list[str]:
    """The displayed cells of one row of the main table."""
    name = f"{BEST_MARK} {row['estimator']}" if row["best"] else row["estimator"]
    if row["status"] != Status.OK:
        return [name, str(row["evals_per_sample"]), f"{row['status']}: {row['reason']}"] + [""] * (
            len(HEADERS) - 3
        )
    variance = (
        f"{number(row['variance'])} "
        f"[{number(row['variance_ci_low'])}, {number(row['variance_ci_high'])}]"
    )
    return [
        name,
        str(row["evals_per_sample"]),
        variance,
        bias_cell(row),
        with_se(row["mse"], row["mse_se"]),
        number(row["snr"]),
        with_se(row["cosine"], row["cosine_se"]),
        with_se(row["sign_error"], row["sign_error_se"]),
        number(row["evals_variance"]),
        duration(row["time_per_sample_s"]),
        number(row["work_variance"]),
    ]


def sample_counts(table: pd.DataFrame) -> str:
    """``n = 100000``, or the count of each objective when they differ."""
    counts = table.groupby("n_samples", sort=False)["objective"].unique()
    if len(counts) <= 1:
        return f"n = {counts.index[0]}" if len(counts) else ""
    return "; ".join(f"n = {n} ({', '.join(names)})" for n, names in counts.items())


ESTIMATED_REFERENCE = (
    "; ref ±r: bias against an estimated reference, r its largest standard error, which the"
    " test includes"
)


def _has_estimated_reference(table: pd.DataFrame) -> bool:
    return "reference_se_max" in table and bool(table["reference_se_max"].notna().any())


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
        f"{ESTIMATED_REFERENCE if _has_estimated_reference(table) else ''}. "
        "MSE, cosine, sign error: per estimate, ± standard error. evals×variance: variance at "
        "equal cost-function evaluations. (skipped): the objective lacks what they require "
        "(reasons in the CSV). "
        f"{BEST_MARK} lowest work×variance (variance × seconds per estimate) among unbiased "
        "estimators without significant bias, and any not distinguishable from it; biased "
        "ones compare on MSE."
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


def objective_labels(rows: list[dict]) -> list[str]:
    """Each row's objective name, with its settings where one name has several configurations."""
    configurations = [configuration(row) for row in rows]
    names = [name for name, _ in set(configurations)]
    return [
        f"{name} " + " ".join(f"{k}={number(v)}" for k, v in settings)
        if names.count(name) > 1
        else name
        for name, settings in configurations
    ]


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
    """One line per warning of each row, prefixed with its pair."""
    lines = []
    for row in table.to_dict("records"):
        for note in filter(None, str(row["warnings"]).split(WARNING_SEPARATOR)):
            lines.append(f"{row['objective']} × {row['estimator']}: {note}")
    return lines


def estimator_listing(entries: Mapping[str, Entry]) -> Table:
    """``gradbench list``: one row per registered estimator."""
    view = Table(title="estimators", title_justify="left", header_style="bold")
    for column in ("name", "requires", "unbiased", "evals/estimate", "options", "origin", "what"):
        view.add_column(column, no_wrap=column == "name")
    for name, entry in entries.items():
        cls = entry.cls
        cells = (
            name,
            ", ".join(sorted(c.value for c in cls.requires)) or "—",
            "yes" if cls.unbiased else "no",
            cls.evals_formula,
            "\n".join(f"{name}.{s.describe()}: {s.help}" for s in cls.options) or "—",
            entry.origin,
            cls.description,
        )
        view.add_row(*map(escape, cells))
    return view


def objective_listing(entries: Mapping[str, Entry]) -> Table:
    """``gradbench list``: one row per registered objective."""
    view = Table(title="objectives", title_justify="left", header_style="bold")
    for column in ("name", "settings (defaults)", "offers", "reference", "origin", "what"):
        view.add_column(column, no_wrap=column == "name")
    for name, entry in entries.items():
        cls = entry.cls
        try:
            offers = ", ".join(sorted(c.value for c in cls().capabilities())) or "—"
        except Exception as error:  # a plugin objective broken at its defaults is listed so
            offers = f"error: {type(error).__name__}: {error}"
        cells = (
            name,
            "\n".join(f"{s.describe()}: {s.help}" for s in cls.settings) or "—",
            offers,
            cls.reference,
            entry.origin,
            cls.description,
        )
        view.add_row(*map(escape, cells))
    return view


OUTCOME_STYLES = {"pass": "green", "fail": "bold red", "skip": "dim", "info": "yellow"}


def conformance_table(report: ConformanceReport) -> Table:
    """``gradbench check``: every check with its outcome and evidence."""
    verdict = "passed" if report.passed else "FAILED"
    view = Table(
        title=f"conformance of {report.estimator}: {verdict}",
        title_justify="left",
        header_style="bold",
        caption=(
            f"unbiased: Bonferroni z-test at level {ALPHA:g} per objective; info = the "
            "estimator is declared biased, so its bias is shown, not judged."
        ),
        caption_justify="left",
    )
    for column in ("objective", "check", "outcome", "evidence"):
        view.add_column(column)
    for check in report.checks:
        style = OUTCOME_STYLES[check.outcome]
        view.add_row(
            check.objective, check.check, f"[{style}]{check.outcome}[/]", escape(check.evidence)
        )
    return view


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
