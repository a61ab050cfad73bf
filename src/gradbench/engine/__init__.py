"""The engine: one (objective, estimator) pair run in chunks on one device, reduced by the
streaming statistics, timed, within a memory budget."""
