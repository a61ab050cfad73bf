"""Contracts every layer builds on: the objective and estimator interfaces, capabilities, named
parameters, declared settings and their routing, outcomes, seeds and user-facing errors.

Imports nothing else of gradbench."""
