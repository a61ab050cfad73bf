"""The ``gradbench`` command line: parses arguments and calls the Python API, nothing more."""

from gradbench.cli.app import app, main

__all__ = ["app", "main"]
