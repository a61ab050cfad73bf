"""Extension: the registries of estimators and objectives, plugin loading (entry points,
modules, files) and the conformance suite every estimator passes."""
