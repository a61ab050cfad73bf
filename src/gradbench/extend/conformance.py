"""The conformance suite every estimator passes, built-in or plugin.

On constant, linear and quadratic costs of a Gaussian, a Bernoulli and a categorical
distribution (three coordinates or variables with distinct parameters each, so a swapped or
mixed-up coordinate shows; the categorical quadratic couples its variables), and on two
K = 3 importance-weighted bounds (a linear-Gaussian model with q off the posterior, exact by
quadrature, and a discrete one, exact by enumeration), an estimator must

* return ``[n, P]`` estimates in the run's dtype, on the run's device;
* return finite values;
* return the same estimates for the same seed (every draw from the given generator);
* be unbiased, if it claims to be: the Bonferroni z-test of :mod:`gradbench.stats.summary` on
  ``n_samples`` estimates must not reject at level :data:`ALPHA`. A correct unbiased estimator
  fails one objective's test with probability at most 1e-4, the eleven of a suite at most
  1.1e-3.
  An estimator declared biased gets the same evidence, reported, not judged.

Objectives whose capabilities the estimator does not find are reported as skipped; an
estimator that runs on none of them fails. :func:`check_estimator` runs the suite;
``gradbench check NAME`` prints it; the project's tests run it over every registered estimator.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

import torch
from torch import Tensor

from gradbench.core.estimator import Estimator
from gradbench.core.objective import Objective
from gradbench.core.params import ParamLayout, Params
from gradbench.core.settings import Setting, at_least
from gradbench.engine.run import RunConfig, run_pair
from gradbench.objectives.bernoulli import BernoulliToy
from gradbench.objectives.categorical import CategoricalProduct
from gradbench.objectives.gaussian import GaussianObjective
from gradbench.objectives.importance_weighted import DiscreteBound, LinearGaussianBound

ALPHA = 1e-4
DIM = 3
_STRUCTURE_BATCH = 16

PASS, FAIL, SKIP, INFO = "pass", "fail", "skip", "info"


class _GaussianPolynomial(GaussianObjective):
    """c(x) = c0 + c1 x + c2 x², E = c0 + c1 μ + c2 (μ² + σ²); μ, σ differ per coordinate."""

    coefficients: ClassVar[tuple[float, float, float]]
    settings = (Setting("dim", int, DIM, "coordinates", at_least(1)),)

    def parameters(self) -> Params:
        dim = int(self.setting("dim"))
        return {
            "mu": torch.linspace(-0.5, 1.0, dim, dtype=torch.float64),
            "sigma": torch.linspace(0.5, 1.5, dim, dtype=torch.float64),
        }

    def coordinate_cost(self, x: Tensor) -> Tensor:
        c0, c1, c2 = self.coefficients
        return c0 + c1 * x + c2 * x**2

    def expected_coordinate_cost(self, mu: Tensor, sigma: Tensor) -> Tensor:
        c0, c1, c2 = self.coefficients
        return c0 + c1 * mu + c2 * (mu**2 + sigma**2)


class GaussianConstant(_GaussianPolynomial):
    name = "check-gaussian-constant"
    description = "f(x) = Σ 1.5, x ~ N(μ, σ²)"
    coefficients = (1.5, 0.0, 0.0)


class GaussianLinear(_GaussianPolynomial):
    name = "check-gaussian-linear"
    description = "f(x) = Σ (0.5 − 2x), x ~ N(μ, σ²)"
    coefficients = (0.5, -2.0, 0.0)


class GaussianQuadratic(_GaussianPolynomial):
    name = "check-gaussian-quadratic"
    description = "f(x) = Σ (0.2 − 0.6x + x²), x ~ N(μ, σ²)"
    coefficients = (0.2, -0.6, 1.0)


class _BernoulliPolynomial(BernoulliToy):
    """f(b) = Σ c0 + c1 b + c2 b², E = Σ c0 + (c1 + c2) p; logits differ per coordinate."""

    coefficients: ClassVar[tuple[float, float, float]]
    settings = (Setting("dim", int, DIM, "coordinates", at_least(1)),)

    def parameters(self) -> Params:
        return {"logit": torch.linspace(-1.0, 1.0, int(self.setting("dim")), dtype=torch.float64)}

    def cost(self, x: Tensor, params: Params) -> Tensor:
        c0, c1, c2 = self.coefficients
        return (c0 + c1 * x + c2 * x**2).sum(-1)

    def expected_cost(self, params: Params) -> Tensor:
        c0, c1, c2 = self.coefficients
        return (c0 + (c1 + c2) * torch.sigmoid(params["logit"])).sum()


class BernoulliConstant(_BernoulliPolynomial):
    name = "check-bernoulli-constant"
    description = "f(b) = Σ 1.5"
    coefficients = (1.5, 0.0, 0.0)


class BernoulliLinear(_BernoulliPolynomial):
    name = "check-bernoulli-linear"
    description = "f(b) = Σ (0.5 − 2b)"
    coefficients = (0.5, -2.0, 0.0)


class BernoulliQuadratic(_BernoulliPolynomial):
    name = "check-bernoulli-quadratic"
    description = "f(b) = Σ (b − 0.3)²"
    coefficients = (0.09, -0.6, 1.0)


class _CategoricalPolynomial(CategoricalProduct):
    """f(x) = c0 + c1 v̄ + c2 v̄² of the mean position v̄ of three categoricals with three
    categories; the logits differ per variable and category. E = c0 + c1 E v̄ + c2 (Var v̄ +
    (E v̄)²) in closed form (the variables are independent), so a constant's gradient is
    exactly 0, as the Bernoulli and Gaussian checks' are."""

    coefficients: ClassVar[tuple[float, float, float]]
    settings = (Setting("variables", int, DIM, "categorical variables", at_least(1)),)

    def validate(self) -> None:
        """Nothing to check across the one setting."""

    def parameters(self) -> Params:
        variables = int(self.setting("variables"))
        scales = torch.linspace(-1.5, 1.0, variables, dtype=torch.float64)
        return {"logits": torch.outer(scales, torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64))}

    def cost_terms(self, x: Tensor, params: Params) -> None:
        """None: the quadratic couples the variables, and no check declares terms."""
        return None

    def cost_of_positions(self, v: Tensor) -> Tensor:
        c0, c1, c2 = self.coefficients
        mean = v.mean(-1)
        return c0 + c1 * mean + c2 * mean**2

    def expected_cost(self, params: Params) -> Tensor:
        c0, c1, c2 = self.coefficients
        p = torch.softmax(params["logits"], dim=-1)
        positions = torch.tensor([0.0, 0.5, 1.0], dtype=p.dtype, device=p.device)
        means, squares = p @ positions, p @ positions**2
        variance = (squares - means**2).sum() / means.numel() ** 2
        return c0 + c1 * means.mean() + c2 * (variance + means.mean() ** 2)


