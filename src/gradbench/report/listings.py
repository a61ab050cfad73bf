"""``gradbench list`` and ``gradbench check``: the registered estimators and objectives, and a
conformance report."""

from __future__ import annotations

from collections.abc import Mapping

from rich.markup import escape
from rich.table import Table

from gradbench.extend.conformance import ALPHA, ConformanceReport
from gradbench.extend.registry import Entry


def _listing(title: str, entries: list[tuple[str, list[str]]]) -> Table:
    """Two columns that fit any width: the name, and lines about it that wrap."""
    view = Table(title=title, title_justify="left", title_style="bold", box=None, show_header=False)
    view.add_column("name", style="cyan", no_wrap=True)
    view.add_column("about", overflow="fold")
    for name, lines in entries:
        view.add_row(escape(name), escape("\n".join(lines)))
        view.add_row("", "")
    return view


def estimator_listing(entries: Mapping[str, Entry]) -> Table:
    """``gradbench list``: each registered estimator, with what it requires, whether it is
    unbiased, its evaluations per estimate, origin and options."""
    rows = []
    for name, entry in entries.items():
        cls = entry.cls
        lines = [
            cls.description,
            f"requires {cls.requirements()}; {cls.claim()};"
            f" {cls.evals_formula} evaluations per estimate; {entry.origin}",
            *(f"--set {name}.{s.describe()}: {s.help}" for s in cls.options),
        ]
        rows.append((name, lines))
    return _listing("estimators", rows)


def objective_listing(entries: Mapping[str, Entry]) -> Table:
    """``gradbench list``: each registered objective, with what it offers the estimators, its
    reference, origin and settings."""
    rows = []
    for name, entry in entries.items():
        cls = entry.cls
        offers = ", ".join(sorted(c.value for c in cls.declared_capabilities()))
        if not offers and cls.has_rsample is None:  # a model: all is read off its family
            offers = "what its distribution's family gives (read when it is built)"
        elif cls.has_rsample is None:
            offers += " (rsample: read off its distribution at run time)"
        reference = cls.reference_method if cls.has_own_reference() else "estimated at run time"
        lines = [
            cls.description,
            f"offers {offers or 'nothing'}; reference {reference}; {entry.origin}",
            *(f"--set {s.describe()}: {s.help}" for s in cls.settings),
        ]
        rows.append((name, lines))
    return _listing("objectives", rows)


OUTCOME_STYLES = {"pass": "green", "fail": "bold red", "skip": "dim", "info": "yellow"}


def conformance_table(report: ConformanceReport) -> Table:
    """``gradbench check``: every check with its outcome and evidence."""
    verdict = "passed" if report.passed else "FAILED"
    of_objective = report.kind == "objective"
    caption = (
        f"statistical checks: Bonferroni z-tests at level {ALPHA:g}."
        if of_objective
        else f"unbiased: Bonferroni z-test at level {ALPHA:g} per objective; info = the "
        "estimator is declared biased, so its bias is shown, not judged."
    )
    view = Table(
        title=f"conformance of {report.kind} {report.subject}: {verdict}",
        title_justify="left",
        header_style="bold",
        caption=caption,
        caption_justify="left",
    )
    names = (
        ("check", "outcome", "evidence")
        if of_objective
        else ("objective", "check", "outcome", "evidence")
    )
    for column in names:
        view.add_column(column)
    for check in report.checks:
        style = OUTCOME_STYLES[check.outcome]
        cells = [check.check, f"[{style}]{check.outcome}[/]", escape(check.evidence)]
        view.add_row(*(cells if of_objective else [check.objective, *cells]))
    return view
