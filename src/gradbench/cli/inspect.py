"""``gradbench list`` and ``gradbench check``: what is registered, and whether an estimator
conforms."""

from __future__ import annotations

from typing import Annotated

import typer

from gradbench.api import check as check_estimator
from gradbench.cli import options
from gradbench.cli.app import app
from gradbench.cli.console import RUNTIME_ERROR, USAGE_ERROR, error, stdout
from gradbench.cli.plugins import load_plugins
from gradbench.core.errors import InputError
from gradbench.extend import registry
from gradbench.report.listings import conformance_table, estimator_listing, objective_listing


@app.command("list")
def list_command(plugin: options.Plugins = None) -> None:
    """List the registered estimators and objectives, with requirements, settings and origin."""
    load_plugins(plugin)
    console = stdout()
    console.print(estimator_listing(registry.estimators.entries()))
    console.print(objective_listing(registry.objectives.entries()))


@app.command()
def check(
    estimator: Annotated[str, typer.Argument(metavar="ESTIMATOR", help="Estimator to check.")],
    samples: Annotated[
        int,
        typer.Option(
            "-n",
            "--samples",
            parser=options.POSITIVE,
            metavar="N",
            help="Estimates per unbiasedness test.",
        ),
    ] = 100_000,
    seed: Annotated[
        int, typer.Option(parser=options.SEED, metavar="S", help="Seed of every test.")
    ] = 0,
    device: options.Device = "cpu",
    dtype: options.Dtype = "float32",
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="An option of the estimator; repeatable."),
    ] = None,
    plugin: options.Plugins = None,
) -> None:
    """Run the conformance suite on an estimator: shape, dtype, device, finite values,
    determinism, and unbiasedness on constant, linear and quadratic costs.
    Exits 1 when a check fails."""
    load_plugins(plugin)
    try:
        report = check_estimator(
            estimator, samples, seed, device, dtype, options=options.parse_settings(set_)
        )
    except InputError as problem:
        error(str(problem))
        raise typer.Exit(USAGE_ERROR) from None
    stdout().print(conformance_table(report))
    if not report.passed:
        raise typer.Exit(RUNTIME_ERROR)
