"""The conformance suite for objectives, built-in or plugin (``gradbench check OBJECTIVE``).

An objective must

* **have the contract's shapes**: θ as named float64 CPU tensors; ``noise(n)`` with n leading
  rows on the generator's device; draws ``[n, *event]`` with event = the distribution's event
  shape, for θ alone and for θ with a leading batch dim (as per-sample estimators pass it);
  the distribution's batch shape = θ's batch dims; ``log_prob`` ``[n]``; the cost ``[*S]`` for
  draws ``[*S, *event]``, also with an extra leading dim;
* **be deterministic**: the same seed gives the same noise, draws and costs;
* **keep its claims** (:class:`~gradbench.core.objective.Capability`): what the class declares
  it offers is what the instance offers; ``rsample`` draws depend differentiably on θ; a
  differentiable cost has a finite gradient in x; common noise gives valid draws at another θ
  (the same draw for the same noise, and their mean is the mean of q at that θ); the Gaussian
  structure has q = N(mu, sigma²) and a cost free of θ; the Bernoulli structure has
  x = 1[ε < sigmoid(logits)] and a cost free of θ; a relaxed cost is finite and differentiable
  between 0 and 1;
* **sample q_θ**: the mean of ``n_samples`` draws agrees with the distribution's mean, and the
  mean cost (plus the analytic term) with J(θ) where the objective has a closed form;
* **have a reference an independent estimate agrees with**: an unbiased estimator that did not
  make the reference (for an estimated reference, another one than its maker) run through the
  engine on ``n_samples`` estimates shows no significant bias.

Each statistical check is Bonferroni-corrected at level :data:`ALPHA` = 1e-4 (that of the
estimator suite): normal z-tests of means (with q's own variance where it has one), exact
binomial tests where the draws are 0 or 1, and the engine's Student-t bias test for the
reference. A correct objective fails one with probability about 1e-4 (exactly at most 1e-4 for
the binomial tests; the normal ones hold as n grows), and the suite (at most four such tests)
about 4e-4.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from gradbench.core.estimator import Estimator, per_sample_gradients
from gradbench.core.importance_weights import bound
from gradbench.core.objective import Capability, Objective
from gradbench.core.params import Params
from gradbench.engine.reference import ReferencePlan, default_estimators, reference_estimator
from gradbench.engine.run import RunConfig, cost_shape_problem, run_pair
from gradbench.extend.conformance import ALPHA, FAIL, INFO, PASS, SKIP, Check, ConformanceReport

#: Draws of the shape and determinism checks.
_BATCH = 8
#: Draws per chunk of the sampling checks.
_CHUNK = 4096
#: The relative size of the perturbation of θ in the claims that move it.
_NUDGE = 0.05


def check_objective(
    objective: Objective,
    n_samples: int = 20_000,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
    reference: ReferencePlan | None = None,
) -> ConformanceReport:
    """Run the objective suite on ``objective``; see the module docstring."""
    config = RunConfig(
        n_samples=n_samples,
        seed=seed,
        device=torch.device(device),
        dtype=dtype,
        timing_repeats=0,
        reference=reference or ReferencePlan(),
    )
    report = ConformanceReport(objective.name, kind="objective")
    checks = [
        ("shapes", _shapes),
        ("deterministic under a seed", _determinism),
        ("declared capabilities", _declared),
        ("claims", _claims),
        ("closed-form score", _closed_form_score),
        ("closed-form pathwise gradient", _closed_form_pathwise),
        ("draws follow q_θ", _sampling),
        ("reference", _reference),
    ]
    for name, check in checks:
        try:
            found = check(objective, config)
        except Exception as error:  # any failure of the objective is evidence
            found = [Check(objective.name, name, FAIL, f"{type(error).__name__}: {error}")]
        report.checks.extend(found)
        if any(c.outcome == FAIL for c in found) and name == "shapes":
            break  # the other checks rest on the shapes
    return report


def _params(objective: Objective, config: RunConfig) -> Params:
    return {
        k: v.to(device=config.device, dtype=config.dtype) for k, v in objective.parameters().items()
    }


def _generator(config: RunConfig, offset: int = 0) -> torch.Generator:
    return torch.Generator(device=config.device).manual_seed(config.seed + offset)


def _batched(params: Params, n: int) -> Params:
    return {k: v.expand(n, *v.shape) for k, v in params.items()}


def _shapes(objective: Objective, config: RunConfig) -> list[Check]:
    name, problems = objective.name, []
    theta = objective.parameters()
    wrong = [k for k, v in theta.items() if v.dtype != torch.float64 or v.device.type != "cpu"]
    if not theta or wrong:
        problems.append(f"parameters() must be float64 CPU tensors ({', '.join(wrong) or 'none'})")
    params = _params(objective, config)
    event = tuple(objective.distribution(params).event_shape)
    batch = tuple(objective.distribution(params).batch_shape)
    if batch:
        problems.append(f"the distribution's batch shape is {batch} for θ alone, expected ()")
    noise = objective.noise(_BATCH, params, _generator(config))
    if noise.shape[0] != _BATCH or noise.device.type != config.device.type:
        problems.append(f"noise({_BATCH}) is {tuple(noise.shape)} on {noise.device.type}")
    expectations: list[tuple[str, Callable[[], Tensor], tuple[int, ...]]] = [
        ("draws", lambda: objective.transform(noise, params), (_BATCH, *event)),
        (
            "draws for batched θ",
            lambda: objective.transform(noise, _batched(params, _BATCH)),
            (_BATCH, *event),
        ),
        (
            "the distribution's batch shape for batched θ",
            lambda: torch.empty(objective.distribution(_batched(params, _BATCH)).batch_shape),
            (_BATCH,),
        ),
    ]
    x = objective.transform(noise, params)
    expectations.append(("log_prob", lambda: objective.distribution(params).log_prob(x), (_BATCH,)))
    for what, compute, expected in expectations:
        with torch.no_grad():
            shape = tuple(compute().shape)
        if shape != expected:
            problems.append(f"{what}: {shape}, expected {expected}")
    if problem := cost_shape_problem(objective, params, config.device):
        problems.append(problem)
    if problems:
        return [Check(name, "shapes", FAIL, "; ".join(problems))]
    evidence = f"event {event}; noise, draws, batch shapes, log_prob and cost as contracted"
    return [Check(name, "shapes", PASS, evidence)]


def _draw(objective: Objective, params: Params, config: RunConfig) -> tuple[Tensor, Tensor, Tensor]:
    noise = objective.noise(_BATCH, params, _generator(config))
    with torch.no_grad():
        x = objective.transform(noise, params)
        return noise, x, objective.cost(x, params)


def _same(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and bool(((a == b) | (a.isnan() & b.isnan())).all())


def _determinism(objective: Objective, config: RunConfig) -> list[Check]:
    params = _params(objective, config)
    first, second = _draw(objective, params, config), _draw(objective, params, config)
    differ = [
        what
        for what, a, b in zip(("noise", "draws", "costs"), first, second, strict=True)
        if not _same(a, b)
    ]
    if differ:
        return [
            Check(
                objective.name,
                "deterministic under a seed",
                FAIL,
                f"{', '.join(differ)} differ for one seed",
            )
        ]
    return [
        Check(objective.name, "deterministic under a seed", PASS, "noise, draws and costs agree")
    ]


#: Relative agreement of a closed form (score, pathwise gradient) with autograd (float64
#: rounding of a few operations each, on draws of a standard batch).
CLOSED_FORM_RTOL = 1e-8


def _closed_form_score(objective: Objective, config: RunConfig) -> list[Check]:
    """:meth:`Objective.score`, where given, equals autograd's ∇_θ log q_θ(x) on a batch of
    draws, at θ and at a nudged θ."""

    def forms(params: Params) -> tuple[Tensor | None, Callable[[], Tensor]]:
        _, x, _ = _draw(objective, params, config)
        return objective.score(x, params), lambda: per_sample_gradients(
            lambda theta: objective.distribution(theta).log_prob(x), params, len(x)
        )

    return _closed_form(objective, config, "closed-form score", "autograd through log_prob", forms)


def _closed_form_pathwise(objective: Objective, config: RunConfig) -> list[Check]:
    """:meth:`Objective.pathwise`, where given, equals autograd's ∇_θ f(T_θ(ε); θ) on a batch
    of noise, at θ and at a nudged θ."""

    def forms(params: Params) -> tuple[Tensor | None, Callable[[], Tensor]]:
        noise, _, _ = _draw(objective, params, config)
        return objective.pathwise(noise, params), lambda: per_sample_gradients(
            lambda theta: objective.cost(objective.transform(noise, theta), theta),
            params,
            len(noise),
        )

    autograd = "autograd through transform and cost"
    return _closed_form(objective, config, "closed-form pathwise gradient", autograd, forms)


def _closed_form(
    objective: Objective,
    config: RunConfig,
    label: str,
    fallback: str,
    forms: Callable[[Params], tuple[Tensor | None, Callable[[], Tensor]]],
) -> list[Check]:
    """The check that a closed form ``[n, P]`` equals autograd's, to :data:`CLOSED_FORM_RTOL` of
    the largest entry, at θ and at a nudged θ; ``forms(θ)`` gives the closed form (None where
    the objective has none: ``fallback`` is used) and autograd's, to compute."""
    errors = []
    for params in (_params(objective, config), _nudged(_params(objective, config))):
        closed, autograd_of = forms(params)
        if closed is None:
            return [Check(objective.name, label, SKIP, f"no closed form: {fallback}")]
        autograd = autograd_of()
        scale = max(float(autograd.abs().max()) if autograd.numel() else 0.0, 1.0)
        error = float((closed - autograd).abs().max()) if closed.shape == autograd.shape else None
        if error is None or error > CLOSED_FORM_RTOL * scale:
            found = "shape " + str(tuple(closed.shape)) if error is None else f"{error:.3g}"
            return [Check(objective.name, label, FAIL, f"differs from autograd's: {found}")]
        errors.append(error / scale)
    evidence = f"agrees with autograd's to {max(errors):.2g} relative, at θ and a nudged θ"
    return [Check(objective.name, label, PASS, evidence)]


