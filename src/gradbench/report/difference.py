"""Two results compared, for people: a rich table that fits 80 columns, the same as Markdown,
the lines naming unmatched rows and changed bias verdicts, and the caption defining it all.

The terminal table has five columns: the pair (one heading row per objective configuration,
its estimators indented below), the variance ratio B/A with its 95% interval, its verdict, the
time ratio B/A and its verdict. Markdown adds the two variances, having no width to keep.
"""

from __future__ import annotations

import math

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from gradbench.core.status import Status
from gradbench.records.difference import (
    BOTH_ZERO,
    FASTER,
    HIGHER,
    KEY_PREFIXES,
    LOWER,
    NOT_SIGNIFICANT,
    SIGNIFICANCE,
    SLOWER,
    UNDEFINED,
    Difference,
    comparable,
)
from gradbench.report.format import bias_verdict, number

HEADERS = ("pair", "variance B/A [95% CI]", "verdict", "time B/A", "verdict")
#: Markdown's columns: the terminal's with the two variances after the pair.
MARKDOWN_HEADERS = ("pair", "variance A", "variance B", *HEADERS[1:])
#: How each verdict of :mod:`gradbench.records.difference` is shown, and its colour.
VERDICTS = {
    LOWER: "lower",
    HIGHER: "higher",
    FASTER: "faster",
    SLOWER: "slower",
    NOT_SIGNIFICANT: "n.s.",
    BOTH_ZERO: "both zero",
    UNDEFINED: "—",
}
VERDICT_STYLES = {LOWER: "green", FASTER: "green", HIGHER: "red", SLOWER: "red"}
#: Where each estimator row's name starts under its objective's heading row.
INDENT = "  "


def row_labels(rows: list[dict]) -> list[tuple[str, str]]:
    """(objective label, estimator label) of each row.

    The objective label is its name with those settings, sweep axes and the replicate whose
    values differ among the rows of that name (``k=3``; a setting and the axis over it show
    once); the estimator label is its name with the options that differ among its rows.
    """
    objectives = _labels(rows, "objective", ("setting_", "param_", "replicate"))
    estimators = _labels(rows, "estimator", ("option_",))
    return list(zip(objectives, estimators, strict=True))


def _labels(rows: list[dict], name: str, prefixes: tuple[str, ...]) -> list[str]:
    """Each row's ``name`` followed by ``key=value`` for the ``prefixes`` columns that vary
    among the rows sharing that name."""
    columns = sorted({c for row in rows for c in row if c.startswith(prefixes)}, key=_plain)
    varying: dict[str, list[str]] = {}
    for own in {row[name] for row in rows}:
        same = [row for row in rows if row[name] == own]
        varying[own] = [c for c in columns if len({comparable(row.get(c)) for row in same}) > 1]
    labels = []
    for row in rows:
        shown: dict[str, str] = {}
        for column in varying[row[name]]:
            value = row.get(column)
            if comparable(value) is not None:
                shown.setdefault(_plain(column), _value(value))
        labels.append(" ".join([str(row[name]), *(f"{k}={v}" for k, v in shown.items())]))
    return labels


def _plain(column: str) -> str:
    """A key column's name without its prefix: ``setting_k`` and ``param_k`` are both ``k``."""
    for prefix in KEY_PREFIXES:
        column = column.removeprefix(prefix)
    return column


def _value(value: object) -> str:
    """A key value as text: numbers to three significant figures."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return number(float(value))


def pair_label(objective: str, estimator: str) -> str:
    return f"{objective} × {estimator}"


def status_text(row: dict) -> str:
    """The statuses of a pair not ok on both sides: ``skipped`` when equal, else each side's."""
    if row["status_a"] == row["status_b"]:
        return row["status_a"]
    return f"A {row['status_a']}, B {row['status_b']}"


def cells(row: dict) -> list[str]:
    """The displayed cells of one compared pair after its label: variance ratio [interval],
    verdict, time ratio, verdict; the statuses instead when a side is not ok."""
    if row["status_a"] != Status.OK or row["status_b"] != Status.OK:
        return [status_text(row), "", "", ""]
    ratio = number(row["variance_ratio"])
    if not math.isnan(row["variance_ratio_low"]):
        ratio += f" [{number(row['variance_ratio_low'])}, {number(row['variance_ratio_high'])}]"
    if row["variance_verdict"] == BOTH_ZERO:
        ratio = "—"
    return [
        ratio,
        VERDICTS[row["variance_verdict"]],
        number(row["time_ratio"]),
        VERDICTS[row["time_verdict"]],
    ]


