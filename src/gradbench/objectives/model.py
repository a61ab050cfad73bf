"""A user's own model as an objective: θ = an ``nn.Module``'s weights (or named tensors), q_θ =
the ``torch.distributions`` distribution the model defines, f = any cost of a draw.

    J(θ) = E_{x ~ q_θ}[f(x)]

with no closed form needed: the engine estimates the reference gradient
(:mod:`gradbench.engine.reference`). A user writes three things — the model, θ ↦ q_θ and f —
with :meth:`ModelObjective.define` (or by subclassing and overriding :meth:`~ModelObjective.
build_model`, :meth:`~ModelObjective.model_distribution` and :meth:`~ModelObjective.
model_cost`, which can read settings)::

    policy = nn.Linear(3, 4)                            # state features → action logits
    state, reward = torch.tensor([1.0, -0.5, 0.2]), torch.tensor([1.0, 0.2, -0.4, 0.7])
    SoftmaxPolicy = gradbench.ModelObjective.define(
        "softmax-policy", "softmax policy over 4 actions, reward per action",
        module=policy,
        distribution=lambda net: Categorical(logits=net(state)),
        cost=lambda action: reward.to(action.device)[action],
    )
    gradbench.register_objective(SoftmaxPolicy)

**The model.** With a module, ``distribution`` receives ``net``, the module at θ: ``net(*inputs)``
evaluates it with its parameters replaced by θ (``torch.func.functional_call``, vectorised by
``vmap`` over the leading batch dims of θ that per-sample estimators use,
:func:`~gradbench.objectives.networks.batched_call`); floating inputs move to θ's device and
dtype. With named tensors, it receives θ itself, ``{name: [*B, *shape]}``. One draw is the
whole value the distribution gives for unbatched θ (its batch and event dims); the adapter
reinterprets the batch dims as event dims (``Independent``), so log_prob is that of one draw.

**Sampling** follows the family:

* ``Normal``: ε ~ N(0, 1) from the run's generator, x = loc + scale·ε (reparameterized; common
  noise, so finite differences apply);
* ``Bernoulli``: ε ~ U(0, 1), x = 1[ε < p] (common noise, and the Bernoulli structure the
  ARM-type and relaxed estimators need: logits = the distribution's);
* ``OneHotCategorical``: ε ~ U(0, 1) per variable, x = the one-hot of the category by
  inversion (common noise, and the categorical structure the relaxed, Gumbel-Rao, ReinMax,
  IndeCateR and without-replacement estimators need: logits = the distribution's);
* any other family with ``rsample`` (Gamma, Beta, LogNormal, ... location-scale or implicit):
  its own ``rsample`` in a generator state seeded from the run's generator
  (:func:`~gradbench.objectives.implicit.seeded_draw`; on a GPU the seed is read back to the
  host once per call), without common noise;
* a family without ``rsample`` (Categorical, Poisson, ...): its ``sample`` the same way,
  without common noise; the score-function family applies.

The cost must return one value per draw, ``[*S]`` for draws ``[*S, *event]``: the engine refuses
any other shape, and ``gradbench check OBJECTIVE`` checks that and the rest of the contract.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, Distribution, Independent, Normal, OneHotCategorical
from torch.distributions.constraints import Constraint

from gradbench.core.device_copies import on_device_of
from gradbench.core.objective import Capability, Objective
from gradbench.core.params import Params
from gradbench.objectives.categorical import one_hot_by_inversion
from gradbench.objectives.implicit import seed_noise, seeded_draw
from gradbench.objectives.networks import batched_call, module_parameters

#: What ``distribution`` receives: the module at θ (a callable) or θ itself.
ModelView = Callable[..., Tensor] | Params


class ModelObjective(Objective):
    """An objective from a model: override :meth:`build_model`, :meth:`model_distribution` and
    :meth:`model_cost`, or call :meth:`define`. See the module docstring."""

    description = "a user's model"
    # What a model offers is known only once it is built (capabilities()): nothing up front.
    offers: ClassVar[frozenset[Capability]] = frozenset()
    differentiable_cost = False
    #: Whether f is differentiable in x; None: where the family has ``rsample``.
    cost_is_differentiable: ClassVar[bool | None] = None
    #: Whether a Bernoulli model's f is defined, and differentiable, between 0 and 1 (a
    #: one-hot categorical model's: on the simplex).
    cost_is_relaxed: ClassVar[bool] = False

    def build_model(self) -> nn.Module | Mapping[str, Tensor]:
        """The module whose weights are θ, or θ as named tensors."""
        raise NotImplementedError(f"{self.name}: a ModelObjective needs build_model")

    def model_distribution(self, model: ModelView) -> Distribution:
        """q_θ from the module at θ (or θ itself)."""
        raise NotImplementedError(f"{self.name}: a ModelObjective needs model_distribution")

    def model_cost(self, x: Tensor) -> Tensor:
        """f(x) for draws ``[*S, *event]``, returning ``[*S]``."""
        raise NotImplementedError(f"{self.name}: a ModelObjective needs model_cost")

    @classmethod
    def define(
        cls,
        name: str,
        description: str,
        *,
        distribution: Callable[[ModelView], Distribution],
        cost: Callable[[Tensor], Tensor],
        module: nn.Module | None = None,
        parameters: Mapping[str, Tensor] | None = None,
        differentiable_cost: bool | None = None,
        relaxed_cost: bool = False,
        maximize: bool = False,
        constraints: Mapping[str, Constraint] | None = None,
    ) -> type[ModelObjective]:
        """A ModelObjective class named ``name`` from a ``module`` (θ = its weights) or named
        ``parameters``, θ ↦ q_θ (``distribution``) and f (``cost``); register it with
        :func:`gradbench.register_objective`. ``differentiable_cost``: whether f is
        differentiable in x (default: where the family has ``rsample``); ``relaxed_cost``:
        for Bernoulli models, whether f is defined and differentiable between 0 and 1 (for
        ``OneHotCategorical`` models, on the simplex);
        ``maximize``: whether training maximises J (a reward, an ELBO); ``constraints``: the
        support of each named parameter that is not ℝ, for training (``{"scale": positive}``).
        """
        if (module is None) == (parameters is None):
            raise TypeError(f"{name}: give exactly one of module= and parameters=")
        model = module if module is not None else dict(parameters or {})
        attributes = {
            "name": name,
            "description": description,
            "cost_is_differentiable": differentiable_cost,
            "cost_is_relaxed": relaxed_cost,
            "maximize": maximize,
            "constraints": lambda self: dict(constraints or {}),
            "build_model": lambda self: model,
            "model_distribution": lambda self, view: distribution(view),
            "model_cost": lambda self, x: cost(x),
            "__module__": getattr(cost, "__module__", __name__),
        }
        class_name = "".join(part.title() for part in re.split(r"\W+", name) if part)
        return type(class_name or "Model", (cls,), attributes)

    def __init__(self, **settings: object) -> None:
        super().__init__(**settings)
        built = self.build_model()
        self.module = built if isinstance(built, nn.Module) else None
        if self.module is not None:
            self.weights = module_parameters(self.module)
        else:
            self.weights = {k: v.detach().to(torch.float64).cpu().clone() for k, v in built.items()}
        if not self.weights:
            raise ValueError(f"{self.name}: the model has no parameters to differentiate")
        family = self._family(self.weights)
        #: Dims of one draw that the family calls batch dims (reinterpreted as event dims).
        self.draw_batch_dims = len(family.batch_shape)
        self.event_shape = (*family.batch_shape, *family.event_shape)
        self.kind = _kind(_base(family))

    # --- the model at θ -------------------------------------------------------------------

    def _view(self, params: Params) -> ModelView:
        if self.module is None:
            return params
        module, like = self.module, next(iter(params.values()))

        def call(*inputs: Tensor) -> Tensor:
            return batched_call(module, params, *(_matching(x, like) for x in inputs))

        return call

    def _family(self, params: Params) -> Distribution:
        with _without_validation():
            return self.model_distribution(self._view(params))

    # --- the Objective contract ----------------------------------------------------------

    def parameters(self) -> Params:
        return {k: v.clone() for k, v in self.weights.items()}

    def distribution(self, params: Params) -> Distribution:
        family = self._family(params)
        if not self.draw_batch_dims:
            return family
        return Independent(family, self.draw_batch_dims, validate_args=False)

    def noise(self, n: int, params: Params, generator: torch.Generator) -> Tensor:
        if self.kind in ("normal", "bernoulli", "one-hot"):
            dtype, shape = next(iter(params.values())).dtype, (n, *self.event_shape)
            if self.kind == "one-hot":  # one uniform per variable, none per category
                shape = shape[:-1]
            draw = torch.randn if self.kind == "normal" else torch.rand
            return draw(shape, generator=generator, dtype=dtype, device=generator.device)
        return seed_noise(n, generator)

    def transform(self, noise: Tensor, params: Params) -> Tensor:
        base = _base(self._family(params))
        if self.kind == "normal":
            return base.loc + base.scale * noise
        if self.kind == "bernoulli":
            return (noise < base.probs).to(noise.dtype)
        if self.kind == "one-hot":
            return one_hot_by_inversion(noise, base.logits)
        reparameterized = self.kind == "rsample"
        return seeded_draw(self.distribution(params), noise, self.name, reparameterized)

    def cost(self, x: Tensor, params: Params) -> Tensor:
        with _without_validation():
            return self.model_cost(x)

    def bernoulli_logits(self, params: Params) -> Tensor:
        if self.kind != "bernoulli":
            return super().bernoulli_logits(params)
        return _base(self._family(params)).logits

    def categorical_logits(self, params: Params) -> Tensor:
        if self.kind != "one-hot":
            return super().categorical_logits(params)
        return _base(self._family(params)).logits

    def capabilities(self) -> frozenset[Capability]:
        offered = set()
        if self.kind in ("normal", "rsample"):
            offered.add(Capability.RSAMPLE)
        if self.kind in ("normal", "bernoulli", "one-hot"):
            offered.add(Capability.COMMON_NOISE)
        if self.kind in ("bernoulli", "one-hot"):
            offered.add(
                Capability.BERNOULLI if self.kind == "bernoulli" else Capability.CATEGORICAL
            )
            if self.cost_is_relaxed:
                offered.add(Capability.RELAXED_COST)
        differentiable = self.cost_is_differentiable
        if differentiable is None:
            differentiable = Capability.RSAMPLE in offered
        if differentiable:
            offered.add(Capability.DIFFERENTIABLE_COST)
        return frozenset(offered)


def _base(distribution: Distribution) -> Distribution:
    """The family under any ``Independent`` wrappers."""
    while isinstance(distribution, Independent):
        distribution = distribution.base_dist
    return distribution


def _kind(family: Distribution) -> str:
    """How draws are made: ``normal``, ``bernoulli``, ``one-hot``, ``rsample`` or ``sample``."""
    if type(family) is Normal:
        return "normal"
    if type(family) is Bernoulli:
        return "bernoulli"
    if type(family) is OneHotCategorical:
        return "one-hot"
    return "rsample" if family.has_rsample else "sample"


def _matching(value: Tensor, like: Tensor) -> Tensor:
    """A model input on θ's device, floating ones also in θ's dtype (copied once,
    :func:`~gradbench.core.device_copies.on_device_of`)."""
    if not isinstance(value, Tensor):
        return value
    if value.is_floating_point():
        return on_device_of(value, like)
    return value.to(like.device)


_validation = threading.Lock()
_validation_depth = [0, True]  # entries inside, and the setting the first one found


@contextmanager
def _without_validation():
    """Build the user's distributions (q_θ, and any inside the cost) without argument
    validation, which reads device values back to the host on every call (a stall per chunk
    on a GPU). Validation is a process-wide default: the first entry (of any thread) turns it
    off and the last exit restores it."""
    with _validation:
        if _validation_depth[0] == 0:
            _validation_depth[1] = Distribution._validate_args
            Distribution.set_default_validate_args(False)
        _validation_depth[0] += 1
    try:
        yield
    finally:
        with _validation:
            _validation_depth[0] -= 1
            if _validation_depth[0] == 0:
                Distribution.set_default_validate_args(_validation_depth[1])
