"""``--plugin``: load the specs a command names; a broken one is a warning line, not a stop."""

from __future__ import annotations

from gradbench.cli.console import warn
from gradbench.extend import plugins


def load_plugins(specs: list[str] | None) -> list[str]:
    """Load the entry points and ``--plugin`` specs; returns the specs that loaded."""
    plugins.autoload()
    loaded = []
    for spec in specs or []:
        try:
            plugins.load_plugin(spec)
        except plugins.PluginError as problem:
            warn(str(problem))
        else:
            loaded.append(spec)
    for problem in plugins.problems():
        warn(problem)
    return loaded
