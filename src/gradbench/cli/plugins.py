"""``--plugin``: load the specs a command names. One asked for by name that cannot be loaded
stops the command (one error line, exit status 2) before anything runs; a broken entry point of
an installed package, which nobody named, is a warning line and the command goes on."""

from __future__ import annotations

import typer

from gradbench.cli.console import USAGE_ERROR, error, warn
from gradbench.extend import plugins


def load_plugins(specs: list[str] | None) -> list[str]:
    """Load the entry points and ``--plugin`` specs; returns the specs, files made absolute.

    A spec that fails is ``gradbench: error: <the plugin error>`` and exit status 2.
    """
    plugins.autoload()
    for problem in plugins.problems():
        warn(problem)
    loaded = []
    for spec in specs or []:
        try:
            loaded.append(plugins.load_plugin(spec).spec)
        except plugins.PluginError as problem:
            error(str(problem))
            raise typer.Exit(USAGE_ERROR) from None
    return loaded