def _declared(objective: Objective, config: RunConfig) -> list[Check]:
    declared, offered = type(objective).declared_capabilities(), objective.capabilities()
    problems = [f"declares {c.value} but does not offer it" for c in sorted(declared - offered)]
    claimed = type(objective).has_rsample
    has = objective.distribution(_params(objective, config)).has_rsample
    if claimed is not None and claimed != has:
        problems.append(f"has_rsample = {claimed}, but its distribution's has_rsample is {has}")
    if problems:
        return [Check(objective.name, "declared capabilities", FAIL, "; ".join(problems))]
    names = ", ".join(sorted(c.value for c in offered)) or "none"
    return [Check(objective.name, "declared capabilities", PASS, f"offers {names}")]


def _nudged(params: Params) -> Params:
    """θ moved by a few percent of its size (and a little where it is zero)."""
    return {k: v + _NUDGE * (v.abs() + 0.1) for k, v in params.items()}


def _claims(objective: Objective, config: RunConfig) -> list[Check]:
    params, offered, checks = _params(objective, config), objective.capabilities(), []
    claims: dict[Capability, Callable[[Objective, Params, RunConfig], str]] = {
        Capability.RSAMPLE: _rsample_claim,
        Capability.DIFFERENTIABLE_COST: _differentiable_claim,
        Capability.COMMON_NOISE: _common_noise_claim,
        Capability.GAUSSIAN: _gaussian_claim,
        Capability.BERNOULLI: _bernoulli_claim,
        Capability.CATEGORICAL: _categorical_claim,
        Capability.RELAXED_COST: _relaxed_claim,
        Capability.IMPORTANCE_WEIGHTS: _importance_weights_claim,
        Capability.NOISE_BY_INVERSION: _inversion_claim,
    }
    for capability, claim in claims.items():
        label = f"claim: {capability.value}"
        if capability not in offered:
            continue
        try:
            problem = claim(objective, params, config)
        except Exception as error:
            problem = f"{type(error).__name__}: {error}"
        checks.append(Check(objective.name, label, FAIL if problem else PASS, problem or "holds"))
    return checks or [Check(objective.name, "claims", SKIP, "claims no structure")]


