"""The comparison as a person asked to see it: the compact per-objective view (default), or
every column in one wide table (``--wide``), in the terminal or as Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from rich.console import RenderableType

from gradbench.core.errors import InputError
from gradbench.report.columns import DEFAULT_COLUMNS, check_names
from gradbench.report.compact import compact_markdown, compact_view
from gradbench.report.tables import markdown_table, rich_table


@dataclass(frozen=True)
class ViewOptions:
    """``--columns`` (CSV names; None: the default), ``--wide`` and ``--sort``."""

    columns: Sequence[str] | None = None
    wide: bool = False
    sort: str | None = None

    def __post_init__(self) -> None:
        """Check the names up front, before the run whose view they choose."""
        if self.wide and (self.columns is not None or self.sort is not None):
            raise InputError(
                "--wide shows every column in the table's order; drop --columns/--sort"
            )
        check_names(self.names)
        if self.sort is not None:
            check_names([self.sort.removeprefix("-")], "--sort")

    @property
    def names(self) -> Sequence[str]:
        return DEFAULT_COLUMNS if self.columns is None else self.columns


def terminal_view(table: pd.DataFrame, options: ViewOptions) -> RenderableType:
    """What ``compare`` and ``report`` print."""
    if options.wide:
        return rich_table(table)
    return compact_view(table, options.names, options.sort)


def markdown_view(table: pd.DataFrame, options: ViewOptions) -> str:
    """What ``--markdown`` writes: the same view as the terminal's."""
    if options.wide:
        return markdown_table(table)
    return compact_markdown(table, options.names, options.sort)
