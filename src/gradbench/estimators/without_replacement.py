r"""The unordered set estimator with its built-in baseline: k outcomes drawn without replacement.

Kool, van Hoof & Welling 2020, "Estimating gradients for discrete random variables by sampling
without replacement" (ICLR). For q_θ(x) = Π_v softmax(ℓ_v)[x_v] over the K^D joint outcomes of
D categorical variables, an estimate draws a set S of k distinct outcomes without replacement
(a Plackett–Luce sample, its order forgotten) by stochastic beam search (Kool, van Hoof &
Welling 2019, "Stochastic beams and where to find them"): the Gumbel-top-k of the perturbed
joint log-probabilities, one variable at a time. A partial assignment's perturbed value Z is the
largest of its completions'; its K children draw Gumbels g of location φ_child (their
log-probability), are conditioned on their maximum T being Z by
g̃ = Z − softplus(Z − g + log(1 − e^{g − T})), and the k largest g̃ among the beam's children
stay. With p = q_θ, the estimate (USBL, the paper's estimator with built-in baseline) is

    e = Σ_{s∈S} ∇_θ p(s) R(S, s) (f(s) − Σ_{s'∈S} p(s') R^{D\s}(S, s') f(s')),

    R(S, s) = p^{D\s}(S \ {s}) / p(S),
    R^{D\s}(S, s') = p^{D\{s,s'}}(S \ {s, s'}) / p^{D\s}(S \ {s})  for s' ≠ s,  R^{D\s}(S, s) = 1,

with p^{D\A}(B) the probability that |B| draws without replacement from p restricted to the
outcomes outside A (renormalised) are the set B. p(s) R(S, s) = P(first draw = s | S), so e is
the Rao–Blackwellisation over the order of S of ∇log p(s₁) (f(s₁) − b) with the baseline
b = p(s₁) f(s₁) + (1 − p(s₁)) · (the unordered set estimate of E[f | x ≠ s₁] from the other
k − 1 draws), whose expectation given s₁ is E_p[f] whatever s₁: e is unbiased. The set
probabilities are integrals over the rest's probability p_R = 1 − Σ_{x∈S} p(x) (an exponential
race: S comes first when its clocks all ring before the rest's),

    p^{D\A}(B) = ∫_0^1 Π_{x∈B} (1 − u^{p(x)/p_R}) du,   A ∪ B = S,

as restricting p to D\A rescales every p(x) and p_R alike. With u = exp(−e^w) they are
∫ e^{w − e^w} Π_x (1 − exp(−e^{w + log(p(x)/p_R)})) dw, a log-concave integrand with its mode in
[0, log(k + 1)], which a fixed Gauss–Legendre rule (scipy's nodes; 128 of them for k ≤ 4, more
for larger sets, whose integrands are narrower) on w ∈ [−37, log(k + 1) + 3] resolves to a
relative error below 1e-11, in log space and float64. When the set holds all K^D outcomes
(k ≥ K^D), p_R = 0, every ratio is 1 and e = Σ_x ∇p(x) f(x) is the exact gradient.

∇_θ is the pull-back (∂ℓ/∂θ)ᵀ g_ℓ of g_ℓ = Σ_s W_s (x_s − softmax(ℓ)) = ∇_ℓ Σ_s W_s log p(s), the
weights W_s = p(s) R(S, s) (f(s) − b_s) held fixed. Requires: a categorical objective whose cost
does not depend on θ. Cost: k evaluations (min(k, K^D)). Option ``samples`` k, 2 ≤ k ≤ 32 (the
ratios take k² · 128·⌈√(k/4)⌉ terms per estimate).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

from gradbench.core.estimator import Estimator, logit_pullback
from gradbench.core.objective import Capability, Objective
from gradbench.core.params import Params
from gradbench.core.settings import Setting
from gradbench.estimators.gumbel import gumbels

#: The largest k: the ratios' cost grows like k^2.5.
MAX_SAMPLES = 32
#: Lower end of the integrals' w range: below it the integrand falls at least like e^w, so the
#: part left out is under e^{−35} of the integral.
_LOWEST_W = -37.0


def _sample_count(value: float) -> str | None:
    """Check that returns a message unless ``2 <= value <= MAX_SAMPLES``."""
    return None if 2 <= value <= MAX_SAMPLES else f"must be in [2, {MAX_SAMPLES}]"


def _log1mexp(x: Tensor) -> Tensor:
    """log(1 − e^x) for x ≤ 0, accurate at both ends (Mächler 2012)."""
    return torch.where(x > -math.log(2), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def stochastic_beam_search(log_probs: Tensor, k: int, n: int, generator: torch.Generator) -> Tensor:
    """n sets of min(k, K^D) distinct joint outcomes, drawn without replacement from
    Π_d Categorical(exp(log_probs[d])), log_probs ``[D, K]``: the categories ``[n, m, D]``.

    Gumbel-top-k of the joint outcomes by stochastic beam search, one variable at a time, with
    the root's perturbed value 0 (the order of an exponential race does not depend on when its
    first clock rings). The noise is in log_probs' dtype, on the generator's device."""
    variables, categories = log_probs.shape
    value = log_probs.new_zeros(n, 1)  # perturbed value Z of each partial assignment
    log_prob = log_probs.new_zeros(n, 1)  # its log-probability φ
    choices = torch.zeros(n, 1, 0, dtype=torch.long, device=log_probs.device)
    for d in range(variables):
        beam = value.shape[1]
        child_log_prob = log_prob.unsqueeze(-1) + log_probs[d]  # [n, beam, K]
        free = child_log_prob + gumbels((n, beam, categories), log_probs, generator)
        top = free.max(-1, keepdim=True).values
        parent = value.unsqueeze(-1)
        shifted = parent - torch.nn.functional.softplus(parent - free + _log1mexp(free - top))
        value, pick = shifted.reshape(n, -1).topk(min(k, beam * categories), dim=-1)
        log_prob = child_log_prob.reshape(n, -1).gather(-1, pick)
        kept = choices.gather(1, (pick // categories).unsqueeze(-1).expand(-1, -1, d))
        choices = torch.cat([kept, (pick % categories).unsqueeze(-1)], dim=-1)
    return choices


def _quadrature_nodes(set_size: int) -> int:
    """Gauss–Legendre nodes for sets of m = ``set_size`` outcomes: 128·⌈√(m/4)⌉, as the integrand's
    peak narrows like 1/√(m + 1)."""
    return 128 * math.ceil(math.sqrt(set_size / 4))


#: [*B, m, N] float64 arrays of :func:`log_set_probabilities` alive at its peak (log z, the
#: factors and the temporaries of their log(1 − e^{−z}), the inverses, the weighted terms).
_QUADRATURE_TEMPORARIES = 6


@lru_cache(maxsize=64)
def _quadrature(set_size: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Nodes w ``[N]`` and log(weight · e^{w − e^w}) ``[N]`` of the w-integrals, float64 on
    ``device`` (kept, so a GPU copies them once); scipy's Gauss–Legendre rule."""
    from scipy import special  # on first use: 0.1 s that `gradbench list` need not pay

    unit_nodes, unit_weights = (
        torch.from_numpy(a) for a in special.roots_legendre(_quadrature_nodes(set_size))
    )
    low, high = _LOWEST_W, math.log(set_size + 1) + 3.0
    w = (high - low) / 2 * unit_nodes + (high + low) / 2
    log_measure = torch.log(unit_weights * (high - low) / 2) + w - torch.exp(w)
    return w.to(device), log_measure.to(device)


