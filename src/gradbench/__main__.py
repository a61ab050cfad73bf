"""``python -m gradbench``: the same command line as ``gradbench``."""

from gradbench.cli import main

main()