class CategoricalConstant(_CategoricalPolynomial):
    name = "check-categorical-constant"
    description = "f(x) = 1.5"
    coefficients = (1.5, 0.0, 0.0)


class CategoricalLinear(_CategoricalPolynomial):
    name = "check-categorical-linear"
    description = "f(x) = 0.5 − 2v̄, v̄ the mean position"
    coefficients = (0.5, -2.0, 0.0)


class CategoricalQuadratic(_CategoricalPolynomial):
    name = "check-categorical-quadratic"
    description = "f(x) = (v̄ − 0.3)², v̄ the mean position"
    coefficients = (0.09, -0.6, 1.0)


def _with_defaults(settings: tuple[Setting, ...], **defaults: float) -> tuple[Setting, ...]:
    """``settings`` with some defaults changed."""
    return tuple(replace(s, default=defaults.get(s.name, s.default)) for s in settings)


class BoundLinearGaussian(LinearGaussianBound):
    name = "check-bound-gaussian"
    description = "K = 3 bound of p(z) = N(0.2, 1), p(x | z) = N(z, 1); q = N(−0.4, 1.3²)"
    settings = _with_defaults(
        LinearGaussianBound.settings, particles=3, mu=0.2, loc=-0.4, scale=1.3
    )


class BoundDiscrete(DiscreteBound):
    name = "check-bound-discrete"
    description = "K = 3 bound of a four-valued latent, p(x | z) = N(x; z, 1)"
    settings = _with_defaults(DiscreteBound.settings, particles=3)


CHECK_OBJECTIVES: tuple[type[Objective], ...] = (
    GaussianConstant,
    GaussianLinear,
    GaussianQuadratic,
    BernoulliConstant,
    BernoulliLinear,
    BernoulliQuadratic,
    CategoricalConstant,
    CategoricalLinear,
    CategoricalQuadratic,
    BoundLinearGaussian,
    BoundDiscrete,
)


