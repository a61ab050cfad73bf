"""The unordered set estimator: its set probabilities against sums over orderings, the sets
stochastic beam search draws, exactness when the set is everything, unbiasedness, conformance,
and the variance falling as k grows."""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist

import pytest
import torch
from scipy.stats import chi2

from gradbench.core.errors import InputError
from gradbench.estimators.without_replacement import (
    UnorderedSet,
    log_set_probabilities,
    stochastic_beam_search,
    unordered_set_weights,
)
from gradbench.extend.conformance import check_estimator
from gradbench.objectives.categorical import CategoricalProduct, CategoricalToy

#: Each stochastic test fails a correct estimator with probability at most this (all seeded).
ALPHA = 1e-4


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _ordered_probability(p: list[float], order: tuple[int, ...]) -> float:
    """P(the draws without replacement from p come in this order)."""
    probability, rest = 1.0, 1.0
    for x in order:
        probability *= p[x] / rest
        rest -= p[x]
    return probability


def _set_probability(p: list[float], members: tuple[int, ...]) -> float:
    """P(|members| draws without replacement from p are the set ``members``): the sum over its
    orderings. p may be a restriction: zeros outside the domain, renormalised inside."""
    return sum(_ordered_probability(p, order) for order in itertools.permutations(members))


def _left_out(p: torch.Tensor, members: tuple[int, ...], removed: tuple[int, ...]) -> float:
    r"""p^{D\A}(S \ A) for A = ``removed``: the set's other members drawn from p restricted to
    the categories outside A."""
    q = p.clone()
    q[list(removed)] = 0
    rest = tuple(x for x in members if x not in removed)
    return _set_probability((q / q.sum()).tolist(), rest)


@pytest.mark.parametrize("logits", [[0.3, -1.0, 2.0, 0.5, -0.2], [4.0, 0.0, -3.0, 1.0, -6.0]])
@pytest.mark.parametrize("k", [2, 3])
def test_set_probabilities_match_sums_over_orderings(logits, k):
    r"""p(S), p^{D\s}(S \ {s}) and p^{D\{s,s'}}(S \ {s, s'}) of every k-subset of five
    categories, by the quadrature against the sums over all orderings (to 1e-10)."""
    p = torch.softmax(torch.tensor(logits, dtype=torch.float64), 0)
    subsets = list(itertools.combinations(range(5), k))
    members = torch.tensor(subsets)
    outside = torch.ones(len(subsets), 5, dtype=torch.bool).scatter(1, members, False)
    log_rest = torch.log((p * outside).sum(-1))  # exact, not 1 − Σ: the test's own rounding
    whole, leave_one, leave_two = log_set_probabilities(p.log()[members], log_rest)

    expected_whole = [_left_out(p, s, ()) for s in subsets]
    expected_one = [[_left_out(p, s, (x,)) for x in s] for s in subsets]
    expected_two = [
        [[_left_out(p, s, (x, y) if x != y else (x,)) for y in s] for x in s] for s in subsets
    ]
    tight = {"rtol": 1e-10, "atol": 0.0}
    torch.testing.assert_close(
        whole.exp(), torch.tensor(expected_whole, dtype=torch.float64), **tight
    )
    torch.testing.assert_close(
        leave_one.exp(), torch.tensor(expected_one, dtype=torch.float64), **tight
    )
    torch.testing.assert_close(
        leave_two.exp(), torch.tensor(expected_two, dtype=torch.float64), **tight
    )
    torch.testing.assert_close(whole.exp().sum(), torch.tensor(1.0, dtype=torch.float64))