def labels_by_part(difference: Difference) -> list[list[tuple[str, str]]]:
    """The (objective, estimator) labels of the matched pairs, of the rows only in A and of
    those only in B, worked out over all of them so that one row reads the same in each."""
    parts = [t.to_dict("records") for t in (difference.pairs, difference.only_a, difference.only_b)]
    labels = row_labels([row for part in parts for row in part])
    split, start = [], 0
    for part in parts:
        split.append(labels[start : start + len(part)])
        start += len(part)
    return split


def displayed_rows(difference: Difference) -> list[tuple[str, str, dict]]:
    """(objective label, estimator label, pair row) per matched pair, grouped by objective
    label in order of first appearance."""
    labels = labels_by_part(difference)[0]
    order = list(dict.fromkeys(objective for objective, _ in labels))
    rows = difference.pairs.to_dict("records")
    shown = [(o, e, row) for (o, e), row in zip(labels, rows, strict=True)]
    return sorted(shown, key=lambda item: order.index(item[0]))


def note_lines(difference: Difference) -> list[str]:
    """One line for the rows only in A, one for those only in B, and one per pair whose bias
    verdict changed (``n.s.`` or ``p=…``, as the comparison table writes it)."""
    _, only_a, only_b = labels_by_part(difference)
    sides = [("A", difference.source_a, only_a), ("B", difference.source_b, only_b)]
    lines = [
        f"only in {side} ({source}): " + ", ".join(pair_label(*label) for label in labels)
        for side, source, labels in sides
        if labels
    ]
    for objective, estimator, row in displayed_rows(difference):
        if row["bias_changed"]:
            was = bias_verdict({"bias_p": row["bias_p_a"]})
            now = bias_verdict({"bias_p": row["bias_p_b"]})
            lines.append(f"bias changed: {pair_label(objective, estimator)}: A {was}, B {now}")
    return lines


def caption(difference: Difference) -> str:
    """What the columns mean, the tests included."""
    return (
        f"A = {difference.source_a}, B = {difference.source_b}. "
        "variance B/A: ratio of the variances with its 95% interval exp(d ± 1.96·se_d), "
        "d = log V_B − log V_A, se_d = √(se_A² + se_B²) from each file's jackknife interval of "
        f"log V; lower/higher: p < {SIGNIFICANCE:.2g} in a two-sided normal test of d = 0, n.s. "
        "otherwise (one test per pair: 1 in 20 unchanged pairs is flagged by chance); both zero: "
        "V = 0 on both sides, the ratio is undefined. time B/A: ratio of the median times per "
        "estimate; faster/slower when the [min, max] ranges of the timed repeats of A and B do "
        "not overlap, n.s. when they overlap. —: undefined (no interval, not timed, or one "
        "repeat). A pair not ok on a side shows its statuses (reasons in the files)."
    )


def rich_table(difference: Difference) -> Table:
    """The terminal view: a heading row per objective configuration, its estimators below,
    verdicts coloured (green: B lower or faster, red: B higher or slower). Only the pair column
    wraps (a word longer than its width folds onto the next line), so no cell is cut at 80
    columns."""
    view = Table(caption=escape(caption(difference)), caption_justify="left", header_style="bold")
    view.add_column(HEADERS[0], overflow="fold")
    view.add_column(HEADERS[1], justify="right", no_wrap=True)
    view.add_column(HEADERS[2], no_wrap=True)
    view.add_column(HEADERS[3], justify="right", no_wrap=True)
    view.add_column(HEADERS[4], no_wrap=True)
    previous = None
    for objective, estimator, row in displayed_rows(difference):
        if objective != previous:
            if previous is not None:
                view.add_section()
            view.add_row(Text(objective, style="bold cyan"), "", "", "", "")
            previous = objective
        ratio, variance_verdict, time_ratio, time_verdict = cells(row)
        ok = row["status_a"] == Status.OK and row["status_b"] == Status.OK
        view.add_row(
            Text(INDENT + estimator),
            Text(ratio),
            Text(variance_verdict, style=VERDICT_STYLES.get(row["variance_verdict"], "")),
            Text(time_ratio),
            Text(time_verdict, style=VERDICT_STYLES.get(row["time_verdict"], "")),
            style=None if ok else "dim",
        )
    return view


def markdown_table(difference: Difference) -> str:
    """The comparison as a GitHub-flavoured Markdown table, the note lines as a list, then the
    caption."""
    lines = [
        "| " + " | ".join(MARKDOWN_HEADERS) + " |",
        "|" + "|".join(["---", "---:", "---:", "---:", "---", "---:", "---"]) + "|",
    ]
    for objective, estimator, row in displayed_rows(difference):
        ratio, *rest = cells(row)
        variances = [number(row["variance_a"]), number(row["variance_b"])]
        shown = [pair_label(objective, estimator), *variances, ratio, *rest]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in shown) + " |")
    notes = "".join(f"- {line}\n" for line in note_lines(difference))
    return "\n".join(lines) + "\n\n" + (notes + "\n" if notes else "") + caption(difference) + "\n"
