"""The ``gradbench`` application: its commands, and usage errors as one line.

Data goes to stdout, progress and diagnostics to stderr. Bad input is one line on stderr and exit
status 2; a runtime failure is one line and status 1; Ctrl-C keeps what finished (status 130).
The commands live in :mod:`.compare`, :mod:`.sweep`, :mod:`.inspect` and :mod:`.saved`; each
parses its arguments and calls the Python API, nothing more.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup
from typer.exceptions import Abort, TyperException

from gradbench.cli.console import INTERRUPTED, error


class _OneLineErrors(TyperGroup):
    """Report usage errors as one ``gradbench: error: …`` line instead of a boxed panel."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            outcome = super().main(*args, standalone_mode=False, **kwargs)
            code = outcome if isinstance(outcome, int) else 0
        except TyperException as problem:
            error(f"{problem.format_message()} (see gradbench --help)")
            code = problem.exit_code
        except Abort:
            error("aborted")
            code = INTERRUPTED
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=_OneLineErrors,
    add_completion=False,
    invoke_without_command=True,
    help="Benchmark Monte Carlo gradient estimators: bias, variance and cost against exact"
    " gradients.",
)


@app.callback()
def _root(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


def main() -> None:
    """Console-script entry point."""
    app()