def _rsample_claim(objective: Objective, params: Params, config: RunConfig) -> str:
    leaves = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
    noise = objective.noise(_BATCH, params, _generator(config))
    with torch.enable_grad():
        x = objective.transform(noise, leaves)
        if not x.requires_grad:
            return "draws do not depend on θ through autograd"
        grads = torch.autograd.grad(x.sum(), list(leaves.values()), allow_unused=True)
    found = [g for g in grads if g is not None]
    if not found or not all(bool(g.isfinite().all()) for g in found):
        return "the draws' gradient in θ is missing or not finite"
    return ""


def _differentiable_claim(objective: Objective, params: Params, config: RunConfig) -> str:
    _, x, _ = _draw(objective, params, config)
    if not x.is_floating_point():
        return f"draws are {x.dtype}, which cannot be differentiated"
    leaf = x.detach().clone().requires_grad_()
    with torch.enable_grad():
        cost = objective.cost(leaf, params)
        if not cost.requires_grad:
            return "the cost does not depend on x through autograd"
        (grad,) = torch.autograd.grad(cost.sum(), leaf)
    return "" if bool(grad.isfinite().all()) else "the cost's gradient in x is not finite"


def _common_noise_claim(objective: Objective, params: Params, config: RunConfig) -> str:
    moved = _nudged(params)
    noise = objective.noise(_BATCH, params, _generator(config))
    with torch.no_grad():
        if not _same(objective.transform(noise, moved), objective.transform(noise, moved)):
            return "the same noise gives other draws at the same θ"
    return _mean_problem(objective, moved, config, noise_at=params)


