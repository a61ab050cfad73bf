"""Sweeps: a grid of settings with replicates as independent tasks, run in this process, a
process pool or on Dask, journalled for ``--resume``, aggregated over replicates."""
