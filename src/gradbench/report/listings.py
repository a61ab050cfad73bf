"""``gradbench list`` and ``gradbench check``: the registered estimators and objectives, and a
conformance report."""

from __future__ import annotations

from collections.abc import Mapping

from rich.markup import escape
from rich.table import Table

from gradbench.extend.conformance import ALPHA, ConformanceReport
from gradbench.extend.registry import Entry


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
            cls.reference_method,
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