def _gaussian_claim(objective: Objective, params: Params, config: RunConfig) -> str:
    if not {"mu", "sigma"} <= set(params):
        return f"parameters are {', '.join(params)}, not mu and sigma"
    distribution = objective.distribution(params)
    for what, value, expected in (
        ("mean", distribution.mean, params["mu"]),
        ("stddev", distribution.stddev, params["sigma"]),
    ):
        if not torch.allclose(value, expected.expand_as(value)):
            return f"the distribution's {what} is not {'mu' if what == 'mean' else 'sigma'}"
    return _cost_free_of_theta(objective, params, config)


def _bernoulli_claim(objective: Objective, params: Params, config: RunConfig) -> str:
    event = tuple(objective.distribution(params).event_shape)
    logits = objective.bernoulli_logits(params)
    if tuple(logits.shape) != event:
        return f"bernoulli_logits is {tuple(logits.shape)}, expected the event {event}"
    noise = objective.noise(_BATCH, params, _generator(config))
    with torch.no_grad():
        x = objective.transform(noise, params)
    if not bool(((noise >= 0) & (noise <= 1)).all()):
        return "the noise is not in [0, 1]"
    if not _same(x, (noise < torch.sigmoid(logits)).to(x.dtype)):
        return "draws are not 1[ε < sigmoid(logits)]"
    return _cost_free_of_theta(objective, params, config)


def _categorical_claim(objective: Objective, params: Params, config: RunConfig) -> str:
    distribution = objective.distribution(params)
    event = tuple(distribution.event_shape)
    logits = objective.categorical_logits(params)
    if tuple(logits.shape) != event:
        return f"categorical_logits is {tuple(logits.shape)}, expected the event {event}"
    if not torch.allclose(distribution.mean, torch.softmax(logits, dim=-1).expand(event)):
        return "the distribution's mean is not softmax(categorical_logits)"
    _, x, _ = _draw(objective, params, config)
    one_hot = ((x == 0) | (x == 1)).all() & (x.sum(-1) == 1).all()
    if not bool(one_hot):
        return "draws are not one-hot in their last dim"
    return _cost_free_of_theta(objective, params, config)


def _relaxed_claim(objective: Objective, params: Params, config: RunConfig) -> str:
    """The cost is finite and differentiable between the discrete values: on [0.01, 0.99] for
    Bernoulli draws, at softmax points of the simplex for categorical ones."""
    categorical = Capability.CATEGORICAL in objective.capabilities()
    where = "on the simplex" if categorical else "between 0 and 1"
    shape = (_BATCH, *objective.distribution(params).event_shape)
    generator, device, dtype = _generator(config), config.device, config.dtype
    if categorical:
        points = torch.randn(shape, generator=generator, device=device, dtype=dtype)
        points = torch.softmax(points, dim=-1)
    else:
        points = torch.rand(shape, generator=generator, device=device, dtype=dtype)
        points = points.clamp(0.01, 0.99)
    leaf = points.requires_grad_()
    with torch.enable_grad():
        cost = objective.cost(leaf, params)
        if not bool(cost.isfinite().all()):
            return f"the cost is not finite {where}"
        (grad,) = torch.autograd.grad(cost.sum(), leaf, allow_unused=True, materialize_grads=True)
    return "" if bool(grad.isfinite().all()) else f"the cost's gradient {where} is not finite"


