"""The ``gradbench`` command line: parses arguments and calls the Python API, nothing more.

:mod:`.app` holds the application; importing the command modules registers their commands.
"""

from gradbench.cli import compare, inspect, saved, sweep, train
from gradbench.cli.app import app, main

__all__ = ["app", "compare", "inspect", "main", "saved", "sweep", "train"]
