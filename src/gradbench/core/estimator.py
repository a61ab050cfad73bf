"""The estimator contract and the surrogate-loss helper every autograd estimator uses.

An estimator turns random draws into n **per-sample** estimates g_i of ∇_θ J, a tensor
``[n, P]`` (P = number of scalar coordinates of θ, in :class:`~gradbench.core.params.ParamLayout`
order). It never reduces over samples: the harness computes every statistic from those rows.

Most estimators are a surrogate loss L_i(θ) with ∇_θ L_i = g_i. :func:`per_sample_gradients`
turns n surrogate values into n gradients with one backward pass by broadcasting θ along a
leading sample dim: sample i only touches row i of θ, so the gradient of Σ_i L_i with respect to
that ``[n, *shape]`` copy is exactly the stack of per-sample gradients.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor

from gradbench.core.objective import Capability, Objective
from gradbench.core.params import ParamLayout, Params
from gradbench.core.settings import Setting, Value, resolve


class Estimator(ABC):
    """Base class of estimators.

    Subclasses declare ``name``, ``description``, ``requires`` (the capabilities the objective
    must offer), ``unbiased`` (a claim the harness tests), ``options`` and implement
    :meth:`estimate`.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    requires: ClassVar[frozenset[Capability]] = frozenset()
    #: Capabilities of which the objective must offer at least one, beside :attr:`requires`
    #: (a relaxation runs on Bernoulli or on categorical draws); empty: no such condition.
    requires_one_of: ClassVar[frozenset[Capability]] = frozenset()
    unbiased: ClassVar[bool] = True
    options: ClassVar[tuple[Setting, ...]] = ()
    #: :meth:`evals_per_sample` in words, for listings ("1", "2P", "K").
    evals_formula: ClassVar[str] = "1"
    #: Whether the estimator keeps state between the steps of a trajectory (a running
    #: baseline, a learned control variate). ``gradbench train`` calls :meth:`reset` at the
    #: start and :meth:`update` after each step; ``compare`` measures it after :meth:`reset` and
    #: :attr:`warm_up_steps` updates of :attr:`warm_up_batch` estimates at the measured θ, on a
    #: generator of their own (the row's ``estimator_state`` says which). Within one call of
    #: :meth:`estimate` the state is fixed, so the n estimates stay independent.
    stateful: ClassVar[bool] = False
    warm_up_steps: ClassVar[int] = 0
    warm_up_batch: ClassVar[int] = 16

    def __init__(self, **options: object) -> None:
        self.config: dict[str, Value] = resolve(type(self).options, options, self.name)

    def option(self, name: str) -> float:
        """The value of a numeric option that has a default, as a float."""
        return float(self.config[name])  # type: ignore[arg-type]

    def evals_per_sample(self, grad_dim: int) -> int:
        """Cost evaluations f(x; θ) spent on one estimate, for a θ of ``grad_dim`` coordinates."""
        return 1

    def evaluations(self, objective: Objective, params: Params) -> int:
        """Cost evaluations spent on one estimate of ``objective`` at ``params``, what the
        engine records and sizes chunks by: :meth:`evals_per_sample` of θ's size, unless the
        count depends on the objective's draws (IndeCateR's V·K) and an estimator says so here."""
        return self.evals_per_sample(ParamLayout.of(params).size)

    def working_bytes(self, objective: Objective, params: Params) -> int:
        """Bytes one estimate holds at its peak beyond its cost evaluations: the estimator's
        own intermediates (a quadrature grid per draw, M noise draws per estimate), which the
        engine adds to its chunk plan (:func:`gradbench.engine.run.choose_chunk_size`). 0 for
        estimators whose work is the evaluations themselves."""
        return 0

    @classmethod
    def claim(cls) -> str:
        """The unbiasedness claim in words, for listings: "unbiased" or "biased", or where it
        depends on the objective (:meth:`unbiased_for`), when it holds."""
        return "unbiased" if cls.unbiased else "biased"

    def unbiased_for(self, objective: Objective) -> bool:
        """Whether the estimator claims to be unbiased on ``objective``, the claim its bias test
        is held to: :attr:`unbiased`, unless the claim depends on the objective (STL is
        unbiased for the ELBO, K = 1, and biased for K > 1) and an estimator says so here."""
        return self.unbiased

    def skip_reason(self, objective: Objective) -> str:
        """Why this estimator cannot run on ``objective``; empty when it can."""
        offered = objective.capabilities()
        lacking = sorted(c.value for c in self.requires - offered)
        if self.requires_one_of and not self.requires_one_of & offered:
            lacking.append(" or ".join(sorted(c.value for c in self.requires_one_of)))
        if not lacking:
            return ""
        return f"requires {' and '.join(lacking)}, which {objective.name} does not offer"

    @classmethod
    def requirements(cls) -> str:
        """What the estimator requires, in words (``Bernoulli logit or categorical logits and
        relaxed cost``); "nothing" when it runs on every objective."""
        parts = sorted(c.value for c in cls.requires)
        if cls.requires_one_of:
            parts.insert(0, " or ".join(sorted(c.value for c in cls.requires_one_of)))
        return " and ".join(parts) or "nothing"

    def reset(self, objective: Objective, params: Params) -> None:  # noqa: B027 - optional hook
        """Put a stateful estimator's state at its start for ``objective`` at ``params``."""

    def update(self, objective: Objective, params: Params) -> None:  # noqa: B027 - optional hook
        """Advance the state after a step, from what the last :meth:`estimate` call saw."""

    def warm_up_step(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> None:
        """One of the warm-up's :attr:`warm_up_steps`: :meth:`estimate` of ``n`` then
        :meth:`update`, whose estimates nobody reads; an estimator whose update recomputes
        them may draw the same randomness and update without computing them twice."""
        self.estimate(objective, params, n, generator)
        self.update(objective, params)

    def state_description(self) -> str:
        """The state in words for a result row (``baseline b = 1.2``); "" when stateless."""
        return ""

    def exact_variance(self, objective: Objective, params: Params) -> Tensor | None:
        """The exact variance of each coordinate of one per-sample estimate, float64 ``[P]``,
        where it is known (closed form or quadrature, e.g.
        :mod:`gradbench.analysis.exact_variance`); None otherwise. Plots draw it beside the
        measured variance."""
        return None

    @abstractmethod
    def estimate(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> Tensor:
        """n independent per-sample estimates of ∇_θ J at ``params``, ``[n, P]``.

        ``params`` are ``{name: [*shape]}`` on the run's device and dtype; every random draw
        must come from ``generator``.
        """


Surrogate = Callable[[Params], Tensor]


def per_sample_gradients(surrogate: Surrogate, params: Params, n: int) -> Tensor:
    """Per-sample gradients ``[n, P]`` of n surrogate losses, in one backward pass.

    ``surrogate`` receives θ broadcast to ``{name: [n, *shape]}`` and must return ``[n]`` where
    entry i depends on row i of θ only; the result's row i is ∇_θ L_i.
    """
    _, gradients = per_sample_values_and_gradients(surrogate, params, n)
    if gradients is None:  # the surrogate does not depend on θ at all
        leaves = {k: v.new_zeros(n, *v.shape) for k, v in params.items()}
        return ParamLayout.of(params).flatten(leaves, batch_dims=1)
    return gradients


def per_sample_values_and_gradients(
    surrogate: Surrogate, params: Params, n: int
) -> tuple[Tensor, Tensor | None]:
    """The losses L_i ``[n]`` (detached) and :func:`per_sample_gradients` ``[n, P]`` from one
    evaluation of ``surrogate``; None for the gradients, with no backward pass, when the
    losses do not depend on θ."""
    leaves = {k: v.detach().expand(n, *v.shape).requires_grad_() for k, v in params.items()}
    with torch.enable_grad():
        losses = surrogate(leaves)
        if losses.shape != (n,):
            raise ValueError(f"surrogate returned shape {tuple(losses.shape)}, expected ({n},)")
        if not losses.requires_grad:
            return losses, None
        grads = torch.autograd.grad(losses.sum(), list(leaves.values()), materialize_grads=True)
    flat = ParamLayout.of(params).flatten(dict(zip(leaves, grads, strict=True)), batch_dims=1)
    return losses.detach(), flat


def cost_and_gradient(
    objective: Objective, params: Params, x: Tensor
) -> tuple[Tensor, Tensor | None]:
    """f(x_i; θ) ``[n]`` and ∇_θ f(x_i; θ) ``[n, P]`` of draws x ``[n, *event]`` held fixed, from
    one evaluation of the cost; None for the gradient of a cost free of θ."""
    return per_sample_values_and_gradients(lambda theta: objective.cost(x, theta), params, len(x))


def plus_cost_gradient(estimates: Tensor, cost_gradient: Tensor | None) -> Tensor:
    """``estimates`` ``[n, P]`` with ∇_θ f ``[n, P]`` added in place, where the cost depends
    on θ (``cost_gradient`` from :func:`cost_and_gradient`; None: nothing to add)."""
    return estimates if cost_gradient is None else estimates.add_(cost_gradient)


def score_function(objective: Objective, params: Params, x: Tensor) -> Tensor:
    """∇_θ log q_θ(x_i) ``[n, P]`` of draws x ``[n, *event]``: the objective's closed form
    (:meth:`~gradbench.core.objective.Objective.score`) where it has one, else autograd
    through ``distribution(θ).log_prob``."""
    score = objective.score(x, params)
    if score is not None:
        return score
    return per_sample_gradients(
        lambda theta: objective.distribution(theta).log_prob(x), params, len(x)
    )


def pathwise_gradients(objective: Objective, params: Params, noise: Tensor) -> Tensor:
    """∇_θ f(T_θ(ε_i); θ) ``[n, P]`` of noise ε ``[n, *noise_event]``: the objective's closed
    form (:meth:`~gradbench.core.objective.Objective.pathwise`) where it has one, else autograd
    through ``transform`` and ``cost``."""
    closed = objective.pathwise(noise, params)
    if closed is not None:
        return closed
    return per_sample_gradients(
        lambda theta: objective.cost(objective.transform(noise, theta), theta), params, len(noise)
    )


def logit_pullback(
    logits_of: Callable[[Params], Tensor], logit_gradient: Tensor, params: Params
) -> Tensor:
    """Per-sample estimates ``[n, P]`` of ∇_θ from estimates g_ℓ of the gradient with respect
    to the logits ℓ_θ, ``[n, *event]``: the chain rule (∂ℓ/∂θ)ᵀ g_ℓ, one vector–Jacobian product
    per sample (the identity when θ is the logits; an encoder's backward pass in a VAE).
    ``logits_of`` is the objective's ``bernoulli_logits`` or ``categorical_logits``."""
    weights = logit_gradient.detach()

    def surrogate(theta: Params) -> Tensor:
        return (weights * logits_of(theta)).flatten(1).sum(1)

    return per_sample_gradients(surrogate, params, weights.shape[0])
