"""The objective contract: J(θ) = E_{x ~ q_θ}[f(x; θ)] with an exact gradient.

An objective owns

* its parameters θ, named tensors (:meth:`Objective.parameters`);
* its sampler, split into base noise ε and a map x = T_θ(ε) (:meth:`noise`,
  :meth:`transform`), so that every draw comes from the run's ``torch.Generator`` and estimators
  that need common random numbers (finite differences) can reuse ε at several θ; where q_θ has
  ``rsample``, T_θ is that reparameterization and is differentiable in θ;
* q_θ as a ``torch.distributions.Distribution`` whose batch shape is the leading sample dims and
  whose event shape is one draw, for ``log_prob`` (:meth:`distribution`);
* the cost f(x; θ) (:meth:`cost`);
* optionally, the exact expectation J(θ) in closed form (:meth:`expected_cost`), which autograd
  differentiates into the exact gradient (:meth:`exact_gradient`), or a reference gradient of its
  own (:meth:`reference_gradient`: quadrature, dynamic programming). An objective with neither
  gets an **estimated** reference from the engine (:mod:`gradbench.engine.reference`): a large
  run of an unbiased estimator with its standard error, which every objective can have;
* optionally a part of J known in closed form, J(θ) = E_{q_θ}[f(x; θ)] + h(θ)
  (:meth:`analytic_term`, e.g. an ELBO's −KL(q_θ ‖ p)). The engine adds the exact ∇h to every
  estimate, so estimators see only E[f], the way ELBO gradients are computed in practice; ∇h is
  deterministic, so it shifts the mean of every estimator alike and changes no variance.

Shapes: parameters are ``{name: [*shape]}``; every method also accepts parameters with extra
leading batch dims ``[*B, *shape]`` and broadcasts them against the sample dims of ε and x.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution
from torch.distributions.constraints import Constraint

from gradbench.core.params import ParamLayout, Params
from gradbench.core.settings import Setting, Value, resolve


class Capability(StrEnum):
    """What an objective offers and an estimator may require."""

    RSAMPLE = "rsample"
    DIFFERENTIABLE_COST = "differentiable cost"
    #: x = T_θ(ε) with noise ε that can be reused at another θ (common random numbers).
    COMMON_NOISE = "common noise"
    #: q_θ = N(mu, diag sigma²) with parameters ``mu``, ``sigma`` and a cost free of θ.
    GAUSSIAN = "Gaussian mu, sigma"
    #: q_θ = Bernoulli(sigmoid(ℓ_θ)) per coordinate with logits ℓ_θ = ``bernoulli_logits(θ)``
    #: (θ itself for a toy, an encoder's output for a VAE), ε ~ U(0, 1) noise with
    #: b = 1[ε < sigmoid(ℓ_θ)], and a cost free of θ.
    BERNOULLI = "Bernoulli logit"
    #: q_θ = Π_v OneHotCategorical(softmax(ℓ_θ,v)) over independent variables v, with logits
    #: ℓ_θ = ``categorical_logits(θ)`` ``[*B, *V, K]``: the event is ``[*V, K]``, each draw
    #: one-hot in its last dim, and the cost is free of θ. The discrete estimators draw their
    #: own Gumbel-max samples x = onehot(argmax(ℓ + G)) from the run's generator, so the
    #: objective's own noise and map are its choice (inversion, Gumbel-max).
    CATEGORICAL = "categorical logits"
    #: The cost is defined, and differentiable, between the discrete values (relaxations): on
    #: [0, 1] for Bernoulli draws, on the probability simplex of each variable (non-negative,
    #: summing to 1 over the last dim) for one-hot categorical draws.
    RELAXED_COST = "relaxed cost"
    #: J is a K-sample importance-weighted bound (Burda, Grosse & Salakhutdinov 2016),
    #: J(θ) = E_{z ~ q_θ}[(1/T) Σ_t log (1/K) Σ_k w_tk] with log w_tk = log p_θ(x_t, z_tk) −
    #: log q_θ(z_tk | x_t) (:meth:`Objective.log_joint`, :meth:`Objective.log_proposal`), one
    #: draw z holding the K particles of each of T independent terms (data points), and the
    #: cost the bound of the draw (:func:`gradbench.core.importance_weights.bound`). The
    #: multi-sample estimators (VIMCO, DReG, STL) change which factors of w carry θ.
    IMPORTANCE_WEIGHTS = "importance weights"
    #: The base noise is ε = F⁻¹(u) coordinatewise for u ~ U(0, 1) of ε's shape
    #: (:meth:`Objective.noise_from_uniforms`), so quasi-random points can replace u.
    NOISE_BY_INVERSION = "noise by inversion"


#: References computed in this process, by objective class, settings and parameter value.
_references: dict[tuple, Reference] = {}


@dataclass(frozen=True)
class Reference:
    """The gradient that bias is measured against: ``gradient`` ``[P]`` float64 on the CPU, and
    ``standard_error`` ``[P]`` when it is itself estimated (None when exact), with the degrees
    of freedom of that error estimate (groups − 1 for a spread of group means)."""

    gradient: Tensor
    standard_error: Tensor | None = None
    degrees_of_freedom: float = math.inf


class Objective(ABC):
    """Base class of objectives; subclasses declare ``name``, ``description`` and ``settings``.

    An objective is determined by its class and its settings: two instances with the same
    settings define the same J, and share their reference gradient (:meth:`reference_at`).
    State that changes J belongs in a setting.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    settings: ClassVar[tuple[Setting, ...]] = ()
    #: How the reference gradient is obtained, shown next to every bias (the ``reference``
    #: column), for objectives with one of their own (an estimated one says how it was made).
    reference_method: ClassVar[str] = "exact (closed form)"
    #: Whether f(x; θ) is differentiable in x, as the pathwise estimator needs.
    differentiable_cost: ClassVar[bool] = True
    #: Structural capabilities the class guarantees (see :class:`Capability`).
    offers: ClassVar[frozenset[Capability]] = frozenset({Capability.COMMON_NOISE})
    #: Whether q_θ has ``rsample``, for listings that do not build the objective (building a
    #: model objective loads data and weights); None: known only from its distribution. A run
    #: always reads it off the distribution (:meth:`capabilities`).
    has_rsample: ClassVar[bool | None] = None
    #: Whether J is maximised in training (an ELBO, a return) rather than minimised (a cost).
    maximize: ClassVar[bool] = False
    #: Estimates per run when the user does not choose; None: the engine's default. Objectives
    #: whose θ has thousands of coordinates choose fewer, so the default suite stays quick.
    default_samples: ClassVar[int | None] = None
    #: Whether a bare ``gradbench compare`` (no objective named) runs it. An objective that
    #: takes minutes there (the digits VAEs' K-sample bounds, whose references are estimated
    #: over B·K decoder calls per estimate) says False, and runs when named.
    in_default_suite: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        legacy = cls.__dict__.get("reference")
        if isinstance(legacy, str):  # the attribute's name before gradbench 0.2
            warnings.warn(
                f"{cls.__qualname__}.reference is now called reference_method",
                DeprecationWarning,
                stacklevel=2,
            )
            cls.reference_method = legacy

    def __init__(self, **settings: object) -> None:
        self.config: dict[str, Value] = resolve(type(self).settings, settings, self.name)
        self.validate()

    def setting(self, name: str) -> float:
        """The value of a numeric setting that has a default, as a float."""
        return float(self.config[name])  # type: ignore[arg-type]

    def validate(self) -> None:  # noqa: B027 - optional hook
        """Check constraints across settings; raise :class:`~gradbench.core.errors.InputError`."""

    @abstractmethod
    def parameters(self) -> Params:
        """θ at the configured values, float64 on the CPU, ``{name: [*shape]}``."""

    @abstractmethod
    def distribution(self, params: Params) -> Distribution:
        """q_θ with batch shape = the leading dims of ``params`` and event shape = one draw.

        Build it with ``validate_args=False``: validation reads device values back to the host
        on every call, which stalls a GPU inside the sampling loop.
        """

    @abstractmethod
    def noise(self, n: int, params: Params, generator: torch.Generator) -> Tensor:
        """n draws of base noise ε ``[n, *event]``, on ``generator``'s device in θ's dtype."""

    @abstractmethod
    def transform(self, noise: Tensor, params: Params) -> Tensor:
        """x = T_θ(ε): ``[*S, *event]`` noise and ``[*B, *shape]`` params broadcast to x."""

    @abstractmethod
    def cost(self, x: Tensor, params: Params) -> Tensor:
        """f(x; θ) for x ``[*S, *event]``, returning ``[*S]``."""

    def expected_cost(self, params: Params) -> Tensor:
        """J(θ) = E_{q_θ}[f(x; θ)] + h(θ) exactly, a scalar differentiable in θ, where a closed
        form (or quadrature, enumeration) exists. Objectives without one leave it out: the engine
        then estimates the reference gradient (:meth:`has_own_reference`)."""
        raise NotImplementedError(
            f"{self.name} has no closed form: it does not define expected_cost"
        )

    @classmethod
    def has_own_reference(cls) -> bool:
        """Whether the class gives its reference gradient itself (it defines
        :meth:`expected_cost` or :meth:`reference_gradient`); otherwise the engine estimates
        it (:mod:`gradbench.engine.reference`)."""
        return (
            cls.expected_cost is not Objective.expected_cost
            or cls.reference_gradient is not Objective.reference_gradient
        )

    def gives_reference(self) -> bool:
        """Whether this instance gives its reference itself, what a run asks: by default
        :meth:`has_own_reference`. An objective whose quadrature or enumeration reaches only
        some settings (K particles in few dimensions) returns False beyond them, and the engine
        estimates the reference there."""
        return self.has_own_reference()

    def elements_per_evaluation(self, params: Params) -> int:
        """Scalars one cost evaluation holds per estimate (its intermediates beside x and θ),
        for the engine's chunk sizing; by default one draw and θ. An objective whose cost
        works through data (a likelihood over N rows) says so, or its chunks outgrow the
        memory budget."""
        return math.prod(self.distribution(params).event_shape) + ParamLayout.of(params).size

    def constraints(self) -> dict[str, Constraint]:
        """The support of each parameter that is not all of ℝ (``{"sigma": positive}``).
        Training optimises u = T⁻¹(θ) with T = ``torch.distributions.transform_to(c)`` (an
        exponential for positive, a sigmoid for the unit interval), so θ = T(u) stays valid
        whatever the step; a parameter not named here is optimised as it is."""
        return {}

    def optimal_value(self) -> float | None:
        """The optimum of J over θ (its infimum, or supremum where :attr:`maximize`) where it
        is known, for ``gradbench train``'s figure; None (the default) where it is not."""
        return None

    def analytic_term(self, params: Params) -> Tensor | None:
        """h(θ), the part of J outside the expectation (a scalar), or None when there is none."""
        return None

    def score(self, x: Tensor, params: Params) -> Tensor | None:
        """∇_θ log q_θ(x) of each draw, ``[n, P]`` in :class:`ParamLayout` order, for draws x
        ``[n, *event]`` and θ unbatched, in closed form where the family gives one (a new
        tensor, which the caller may overwrite); None (the default) where it does not, and
        the score-function estimators differentiate ``distribution(θ).log_prob`` by autograd
        instead. ``gradbench check`` compares the two
        (:mod:`gradbench.extend.objective_conformance`)."""
        return None

    def pathwise(self, noise: Tensor, params: Params) -> Tensor | None:
        """∇_θ f(T_θ(ε); θ) of each noise row ε, ``[n, P]`` in :class:`ParamLayout` order, for
        noise ``[n, *noise_event]`` and θ unbatched, in closed form where the objective gives
        one; None (the default) where it does not, and the pathwise estimators differentiate
        ``cost(transform(ε, θ), θ)`` by autograd instead. ``gradbench check`` compares the two
        (:mod:`gradbench.extend.objective_conformance`)."""
        return None

    def sample(self, params: Params, n: int, generator: torch.Generator) -> Tensor:
        """n draws x ~ q_θ, ``[n, *event]``, detached from θ."""
        with torch.no_grad():
            return self.transform(self.noise(n, params, generator), params)

    def exact_gradient(self, params: Params) -> Tensor:
        """∇_θ J as a flat float64 vector ``[P]`` (autograd through :meth:`expected_cost`)."""
        return flat_gradient(self.expected_cost, params)

    def reference_gradient(self, params: Params) -> Reference:
        """The gradient bias is measured against; exact (:meth:`exact_gradient`) by default.

        Overrides compute it here; callers use :meth:`reference_at`, which remembers it. Only
        for objectives that :meth:`has_own_reference`."""
        return Reference(self.exact_gradient(params))

    def reference_at(self, params: Params) -> Reference:
        """:meth:`reference_gradient`, computed once per process for each objective class,
        settings and parameter value (an estimated reference can take a second, and every pair
        of a comparison, every task of a sweep, needs it)."""
        key = (
            type(self),
            tuple(sorted(self.config.items())),
            tuple((k, v.dtype, v.cpu().numpy().tobytes()) for k, v in params.items()),
        )
        if key not in _references:
            _references[key] = self.reference_gradient(params)
        return _references[key]

    def analytic_gradient(self, params: Params) -> Tensor | None:
        """∇h as a flat float64 vector ``[P]``, or None when there is no analytic term."""
        if self.analytic_term(params) is None:
            return None
        return flat_gradient(self.analytic_term, params)  # type: ignore[arg-type]

    def cost_terms(self, x: Tensor, params: Params) -> Tensor | None:
        """The cost as a mean of T independent terms, f(x; θ) = (1/T) Σ_t f_t(x_t; θ), with x_t
        the t-th slice of the first event dim (a VAE's images, a batch of data points):
        ``[*S, T]`` for x ``[*S, *event]``; None (the default) where the cost has no such form.
        Term t must depend on x_t only; estimators that change one variable at a time
        (IndeCateR) then change the same variable of every term in one evaluation."""
        return None

    def separable_cost(self) -> Callable[[Tensor], Tensor] | None:
        """c with f(x) = Σ_d c(x_d), free of θ, where the objective offers
        :attr:`Capability.GAUSSIAN` and its cost has that form; the exact variances of
        :mod:`gradbench.analysis.exact_variance` integrate it. None (the default) otherwise."""
        return None

    def bernoulli_logits(self, params: Params) -> Tensor:
        """The logits ℓ_θ ``[*B, *event]`` of q_θ, for objectives offering
        :attr:`Capability.BERNOULLI`; the discrete estimators pull their ∇_ℓ back to θ."""
        raise NotImplementedError(f"{self.name} does not offer {Capability.BERNOULLI.value}")

    def categorical_logits(self, params: Params) -> Tensor:
        """The logits ℓ_θ ``[*B, *V, K]`` of q_θ, for objectives offering
        :attr:`Capability.CATEGORICAL`; K is the last dim of the event ``[*V, K]``. The
        discrete estimators pull their ∇_ℓ back to θ."""
        raise NotImplementedError(f"{self.name} does not offer {Capability.CATEGORICAL.value}")

    def particles(self) -> int:
        """K, the particles of each term of the bound, for objectives offering
        :attr:`Capability.IMPORTANCE_WEIGHTS`."""
        raise NotImplementedError(
            f"{self.name} does not offer {Capability.IMPORTANCE_WEIGHTS.value}"
        )

    def log_joint(self, z: Tensor, params: Params) -> Tensor:
        """log p_θ(x_t, z_tk) for a draw z ``[*S, *event]``: ``[*S, T..., K]`` (the particles
        last; no T dims for a single data point), for objectives offering
        :attr:`Capability.IMPORTANCE_WEIGHTS`. θ enters only through the model's parameters;
        an estimator passes z and θ separately to choose the paths a gradient takes."""
        raise NotImplementedError(
            f"{self.name} does not offer {Capability.IMPORTANCE_WEIGHTS.value}"
        )

    def log_proposal(self, z: Tensor, params: Params) -> Tensor:
        """log q_θ(z_tk | x_t) of each particle, ``[*S, T..., K]`` like :meth:`log_joint`."""
        raise NotImplementedError(
            f"{self.name} does not offer {Capability.IMPORTANCE_WEIGHTS.value}"
        )

    def noise_from_uniforms(self, uniforms: Tensor, params: Params) -> Tensor:
        """The base noise ε = F⁻¹(u) for uniforms u ``[*S, *noise]`` in (0, 1) of the noise's
        shape (:meth:`noise` draws ε the same way in law), for objectives offering
        :attr:`Capability.NOISE_BY_INVERSION`."""
        raise NotImplementedError(
            f"{self.name} does not offer {Capability.NOISE_BY_INVERSION.value}"
        )

    @classmethod
    def declared_capabilities(cls) -> frozenset[Capability]:
        """What the class says it offers, without building an instance: :attr:`offers`, a
        differentiable cost, and ``rsample`` where :attr:`has_rsample` is True."""
        declared = set(cls.offers)
        if cls.differentiable_cost:
            declared.add(Capability.DIFFERENTIABLE_COST)
        if cls.has_rsample:
            declared.add(Capability.RSAMPLE)
        return frozenset(declared)

    def capabilities(self) -> frozenset[Capability]:
        """What this objective offers, read off its distribution and cost."""
        offered = set(self.offers)
        if self.distribution(self.parameters()).has_rsample:
            offered.add(Capability.RSAMPLE)
        if self.differentiable_cost:
            offered.add(Capability.DIFFERENTIABLE_COST)
        return frozenset(offered)


def flat_gradient(function: Callable[[Params], Tensor], params: Params) -> Tensor:
    """∇_θ of a scalar function of θ, in float64, as a flat vector ``[P]``."""
    leaves = {k: v.detach().to(torch.float64).requires_grad_() for k, v in params.items()}
    with torch.enable_grad():
        value = function(leaves)
        grads = torch.autograd.grad(value, list(leaves.values()), materialize_grads=True)
    return ParamLayout.of(params).flatten(dict(zip(leaves, grads, strict=True)))