def log_set_probabilities(log_p: Tensor, log_rest: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""log p(S), log p^{D\s}(S \ {s}) and log p^{D\{s,s'}}(S \ {s, s'}) for sets S of m
    outcomes with log-probabilities ``log_p`` ``[*B, m]`` and the rest's log p_R ``log_rest``
    ``[*B]`` (−inf: S is everything), float64: ``[*B]``, ``[*B, m]`` and ``[*B, m, m]``, the
    last with log p^{D\s}(S \ {s}) on its diagonal (R^{D\s}(S, s) = 1)."""
    m = log_p.shape[-1]
    w, log_measure = _quadrature(m, log_p.device)
    log_z = (log_p - log_rest.unsqueeze(-1)).unsqueeze(-1) + w  # log(e^w p(x)/p_R) [*B, m, N]
    # log(1 − e^{−z}), to the absolute error ~1e-16 a log-factor needs; log z where z < e^{−40}
    # (the rest, −z/2 + …, is below 1e-17), as e^{log z} may underflow there.
    factors = torch.where(log_z < -40, log_z, torch.log(-torch.expm1(-torch.exp(log_z))))
    whole = log_measure + factors.sum(-2)  # the log-integrand of p(S), [*B, N]
    # Leaving x out divides the integrand by its factor, which grows with w: scaled by the
    # factor at the first node, 1/factor becomes inverse ≤ 1, and the integrals are sums of
    # positive terms, the one at the integrand's top node at least e^{−90} (a log-factor rises
    # by at most the rise in w): nothing underflows, nothing cancels.
    shift = whole.amax(-1, keepdim=True)
    scaled = torch.exp(whole - shift)  # [*B, N]
    lowest = factors[..., :1]  # [*B, m, 1]
    inverse = torch.exp(lowest - factors)  # [*B, m, N]
    weighted = inverse * scaled.unsqueeze(-2)
    offset = shift - lowest.squeeze(-1)  # log-scale of the leave-one-out integrals, [*B, m]
    leave_one = offset + torch.log(weighted.sum(-1))
    products = weighted @ inverse.transpose(-1, -2)  # Σ_j scaled_j inverse_sj inverse_s'j
    leave_two = offset.unsqueeze(-1) - lowest.transpose(-1, -2) + torch.log(products)
    diagonal = torch.eye(m, dtype=torch.bool, device=log_p.device)
    leave_two = torch.where(diagonal, leave_one.unsqueeze(-1), leave_two)
    return shift.squeeze(-1) + torch.log(scaled.sum(-1)), leave_one, leave_two


def unordered_set_weights(log_p: Tensor, log_rest: Tensor, cost: Tensor) -> Tensor:
    r"""W_s = p(s) R(S, s) (f(s) − Σ_{s'} p(s') R^{D\s}(S, s') f(s')), float64 ``[*B, m]``,
    from log p ``[*B, m]``, log p_R ``[*B]`` and the costs f ``[*B, m]``."""
    whole, leave_one, leave_two = log_set_probabilities(log_p, log_rest)
    first = torch.exp(log_p + leave_one - whole.unsqueeze(-1))  # P(first draw = s | S)
    second = torch.exp(log_p.unsqueeze(-2) + leave_two - leave_one.unsqueeze(-1))
    baseline = (second * cost.unsqueeze(-2)).sum(-1)
    return first * (cost - baseline)


class UnorderedSet(Estimator):
    name = "unordered-set"
    description = "unordered set estimator, k draws without replacement, built-in baseline"
    requires = frozenset({Capability.CATEGORICAL})
    options = (Setting("samples", int, 4, "outcomes k drawn without replacement", _sample_count),)
    evals_formula = "k"

    @property
    def samples(self) -> int:
        return int(self.option("samples"))

    def evals_per_sample(self, grad_dim: int) -> int:
        return self.samples

    def evaluations(self, objective: Objective, params: Params) -> int:
        """min(k, K^D): a set holds every outcome when there are no more than k."""
        if self.skip_reason(objective):
            return super().evaluations(objective, params)
        *variables, categories = objective.categorical_logits(params).shape
        return min(self.samples, categories ** math.prod(variables))

    def working_bytes(self, objective: Objective, params: Params) -> int:
        """The w-integrals' float64 grids, [m, N] per estimate, about
        :data:`_QUADRATURE_TEMPORARIES` of them alive at once."""
        if self.skip_reason(objective):
            return 0
        m = self.evaluations(objective, params)
        return _QUADRATURE_TEMPORARIES * 8 * m * _quadrature_nodes(m)

    def estimate(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> Tensor:
        with torch.no_grad():
            logits = objective.categorical_logits(params).detach()
            categories = logits.shape[-1]
            log_probs = torch.log_softmax(logits, dim=-1).reshape(-1, categories)  # [D, K]
            variables = log_probs.shape[0]
            choices = stochastic_beam_search(log_probs, self.samples, n, generator)  # [n, m, D]
            m = choices.shape[1]
            x = torch.nn.functional.one_hot(choices, categories).to(logits.dtype)  # [n, m, D, K]
            cost = objective.cost(x.reshape(n, m, *logits.shape), params).double()  # [n, m]

            exact_log_probs = torch.log_softmax(logits.double(), dim=-1).reshape(-1, categories)
            log_p = exact_log_probs[torch.arange(variables, device=x.device), choices].sum(-1)
            if m == categories**variables:  # the set is every outcome: p_R = 0, exact
                log_rest = torch.full_like(log_p[:, 0], -math.inf)
            else:
                log_rest = _log1mexp(torch.logsumexp(log_p, dim=-1).clamp(max=0))
            weights = unordered_set_weights(log_p, log_rest, cost).to(logits.dtype)  # [n, m]

            # ∇_ℓ Σ_s W_s log p(s) = Σ_s W_s (x_s − softmax(ℓ)), variable by variable.
            chosen = torch.einsum("nm,nmdk->ndk", weights, x)
            logit_gradient = chosen - weights.sum(-1)[:, None, None] * log_probs.exp()
        return logit_pullback(
            objective.categorical_logits, logit_gradient.reshape(n, *logits.shape), params
        )
