"""Randomized quasi-Monte Carlo pathwise estimator: the reparameterization gradient averaged over
a scrambled Sobol net (Owen 1997; for gradients, Buchholz, Wenzel & Mandt 2018, ICML).

    g = (1/m) Σ_{j=1..m} ∇_θ f(T_θ(ε_j); θ),   ε_j = F⁻¹(u_j),   {u_1, …, u_m} ⊂ (0, 1)^D

with {u_j} the first m = 2^k points of the D-dimensional Sobol sequence under a random linear
matrix scramble and digital shift (Matoušek 1998), D the number of noise coordinates of one
draw and F⁻¹ the objective's coordinatewise inverse CDF (:meth:`Objective.noise_from_uniforms`).
Each scrambled point is U(0, 1)^D, so ε_j has the law of the noise and g is unbiased, like the
mean of m ``reparam`` estimates. The points are not independent: they stay a net, every
elementary interval of volume 2^{t−k} holds exactly 2^t of them, so their errors cancel. Var g
is o(1/m) for every square-integrable integrand and O(m⁻³ (log m)^{D−1}) for smooth ones
(Owen 1997, SIAM J. Numer. Anal. 34, 1884–1910); the scramble used here has the variance of
Owen's nested scramble (Owen 2003, ACM TOMACS 13, 363–378).

Only m = 2^k points form a net: a prefix of other length is unbalanced, and costs evaluations
without the net's variance (Owen 2022, "On dropping the first Sobol' point"), so the option
``points`` refuses other values and names the nearest powers of 2.

The n estimates of a call use n independent scrambles drawn from the run's generator, so they
are i.i.d. and every statistic of the harness keeps its meaning. One ``SobolEngine`` per
estimate costs about 0.17 ms to build and draw (1.7 s per call of n = 10⁴ at D = 1, m = 16, on
one CPU core, against 0.04 s for this whole estimate), so :func:`scrambled_sobol_nets`
scrambles the unscrambled net itself, vectorised
over the n estimates on the generator's device. The first 2^k points of each Sobol coordinate
are the integers 0 … 2^k − 1 (over 2^k) in some order, so only k columns of each random
lower-triangular matrix act on them: u = (e ⊕ ⊕_{r ≤ k} a_r(x) c_r) 2⁻⁶², with a_r(x) the r-th
binary digit of x, c_r a 62-bit column with its r-th digit 1 and random digits after it, and e
a random 62-bit shift, one of each per estimate and coordinate.

Shapes: nets ``[n, m, D]``; the noise ``[n·m, *noise]``; per-sample gradients ``[n·m, P]``,
averaged to ``[n, P]``. Requires: ``rsample``, a differentiable cost, noise by inversion, and
D ≤ 21201 (the Sobol direction numbers of Joe & Kuo that ``SobolEngine`` holds). Cost: m
evaluations of f per estimate.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor
from torch.quasirandom import SobolEngine

from gradbench.core.estimator import Estimator, pathwise_gradients
from gradbench.core.objective import Capability, Objective
from gradbench.core.params import Params
from gradbench.core.settings import Setting

#: Noise coordinates D of one draw at most: the dimensions of Sobol direction numbers known.
MAX_DIMENSION = SobolEngine.MAXDIM
#: Binary digits of each scrambled coordinate, beyond float64's 53 so that none is lost.
DIGITS = 62


def _power_of_two(value: float) -> str | None:
    """Check that returns a message unless ``value`` is 1, 2, 4, 8, …"""
    count = int(value)
    if count >= 1 and count & (count - 1) == 0:
        return None
    below = 2 ** max(math.floor(math.log2(max(count, 1))), 0)
    return (
        f"must be a power of 2 (only 2^k Sobol points form a balanced net); "
        f"use {below} or {2 * below}"
    )


@functools.cache
def sobol_net(m: int, dimension: int) -> Tensor:
    """The first m = 2^k unscrambled Sobol points times m: integers in [0, m), ``[m, D]`` int64
    on the CPU, each column a permutation of 0 … m − 1."""
    points = SobolEngine(dimension).draw(m, dtype=torch.float64)
    return (points * m).to(torch.int64)


def scrambled_sobol_nets(
    n: int, m: int, dimension: int, generator: torch.Generator, dtype: torch.dtype
) -> Tensor:
    """n independent scrambles of the m-point Sobol net in D dimensions, ``[n, m, D]`` in
    ``dtype`` on ``generator``'s device, every point U(0, 1)^D, strictly inside (0, 1)
    (:func:`inside_unit_interval`)."""
    digits = m.bit_length() - 1
    device = generator.device
    net = sobol_net(m, dimension).to(device)
    low = torch.randint(0, 2**DIGITS, (n, dimension, digits), generator=generator, device=device)
    shift = torch.randint(0, 2**DIGITS, (n, 1, dimension), generator=generator, device=device)
    lead = 2 ** torch.arange(DIGITS - 1, DIGITS - 1 - digits, -1, device=device)
    columns = lead | (low & (lead - 1))  # digit r is 1, digits after it random
    scrambled = shift.expand(n, m, dimension).clone()
    for r in range(digits):
        digit = (net >> (digits - 1 - r)) & 1  # the r-th binary digit of each point, MSB first
        scrambled ^= digit * columns[:, None, :, r]
    return inside_unit_interval((scrambled.to(torch.float64) * 2.0**-DIGITS).to(dtype))


def inside_unit_interval(uniforms: Tensor) -> Tensor:
    """u clamped in place to the open interval (0, 1) of its dtype: [tiny, 1 − eps/2].

    The digits are exact, but u = y·2⁻⁶² can be 0, and rounding to the dtype sends the top of
    the interval to 1.0 (probability 2⁻⁵⁴ per coordinate in float64, 2⁻²⁵ in float32: once in
    a few hundred calls of 10⁵ points); Φ⁻¹(0) = −∞ and Φ⁻¹(1) = +∞ would make the cost and its
    gradient infinite or NaN. Only such u move, to the nearest value of the dtype inside
    (0, 1), which changes the law by less than the dtype's own rounding.
    """
    finfo = torch.finfo(uniforms.dtype)
    return uniforms.clamp_(finfo.tiny, 1 - finfo.eps / 2)


def noise_probe(objective: Objective, params: Params, device: torch.device) -> Tensor:
    """One draw of ``objective``'s noise ``[1, *noise]``, for its shape (D = numel) and dtype,
    from a generator of its own on ``device``, so the run's stream is left untouched."""
    return objective.noise(1, params, torch.Generator(device=device).manual_seed(0))