@pytest.mark.parametrize("m", [2, 5, 8, 17, 32])
def test_ratios_are_conditional_probabilities_at_every_scale(m):
    r"""Σ_s p(s) R(S, s) = 1 (the first draw is one of S) and Σ_{s'} p(s') R^{D\s}(S, s') = 1
    (the baseline of f ≡ 1 is 1): integral identities the quadrature meets only when accurate,
    here for sets whose ratios p(x)/p_R spread over e^{±30} (half of them over [e^{−60}, 1])."""
    generator = _generator(m)
    sets = 64
    log_ratio = torch.empty(sets, m, dtype=torch.float64).uniform_(-30, 30, generator=generator)
    log_ratio[: sets // 2] -= 30  # half the sets far from covering: every p(x) ≪ p_R
    # p(x) = p_R e^{log_ratio}, with Σ_x p(x) + p_R = 1.
    log_rest = -torch.logsumexp(torch.nn.functional.pad(log_ratio, (1, 0)), -1)
    log_p = log_ratio + log_rest.unsqueeze(-1)
    whole, leave_one, leave_two = log_set_probabilities(log_p, log_rest)
    first = torch.exp(log_p + leave_one - whole.unsqueeze(-1)).sum(-1)
    second = torch.exp(log_p.unsqueeze(-2) + leave_two - leave_one.unsqueeze(-1)).sum(-1)
    ones = torch.ones(sets, dtype=torch.float64)
    torch.testing.assert_close(first, ones, rtol=1e-10, atol=0)
    torch.testing.assert_close(second, torch.ones(sets, m, dtype=torch.float64), rtol=1e-10, atol=0)
    # f ≡ 1: every weight W_s = P(first = s | S) (1 − 1) vanishes.
    weights = unordered_set_weights(log_p, log_rest, torch.ones(sets, m, dtype=torch.float64))
    assert weights.abs().max() < 1e-10


@pytest.mark.parametrize("k", [2, 3, 4])
def test_expectation_over_every_set_is_the_exact_gradient(k):
    """Σ_S p(S) e(S) over all k-subsets of five categories, p(S) by sums over orderings and
    e(S) = Σ_s W_s (e_s − p) the estimate's logit gradient: exactly ∇_ℓ Σ_x p(x) f(x) (to 1e-10),
    unbiasedness with no sampling noise."""
    logits = torch.tensor([0.3, -1.0, 2.0, 0.5, -0.2], dtype=torch.float64)
    p = torch.softmax(logits, 0)
    f = torch.tensor([1.0, -2.0, 0.5, 3.0, 0.0], dtype=torch.float64)
    subsets = list(itertools.combinations(range(5), k))
    members = torch.tensor(subsets)
    log_rest = torch.log1p(-p[members].sum(-1))
    weights = unordered_set_weights(p.log()[members], log_rest, f[members])  # [sets, k]
    outcomes = torch.eye(5, dtype=torch.float64)[members]  # [sets, k, 5]
    estimates = (weights.unsqueeze(-1) * (outcomes - p)).sum(1)  # [sets, 5]
    probabilities = torch.tensor([_left_out(p, s, ()) for s in subsets], dtype=torch.float64)
    exact = p * (f - (p * f).sum())
    torch.testing.assert_close(probabilities @ estimates, exact, rtol=0, atol=1e-10)


def _chi_square_p_value(counts: torch.Tensor, probabilities: torch.Tensor) -> float:
    expected = probabilities * counts.sum()
    assert expected.min() >= 5  # the chi-square approximation holds
    statistic = float(((counts - expected) ** 2 / expected).sum())
    return float(chi2.sf(statistic, counts.numel() - 1))


def _set_counts(choices: torch.Tensor, categories: int, subsets: list[tuple[int, ...]]):
    """How often each subset of joint outcomes (codes in base K) was the drawn set."""
    radix = categories ** torch.arange(choices.shape[-1] - 1, -1, -1)
    codes = (choices * radix).sum(-1).sort(-1).values  # [n, m], sorted outcome codes
    index = {subset: i for i, subset in enumerate(subsets)}
    drawn = torch.tensor([index[tuple(row)] for row in codes.tolist()])
    return torch.bincount(drawn, minlength=len(subsets)).double()


def test_beam_search_draws_pairs_with_their_probabilities():
    """One variable, K = 4, k = 2: the six pairs' frequencies in 20 000 draws against their
    exact probabilities; chi-square with 5 degrees of freedom at level 1e-4."""
    logits = torch.tensor([0.8, -0.4, 0.1, -1.0], dtype=torch.float64)
    p = torch.softmax(logits, 0)
    choices = stochastic_beam_search(torch.log_softmax(logits, 0)[None], 2, 20_000, _generator(3))
    assert choices.shape == (20_000, 2, 1)
    pairs = list(itertools.combinations(range(4), 2))
    exact = torch.tensor([_set_probability(p.tolist(), pair) for pair in pairs])
    counts = _set_counts(choices, 4, pairs)
    assert _chi_square_p_value(counts, exact.double()) > ALPHA


def test_beam_search_over_variables_draws_joint_sets_with_their_probabilities():
    """Two variables of three categories, k = 3: the beam search conditions child Gumbels on
    their parent, variable by variable; the 84 sets of 3 of the 9 joint outcomes in 40 000
    draws against their exact probabilities, chi-square with 83 degrees of freedom at 1e-4."""
    logits = torch.tensor([[0.4, -0.3, 0.0], [-0.5, 0.2, 0.3]], dtype=torch.float64)
    log_probs = torch.log_softmax(logits, -1)
    joint = (log_probs[0][:, None] + log_probs[1][None, :]).exp().reshape(-1)  # code 3·a + b
    choices = stochastic_beam_search(log_probs, 3, 40_000, _generator(4))
    codes = choices[..., 0] * 3 + choices[..., 1]
    assert (codes.sort(-1).values.diff(dim=-1) > 0).all()  # distinct outcomes in every set
    triples = list(itertools.combinations(range(9), 3))
    exact = torch.tensor([_set_probability(joint.tolist(), triple) for triple in triples])
    counts = _set_counts(choices, 3, triples)
    assert _chi_square_p_value(counts, exact.double()) > ALPHA


@pytest.mark.parametrize(
    ("objective", "k"),
    [
        (CategoricalToy(), 4),
        (CategoricalToy(), 7),
        (CategoricalProduct(variables=2, categories=3), 9),
        (CategoricalProduct(variables=2, categories=3), 12),
    ],
    ids=["toy-k=K", "toy-k>K", "product-k=K^D", "product-k>K^D"],
)
def test_a_set_of_every_outcome_gives_the_exact_gradient(objective, k):
    params = objective.parameters()
    estimator = UnorderedSet(samples=k)
    *variables, categories = params["logits"].shape
    outcomes = categories ** math.prod(variables)
    assert estimator.evaluations(objective, params) == min(k, outcomes)
    estimates = estimator.estimate(objective, params, 64, _generator(5))
    exact = objective.exact_gradient(params)
    torch.testing.assert_close(estimates, exact.expand_as(estimates), rtol=0, atol=1e-12)


def _z_bound(coordinates: int) -> float:
    """Two-sided Bonferroni z for level ALPHA over ``coordinates``."""
    return NormalDist().inv_cdf(1 - ALPHA / (2 * coordinates))


@pytest.mark.parametrize(
    ("objective", "k"),
    [(CategoricalProduct(variables=3, categories=4), 4), (CategoricalToy(categories=5), 3)],
    ids=["product", "toy"],
)
def test_mean_matches_the_exact_gradient(objective, k):
    """|mean − exact| ≤ z se per coordinate, z Bonferroni over the coordinates at level 1e-4
    (10 000 estimates: the normal approximation of each mean)."""
    params = objective.parameters()
    n = 10_000
    estimates = UnorderedSet(samples=k).estimate(objective, params, n, _generator(6))
    exact = objective.exact_gradient(params)
    standard_error = estimates.std(0) / math.sqrt(n)
    assert (standard_error > 0).all()
    z = (estimates.mean(0) - exact).abs() / standard_error
    assert z.max() <= _z_bound(exact.numel()), z


def test_conformance():
    """The suite runs on its three categorical objectives (float32) and skips the others; each
    unbiasedness test fails a correct estimator with probability ≤ 1e-4. Seeded."""
    report = check_estimator(UnorderedSet(), n_samples=10_000)
    assert report.passed, [c for c in report.checks if c.outcome == "fail"]
    assert sum(c.check == "unbiased" and c.outcome == "pass" for c in report.checks) == 3


def test_variance_falls_as_k_grows():
    """Summed per-coordinate variances for k = 2, 4, 8 on categorical-product (3 variables, 4
    categories), each from 3000 estimates of its own seed; each step down must exceed 4.5
    standard errors of the difference. The drops are ~25 standard errors (about 3.4× from k = 2
    to 4 and 2.8× from 4 to 8), so a correct estimator fails with a normal tail probability
    below 1e-20, and equal variances would pass a step with probability ≤ 4e-6."""
    objective = CategoricalProduct(variables=3, categories=4)
    params = objective.parameters()
    n = 3000
    variances, errors = [], []
    for seed, k in enumerate([2, 4, 8]):
        estimates = UnorderedSet(samples=k).estimate(objective, params, n, _generator(10 + seed))
        spread = ((estimates - estimates.mean(0)) ** 2).sum(-1)  # per-estimate ‖g − ḡ‖²
        variances.append(spread.mean() * n / (n - 1))
        errors.append(spread.std() / math.sqrt(n))
    for i in range(2):
        margin = 4.5 * math.hypot(errors[i], errors[i + 1])
        assert variances[i] - variances[i + 1] > margin, (variances, errors)


@pytest.mark.parametrize("samples", [1, 33])
def test_samples_outside_the_range_are_rejected(samples):
    with pytest.raises(InputError, match=f"samples={samples!r}"):
        UnorderedSet(samples=samples)
