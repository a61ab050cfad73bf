"""Delta-method control variates: the second-order Taylor expansion of f at the mean.

For q_θ = N(μ, diag σ²) the control variate is the quadratic

    h(x) = f(μ̂) + ∇f(μ̂)ᵀ(x − μ̂) + ½ (x − μ̂)ᵀ H(μ̂) (x − μ̂),   μ̂ = μ,

a fixed function of x (the expansion point is not differentiated), with the Gaussian
expectation E_q[h] = f(μ̂) + ∇f(μ̂)ᵀ(μ − μ̂) + ½[(μ − μ̂)ᵀH(μ − μ̂) + Σ_d H_dd σ_d²], whose gradient
at μ = μ̂ is ∇_θ E_q[h] = (∇f(μ̂), H_dd σ_d) in closed form. With s = ∇_θ log q_θ(x) =
(ε/σ, (ε² − 1)/σ) and x = μ + σ ⊙ ε,

* ``delta-method`` (score function; Paisley, Blei & Jordan 2012):
  g = f(x) s − β ⊙ (h(x) s − ∇_θ E_q[h]);
* ``delta-pathwise`` (Miller et al. 2017, "Reducing reparameterization gradient
  variance"): g = ∇_θ f(μ + σε) − β ⊙ (∇_θ h(μ + σε) − ∇_θ E_q[h]), where
  ∇_θ h(μ + σε) = (∇h(x), ε ⊙ ∇h(x)) and ∇h(x) = ∇f(μ̂) + H(μ̂)(x − μ̂).

Both brackets have mean 0, so g is unbiased for any β fixed while x is drawn; where f is
quadratic, f = h and β = 1 leaves no variance. Mohamed, Rosca, Figurnov & Mnih 2020, JMLR,
§7 (control variates, the delta method).

β ∈ ℝ^P holds one coefficient per coordinate of θ and is **state**: 1 after :meth:`reset` (the
plain delta method); :meth:`update` sets β_d = Cov(g⁰_d, c_d) / Var(c_d), the variance-optimal
coefficient, from the rows of the last :meth:`estimate` call, with g⁰ the estimate without
control variate and c the bracket (the old β_d stays where Var(c_d) = 0). Those rows are not
used again, so β is made of separate samples, as in the survey's code
(``estimate_control_variate_coefficients``, which pools one coefficient per parameter tensor);
within one call β is fixed and the n estimates are i.i.d. ``compare`` measures the estimators
after ``warm_up_steps`` = 1 update from ``warm_up_batch`` = 4096 estimates at the measured θ.
One update suffices: β is a least-squares coefficient in closed form, and more updates at the
same θ would only replace it by another estimate as good. The batch sets the price of β's
error, which adds (β̂_d − β*_d)² Var(c_d) to the variance at the optimum β*, in expectation
κ_d Var_{β*}(g_d) / batch with κ_d = E[c̃_d² r_d²] / (E[c̃_d²] E[r_d²]) for the centred bracket
c̃_d and residual r_d = g⁰_d − β*_d c_d (1 where they are independent; heavy tails of the score
times a quadratic make it large). In the survey's cos(5x) setting κ ≈ (6.7, 46) for the
score function's (μ, σ) and (1.0, 4.6) for the pathwise one, so with 4096 estimates the
variance exceeds the optimum's by about 1.1% in expectation (1024 left 4.5%); on cos(x) the
score function's κ_σ ≈ 410 still costs 10%. Larger batches cost memory (the warm-up is one
call, of ``[batch, P]`` tensors) and time at every checkpoint of ``gradbench train``.

Requires: a Gaussian objective (``mu``, ``sigma``, cost free of θ) with a differentiable cost.
Cost: 1 evaluation of f per estimate (h is a quadratic form), plus one value, gradient and
Hessian of f at μ̂ per call (autograd, one backward pass per row of the D × D Hessian; fine for
θ of a few hundred coordinates), which the count leaves out. Shapes: ``mu``, ``sigma`` ``[D]``;
estimates ``[n, P]``, P = 2D.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

from gradbench.analysis.delta_method_variance import (
    gradient_of_sum,
    pathwise_delta_variance,
    score_function_delta_variance,
)
from gradbench.analysis.exact_variance import SeparableGaussian
from gradbench.core.estimator import Estimator
from gradbench.core.objective import Capability, Objective
from gradbench.core.params import ParamLayout, Params

#: Coefficients listed one by one in :meth:`state_description` up to this many; a summary beyond.
LISTED_COEFFICIENTS = 6


@dataclass(frozen=True)
class TaylorExpansion:
    """h(x) = f(μ̂) + ∇f(μ̂)ᵀ(x − μ̂) + ½ (x − μ̂)ᵀ H (x − μ̂): ``point`` μ̂ and ``gradient`` ``[D]``,
    ``value`` ``[]``, ``hessian`` ``[D, D]``, all detached."""

    point: Tensor
    value: Tensor
    gradient: Tensor
    hessian: Tensor

    @classmethod
    def at_mean(cls, objective: Objective, params: Params) -> TaylorExpansion:
        """The expansion of the objective's cost at μ̂ = ``params["mu"]``: the gradient by
        autograd, the Hessian by one more backward pass per row (D of them). Plain autograd,
        not ``torch.func``: its first use imports ``torch._dynamo``, seconds of start-up."""
        fixed = {k: v.detach() for k, v in params.items()}
        point = fixed["mu"].clone().requires_grad_()
        with torch.enable_grad():
            value = objective.cost(point, fixed)
            gradient = gradient_of_sum(value, point, create_graph=True)
            rows = [gradient_of_sum(slope, point) for slope in gradient.unbind()]
        return cls(fixed["mu"], value.detach(), gradient.detach(), torch.stack(rows))

    def __call__(self, x: Tensor) -> Tensor:
        """h(x) for x ``[n, D]`` → ``[n]``."""
        offset = x - self.point
        quadratic = ((offset @ self.hessian) * offset).sum(-1)
        return self.value + offset @ self.gradient + 0.5 * quadratic

    def slope(self, x: Tensor) -> Tensor:
        """∇h(x) = ∇f(μ̂) + H (x − μ̂) for x ``[n, D]`` → ``[n, D]`` (H is symmetric)."""
        return self.gradient + (x - self.point) @ self.hessian

    def expectation_gradient(self, params: Params) -> Tensor:
        """∇_θ E_q[h] at μ = μ̂: (∇f(μ̂), H_dd σ_d), ``[P]``."""
        curvature = torch.diagonal(self.hessian)
        return ParamLayout.of(params).flatten(
            {"mu": self.gradient, "sigma": curvature * params["sigma"].detach()}
        )


class _DeltaMethod(Estimator):
    """g = g⁰ − β ⊙ c with the plain estimate g⁰ and the control variate c of a subclass."""

    requires = frozenset({Capability.GAUSSIAN, Capability.DIFFERENTIABLE_COST})
    stateful = True
    warm_up_steps = 1
    warm_up_batch = 4096

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        self._coefficients: Tensor | None = None  # None: β = 1
        self._updates = 0
        self._pending: tuple[Tensor, Tensor] | None = None

    @property
    def coefficients(self) -> Tensor | None:
        """β ``[P]`` after an update that changed it, None while β = 1."""
        return self._coefficients

    @property
    def updates(self) -> int:
        """Updates since the last :meth:`reset`."""
        return self._updates

    def reset(self, objective: Objective, params: Params) -> None:
        self._coefficients = None
        self._updates = 0
        self._pending = None

    def update(self, objective: Objective, params: Params) -> None:
        """β_d ← Cov(g⁰_d, c_d) / Var(c_d) over the last :meth:`estimate` call's rows, keeping
        β_d where Var(c_d) = 0; nothing when no estimate came since the last update."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        covariance, variance = pending  # centred sums [P]; their ratio is the coefficient
        old = torch.ones_like(variance) if self._coefficients is None else self._coefficients
        ratio = covariance / variance.clamp(min=torch.finfo(variance.dtype).tiny)
        self._coefficients = torch.where(variance > 0, ratio, old.to(variance))
        self._updates += 1

    def state_description(self) -> str:
        if self._coefficients is None:
            return f"β = 1 ({self._describe_updates()})"
        beta = self._coefficients.double().cpu()
        if beta.numel() <= LISTED_COEFFICIENTS:
            values = "(" + ", ".join(f"{float(b):.3g}" for b in beta) + ")"
        else:
            values = (
                f"{beta.numel()} coefficients in [{float(beta.min()):.3g}, "
                f"{float(beta.max()):.3g}], mean {float(beta.mean()):.3g}"
            )
        return f"β = {values} after {self._describe_updates()}"

    def _describe_updates(self) -> str:
        if self._updates == 0:
            return "no updates"
        return f"{self._updates} update" + ("s" if self._updates > 1 else "")

    def estimate(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> Tensor:
        taylor = TaylorExpansion.at_mean(objective, params)
        x = objective.sample(params, n, generator)
        noise = (x - params["mu"]) / params["sigma"]  # ε of x = μ + σ ⊙ ε
        plain, control = self.terms(objective, params, taylor, x, noise)
        control = control - taylor.expectation_gradient(params)
        plain_centred, control_centred = plain - plain.mean(0), control - control.mean(0)
        self._pending = ((plain_centred * control_centred).sum(0), control_centred.square().sum(0))
        beta = 1.0 if self._coefficients is None else self._coefficients.to(plain)
        return plain - beta * control

    @abstractmethod
    def terms(
        self,
        objective: Objective,
        params: Params,
        taylor: TaylorExpansion,
        x: Tensor,
        noise: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """The plain estimate g⁰ and the control variate's estimate before its expectation's
        gradient is subtracted, ``[n, P]`` each, of draws x = μ + σ ⊙ ε ``[n, D]``."""

    def exact_variance(self, objective: Objective, params: Params) -> Tensor | None:
        """Per-coordinate variance at the current β, by quadrature, for separable costs."""
        gaussian = SeparableGaussian.of(objective, params)
        if gaussian is None:
            return None
        beta = self._coefficients
        if beta is None:
            beta = torch.ones(ParamLayout.of(params).size, dtype=torch.float64)
        return self.variance_of(gaussian, beta)

    @staticmethod
    @abstractmethod
    def variance_of(gaussian: SeparableGaussian, beta: Tensor) -> Tensor:
        """The exact variance ``[P]`` at coefficients ``beta`` ``[P]``."""


class DeltaMethod(_DeltaMethod):
    """g = f(x) s − β ⊙ (h(x) s − ∇_θ E_q[h]), s = (ε/σ, (ε² − 1)/σ)."""

    name = "delta-method"
    description = "score function with the delta-method (2nd-order Taylor) control variate, β state"

    def terms(
        self,
        objective: Objective,
        params: Params,
        taylor: TaylorExpansion,
        x: Tensor,
        noise: Tensor,
    ) -> tuple[Tensor, Tensor]:
        sigma = params["sigma"]
        score = ParamLayout.of(params).flatten(
            {"mu": noise / sigma, "sigma": (noise**2 - 1) / sigma}, batch_dims=1
        )
        with torch.no_grad():
            cost = objective.cost(x, params)
        return cost.unsqueeze(-1) * score, taylor(x).unsqueeze(-1) * score

    variance_of = staticmethod(score_function_delta_variance)


class PathwiseDeltaMethod(_DeltaMethod):
    """g = ∇_θ f(μ + σε) − β ⊙ (∇_θ h(μ + σε) − ∇_θ E_q[h])."""

    name = "delta-pathwise"
    description = "pathwise with the delta-method (2nd-order Taylor) control variate, β state"

    def terms(
        self,
        objective: Objective,
        params: Params,
        taylor: TaylorExpansion,
        x: Tensor,
        noise: Tensor,
    ) -> tuple[Tensor, Tensor]:
        layout = ParamLayout.of(params)

        def pulled_back(slope: Tensor) -> Tensor:  # ∇_x → ∇_θ of x = μ + σ ⊙ ε
            return layout.flatten({"mu": slope, "sigma": slope * noise}, batch_dims=1)

        point = x.detach().requires_grad_()
        with torch.enable_grad():
            cost_slope = gradient_of_sum(objective.cost(point, params), point)  # ∇f(x_i)
        return pulled_back(cost_slope), pulled_back(taylor.slope(x))

    variance_of = staticmethod(pathwise_delta_variance)
