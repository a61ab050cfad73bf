"""Exact analysis: quadrature rules and the exact per-sample variances of estimators on
objectives with known structure. Used by estimators (their ``exact_variance``) and objectives
(their exact references); imports only :mod:`gradbench.core`."""
