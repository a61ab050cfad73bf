"""The ``gradbench`` command line: parses arguments and calls the Python API, nothing more.

:mod:`.app` holds the application; importing the command modules registers their commands.
Each command imports the library it calls when it runs, not when it is registered, so a
command loads only what it needs: ``gradbench list`` neither pandas nor the report and the
sweeps (a fifth of a second; scipy, another tenth, is imported where it is used).
"""

from gradbench.cli import compare, inspect, saved, sweep, train
from gradbench.cli.app import app, main

__all__ = ["app", "compare", "inspect", "main", "saved", "sweep", "train"]