class RandomizedQuasiMonteCarlo(Estimator):
    """Surrogate L_ij = f(T_θ(F⁻¹(u_ij)); θ) over n independently scrambled Sobol nets
    {u_i1, …, u_im}; the estimate i is the mean of its m gradients."""

    name = "rqmc-reparam"
    description = "pathwise ∇f averaged over a scrambled Sobol net of m points (RQMC)"
    requires = frozenset(
        {Capability.RSAMPLE, Capability.DIFFERENTIABLE_COST, Capability.NOISE_BY_INVERSION}
    )
    options = (Setting("points", int, 16, "m, points of each scrambled Sobol net", _power_of_two),)
    evals_formula = "m"

    @property
    def points(self) -> int:
        return int(self.option("points"))

    def evals_per_sample(self, grad_dim: int) -> int:
        return self.points

    def skip_reason(self, objective: Objective) -> str:
        lacking = super().skip_reason(objective)
        if lacking:
            return lacking
        probe = noise_probe(objective, objective.parameters(), torch.device("cpu"))
        dimension = probe[0].numel()
        if dimension > MAX_DIMENSION:
            return (
                f"needs at most {MAX_DIMENSION} noise coordinates per draw (Sobol direction "
                f"numbers), and {objective.name} has {dimension}"
            )
        return ""

    def working_bytes(self, objective: Objective, params: Params) -> int:
        """The scrambling's arrays per estimate (:func:`scrambled_sobol_nets`): at its peak
        three [m, D] arrays of 8-byte integers or floats, and the random digits [D, log₂ m]."""
        if self.skip_reason(objective):
            return 0
        m = self.points
        dimension = noise_probe(objective, objective.parameters(), torch.device("cpu"))[0].numel()
        return 8 * dimension * (3 * m + m.bit_length() - 1)

    def estimate(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> Tensor:
        m = self.points
        probe = noise_probe(objective, params, generator.device)
        shape = probe.shape[1:]
        uniforms = scrambled_sobol_nets(n, m, shape.numel(), generator, probe.dtype)
        noise = objective.noise_from_uniforms(uniforms.reshape(n * m, *shape), params)
        return pathwise_gradients(objective, params, noise).reshape(n, m, -1).mean(1)