def _importance_weights_claim(objective: Objective, params: Params, config: RunConfig) -> str:
    """The log-densities have the particles last (K of them), q's ``log_prob`` is their sum
    over terms and particles, and the cost is the bound of the log-weights."""
    _, z, cost = _draw(objective, params, config)
    with torch.no_grad():
        joint, proposal = objective.log_joint(z, params), objective.log_proposal(z, params)
        log_prob = objective.distribution(params).log_prob(z)
    particles = objective.particles()
    if joint.shape != proposal.shape or joint.shape[0] != _BATCH or joint.shape[-1] != particles:
        return (
            f"log_joint {tuple(joint.shape)} and log_proposal {tuple(proposal.shape)} are not"
            f" [{_BATCH}, T..., K = {particles}] for {_BATCH} draws"
        )
    if not torch.allclose(log_prob, proposal.flatten(1).sum(1)):
        return "the distribution's log_prob is not the sum of log_proposal over the particles"
    if not torch.allclose(cost, bound(joint - proposal)):
        return "the cost is not the bound log (1/K) Σ_k w_k of log_joint − log_proposal"
    return ""


def _inversion_claim(objective: Objective, params: Params, config: RunConfig) -> str:
    """F⁻¹ of uniforms has the noise's shape, and each coordinate's mean and variance match
    the noise's own draws (Bonferroni z-tests at :data:`ALPHA`, by Welch's z for the means and
    a normal approximation of the variance ratio's log for the variances)."""
    noise = objective.noise(config.n_samples, params, _generator(config))
    uniforms = torch.rand(
        noise.shape, generator=_generator(config, 1), device=noise.device, dtype=noise.dtype
    )
    inverted = objective.noise_from_uniforms(uniforms.clamp(1e-12, 1 - 1e-12), params)
    if inverted.shape != noise.shape:
        return (
            f"noise_from_uniforms gives {tuple(inverted.shape)}, the noise is {tuple(noise.shape)}"
        )
    a, b = noise.flatten(1).double(), inverted.flatten(1).double()
    n = a.shape[0]
    mean_z = _z(a.mean(0) - b.mean(0), ((a.var(0) + b.var(0)) / n).sqrt())
    log_ratio = (a.var(0) / b.var(0)).log()
    ratio_se = ((_kurtosis(a) - 1 + _kurtosis(b) - 1) / n).sqrt()
    tests = 2 * a.shape[1]
    p = _bonferroni(torch.cat([mean_z, _z(log_ratio, ratio_se)]), tests)
    return "" if p >= ALPHA else f"F⁻¹(u) does not have the noise's mean and variance (p = {p:.2g})"


def _kurtosis(values: Tensor) -> Tensor:
    """E[(v − v̄)⁴] / Var(v)² per column of ``values`` ``[n, D]``: Var(log s²) ≈ (κ − 1)/n."""
    return ((values - values.mean(0)) ** 4).mean(0) / values.var(0) ** 2


def _cost_free_of_theta(objective: Objective, params: Params, config: RunConfig) -> str:
    _, x, cost = _draw(objective, params, config)
    with torch.no_grad():
        moved = objective.cost(x, _nudged(params))
    return "" if torch.allclose(cost, moved) else "the cost changes with θ at fixed draws"


def _mean_problem(
    objective: Objective, params: Params, config: RunConfig, noise_at: Params | None = None
) -> str:
    """Whether the mean of ``config.n_samples`` draws at ``params`` (from noise drawn at
    ``noise_at``, θ by default) is the distribution's mean: a Bonferroni z-test over the
    coordinates of one draw, with q's own variance where it has one (a coordinate that q makes
    almost constant then tests right) and the draws' otherwise; "" when it agrees or the
    distribution has no mean."""
    distribution = objective.distribution(params)
    try:
        expected = distribution.mean.double().reshape(-1)
    except NotImplementedError:
        return ""
    try:
        exact_variance: Tensor | None = distribution.variance.double().reshape(-1)
    except NotImplementedError:
        exact_variance = None
    sums = squares = 0.0
    binary = True
    generator = _generator(config, 1)
    for start in range(0, config.n_samples, _CHUNK):
        rows = min(_CHUNK, config.n_samples - start)
        noise = objective.noise(rows, noise_at or params, generator)
        with torch.no_grad():
            x = objective.transform(noise, params).double().reshape(rows, -1)
        binary = binary and bool(((x == 0) | (x == 1)).all())
        centred = x - expected
        sums, squares = sums + centred.sum(0), squares + (centred**2).sum(0)
    n = config.n_samples
    mean = sums / n
    if binary:  # counts of ones: exact binomial tails, right however rare the ones are
        p, z = _binomial_p(mean + expected, expected, n), None
    else:
        variance = (
            (squares / n - mean**2) * n / (n - 1) if exact_variance is None else exact_variance
        )
        z = _z(mean, (variance / n).sqrt())
        p = _bonferroni(z, mean.numel())
    if p < ALPHA and z is None:
        return f"the draws' frequencies of 1 miss q's probabilities: Bonferroni p = {p:.2g}"
    if p < ALPHA:
        worst = int(z.abs().argmax())
        return (
            f"the draws' mean misses q's on coordinate {worst}: z = {float(z[worst]):.2f},"
            f" Bonferroni p = {p:.2g}"
        )
    return ""