@dataclass(frozen=True)
class Check:
    """One check on one objective: ``outcome`` is pass, fail, skip or info."""

    objective: str
    check: str
    outcome: str
    evidence: str


@dataclass
class ConformanceReport:
    """The checks of one estimator or objective (``kind``), named ``subject``."""

    subject: str
    checks: list[Check] = field(default_factory=list)
    kind: str = "estimator"

    @property
    def passed(self) -> bool:
        """No check failed and at least one passed."""
        outcomes = {c.outcome for c in self.checks}
        return FAIL not in outcomes and PASS in outcomes


def check_estimator(
    estimator: Estimator,
    n_samples: int = 100_000,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> ConformanceReport:
    """Run the conformance suite on ``estimator``; see the module docstring."""
    config = RunConfig(
        n_samples=n_samples,
        seed=seed,
        device=torch.device(device),
        dtype=dtype,
        timing_repeats=0,
    )
    report = ConformanceReport(estimator.name)
    for objective_class in CHECK_OBJECTIVES:
        objective = objective_class()
        if reason := estimator.skip_reason(objective):
            report.checks.append(Check(objective.name, "runs", SKIP, reason))
            continue
        report.checks.extend(_check_one(estimator, objective, config))
    if not any(c.outcome == PASS for c in report.checks):
        report.checks.append(
            Check("—", "runs", FAIL, "no conformance objective offers what the estimator needs")
        )
    return report


def _check_one(estimator: Estimator, objective: Objective, config: RunConfig) -> list[Check]:
    name = objective.name
    params = {
        k: v.to(device=config.device, dtype=config.dtype) for k, v in objective.parameters().items()
    }
    grad_dim = ParamLayout.of(params).size

    def draw() -> Tensor:
        generator = torch.Generator(device=config.device).manual_seed(config.seed)
        return estimator.estimate(objective, params, _STRUCTURE_BATCH, generator)

    try:
        first, second = draw(), draw()
    except Exception as error:  # the check reports any failure of the estimator as evidence
        return [Check(name, "runs", FAIL, f"{type(error).__name__}: {error}")]

    expected = (_STRUCTURE_BATCH, grad_dim)
    found = _describe_tensor(tuple(first.shape), first.dtype, first.device.type)
    wanted = _describe_tensor(expected, config.dtype, config.device.type)
    structure_ok = found == wanted
    evidence = found if structure_ok else f"got {found}, expected {wanted}"
    checks = [Check(name, "shape, dtype, device", PASS if structure_ok else FAIL, evidence)]
    same = first.shape == second.shape and bool(
        ((first == second) | (first.isnan() & second.isnan())).all()
    )
    checks.append(
        Check(
            name,
            "deterministic under a seed",
            PASS if same else FAIL,
            "two runs with one seed agree" if same else "two runs with one seed differ",
        )
    )
    if not structure_ok:
        return checks

    result = run_pair(objective, estimator, config)
    if result.summary is None:
        checks.append(Check(name, "runs", FAIL, result.reason))
        return checks
    summary = result.summary
    checks.append(
        Check(
            name,
            "finite values",
            PASS if summary.n_nonfinite == 0 else FAIL,
            f"{summary.n_nonfinite} of {config.n_samples} estimates non-finite",
        )
    )
    biased = summary.bias_p < ALPHA
    verdict = FAIL if biased else PASS
    checks.append(
        Check(
            name,
            "unbiased",
            verdict if estimator.unbiased_for(objective) else INFO,
            _bias_evidence(summary.bias_z_max, summary.bias_p, summary.bias_norm, config),
        )
    )
    return checks


def _describe_tensor(shape: tuple[int, ...], dtype: torch.dtype, device: str) -> str:
    return f"[{', '.join(map(str, shape))}] {str(dtype).removeprefix('torch.')} on {device}"


def _bias_evidence(z_max: float, p: float, bias_norm: float, config: RunConfig) -> str:
    return (
        f"z_max = {z_max:.2f}, Bonferroni p = {p:.2g} (fails below {ALPHA:g}), "
        f"‖bias‖ = {bias_norm:.3g}, n = {config.n_samples}"
    )
