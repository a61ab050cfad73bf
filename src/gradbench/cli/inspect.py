"""``gradbench list`` and ``gradbench check``: what is registered, and whether an estimator or
an objective conforms."""

from __future__ import annotations

from typing import Annotated

import typer

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
    name: Annotated[str, typer.Argument(metavar="NAME", help="Estimator or objective to check.")],
    samples: Annotated[
        int | None,
        typer.Option(
            "-n",
            "--samples",
            parser=options.POSITIVE,
            metavar="N",
            help="Estimates (draws) per statistical test (default: 100000 for an estimator,"
            " 20000 for an objective).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(parser=options.SEED, metavar="S", help="Seed of every test.")
    ] = 0,
    device: options.Device = "cpu",
    dtype: Annotated[
        str | None,
        typer.Option(
            metavar="DTYPE",
            help="float32 or float64 (default: float32 for an estimator, float64 for an"
            " objective).",
            show_default=False,
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="An option of the estimator or a setting of the objective; repeatable.",
        ),
    ] = None,
    reference_samples: options.ReferenceSamples = None,
    reference_estimator: options.ReferenceEstimator = None,
    no_cache: options.NoCache = False,
    cache_dir: options.CacheDir = None,
    plugin: options.Plugins = None,
) -> None:
    """Run the conformance suite on an estimator (shape, dtype, device, finite values,
    determinism, unbiasedness on constant, linear and quadratic costs) or on an objective
    (shapes, determinism, its claimed capabilities, its draws, its reference against an
    independent estimate). Exits 1 when a check fails."""
    from gradbench.api import check as check_conformance

    load_plugins(plugin)
    objective = name in registry.objectives.names()
    try:
        report = check_conformance(
            name,
            (20_000 if objective else 100_000) if samples is None else samples,
            seed,
            device,
            ("float64" if objective else "float32") if dtype is None else dtype,
            options=options.parse_settings(set_),
            reference=options.reference_options(
                reference_samples, reference_estimator, no_cache, cache_dir
            ),
        )
    except InputError as problem:
        error(str(problem))
        raise typer.Exit(USAGE_ERROR) from None
    stdout().print(conformance_table(report))
    if not report.passed:
        raise typer.Exit(RUNTIME_ERROR)