def _z(difference: Tensor, standard_error: Tensor) -> Tensor:
    """z per coordinate; 0 where both are 0 (a deterministic coordinate), ∞ where only the
    difference is not."""
    z = difference / standard_error
    return torch.where((difference == 0), torch.zeros_like(z), z).nan_to_num(0.0)


def _binomial_p(frequency: Tensor, probability: Tensor, n: int) -> float:
    """The Bonferroni-corrected two-sided exact binomial p-value of the frequencies of 1 in n
    draws, over the coordinates, against q's probabilities."""
    from scipy.stats import binom  # scipy.stats costs ~0.5 s to import: only when checking

    ones = (frequency * n).round().cpu().numpy()
    p = probability.clamp(0.0, 1.0).cpu().numpy()
    tails = 2 * np.minimum(binom.cdf(ones, n, p), binom.sf(ones - 1, n, p))
    return min(1.0, ones.size * float(np.min(np.minimum(tails, 1.0))))


def _bonferroni(z: Tensor, tests: int) -> float:
    from scipy.stats import norm

    largest = float(z.abs().max()) if z.numel() else 0.0
    return min(1.0, tests * 2 * float(norm.sf(largest)))


def _sampling(objective: Objective, config: RunConfig) -> list[Check]:
    params = _params(objective, config)
    checks = []
    problem = _mean_problem(objective, params, config)
    evidence = problem or f"mean of {config.n_samples} draws = q's mean (or q has none)"
    checks.append(Check(objective.name, "draws follow q_θ", FAIL if problem else PASS, evidence))
    if type(objective).expected_cost is not Objective.expected_cost and objective.gives_reference():
        checks.append(_value_check(objective, params, config))
    return checks


def _value_check(objective: Objective, params: Params, config: RunConfig) -> Check:
    """The mean cost plus the analytic term against J(θ)."""
    exact = float(objective.expected_cost({k: v.double().cpu() for k, v in params.items()}))
    term = objective.analytic_term(params)
    offset = 0.0 if term is None else float(term)
    sums = squares = 0.0  # of the cost centred at J(θ) − h(θ), for precision
    generator = _generator(config, 2)
    for start in range(0, config.n_samples, _CHUNK):
        rows = min(_CHUNK, config.n_samples - start)
        with torch.no_grad():
            cost = objective.cost(objective.sample(params, rows, generator), params).double()
        centred = cost - (exact - offset)
        sums, squares = sums + float(centred.sum()), squares + float((centred**2).sum())
    n = config.n_samples
    mean = exact + sums / n
    standard_error = math.sqrt(max(squares / n - (sums / n) ** 2, 0.0) / (n - 1))
    z = float(_z(torch.tensor(mean - exact), torch.tensor(standard_error)))
    p = _bonferroni(torch.tensor(z), 1)
    evidence = f"mean cost {mean:.6g} vs J(θ) = {exact:.6g}: z = {z:.2f}, p = {p:.2g}"
    return Check(objective.name, "expected_cost", FAIL if p < ALPHA else PASS, evidence)


def _reference(objective: Objective, config: RunConfig) -> list[Check]:
    made_by = None
    if not objective.gives_reference():
        made_by = reference_estimator(objective, config.reference.estimator)
    checker = _independent_estimator(objective, made_by)
    if checker is None:
        return [Check(objective.name, "reference", INFO, "no second unbiased estimator applies")]
    result = run_pair(objective, checker, config)
    if result.summary is None:
        return [Check(objective.name, "reference", FAIL, result.reason)]
    summary = result.summary
    origin = result.reference_method or objective.reference_method
    evidence = (
        f"{checker.name} against the reference ({origin}): z_max = {summary.bias_z_max:.2f},"
        f" Bonferroni p = {summary.bias_p:.2g} (fails below {ALPHA:g}), n = {config.n_samples}"
    )
    return [Check(objective.name, "reference", FAIL if summary.bias_p < ALPHA else PASS, evidence)]


def _independent_estimator(objective: Objective, made_by: Estimator | None) -> Estimator | None:
    """The first default reference estimator that applies and did not make the reference."""
    others = (e for e in default_estimators(objective) if type(e) is not type(made_by))
    return next(others, None)
