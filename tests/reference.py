"""Exact moments of one-dimensional Gaussian estimators, by Gauss–Hermite quadrature.

Independent of gradbench's own code: a per-sample estimate written as a function of the
standard normal noise ε has mean, variance and fourth central moment E[(g − Eg)^4] computed by
probabilists' Gauss–Hermite quadrature, exact for polynomials of degree < 2·nodes and accurate to
machine precision for the smooth costs used here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

NODES, WEIGHTS = np.polynomial.hermite_e.hermegauss(120)
WEIGHTS = WEIGHTS / math.sqrt(2 * math.pi)


@dataclass(frozen=True)
class Moments:
    mean: float
    variance: float
    fourth: float  # fourth central moment

    def variance_of_sample_variance(self, n: int) -> float:
        """Exact Var(s²) of the unbiased sample variance of n i.i.d. draws."""
        return self.fourth / n - self.variance**2 * (n - 3) / (n * (n - 1))


def expectation(function: Callable[[np.ndarray], np.ndarray]) -> float:
    """E[function(ε)] for ε ~ N(0, 1)."""
    return float(np.sum(WEIGHTS * function(NODES)))


def moments(estimate: Callable[[np.ndarray], np.ndarray]) -> Moments:
    mean = expectation(estimate)
    variance = expectation(lambda e: (estimate(e) - mean) ** 2)
    fourth = expectation(lambda e: (estimate(e) - mean) ** 4)
    return Moments(mean, variance, fourth)


def two_point_moments(values: tuple[float, float], p: float) -> Moments:
    """Moments of a variable equal to values[1] with probability p, else values[0]."""
    low, high = values
    mean = p * high + (1 - p) * low
    central = [(low - mean), (high - mean)]
    weights = [1 - p, p]
    variance = sum(w * c**2 for w, c in zip(weights, central, strict=True))
    fourth = sum(w * c**4 for w, c in zip(weights, central, strict=True))
    return Moments(mean, variance, fourth)
