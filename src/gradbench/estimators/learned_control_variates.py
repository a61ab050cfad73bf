"""REBAR and RELAX: score function estimators with a reparameterised control variate whose
parameters are trained, between steps, to minimise the estimate's variance.

With the logits ℓ = ℓ_θ of a Bernoulli or categorical objective and noise N fixed while θ
varies (:mod:`.perturbation`: logistic for a Bernoulli, Gumbel per category), z = ℓ + N gives
the draw b = hard(z) (1[z > 0], or onehot(argmax z)) of q_θ, and z̃ = ℓ + Ñ a draw of z given b,
reparameterised by fresh noise so that it stays differentiable in ℓ
(:meth:`~.perturbation.Perturbation.conditional_from`). With a control variate c of the
relaxed input,

    g = [f(b) − c(z̃)] ∇_θ log q_θ(b) + ∇_θ c(z) − ∇_θ c(z̃)

is unbiased for any c: E[∇_θ c(z)] = ∇_θ E[c(z)], and E[c(z̃) ∇_θ log q_θ(b) + ∇_θ c(z̃)] =
∇_θ E[c(z)] too, z̃ having the law of z. The estimators draw their own noise from the run's
generator, not the objective's: b = 1[ℓ + L > 0] (or the Gumbel argmax) has the law of q_θ
whatever noise the objective samples with. They differ in c:

* ``rebar`` (Tucker, Mnih, Maddison, Lawson & Sohl-Dickstein 2017, "REBAR: low-variance,
  unbiased gradient estimates for discrete latent variable models"): c(z) = η f(sigmoid(z/λ)),
  the cost at the binary Concrete relaxation of temperature λ, scaled by η. Requires a
  Bernoulli objective whose cost is defined, and differentiable, on [0, 1]. Cost: 3 evaluations
  of f (at b, sigmoid(z/λ) and sigmoid(z̃/λ)). Starts at η = 1, λ = 0.5. On bernoulli-toy's
  single coordinate at θ = 0 no (η, λ) beats REINFORCE (f(sigmoid(z/λ)) is far from f(b) ≈ ¼
  unless λ is small, where the pathwise terms' variance grows) and training takes η toward 0;
  with three coordinates it cuts REINFORCE's variance by a factor 3.
* ``relax`` (Grathwohl, Choi, Wu, Roeder & Duvenaud 2018, "Backpropagation through the void:
  optimizing control variates for black-box gradient estimation"): c = c_φ, a network with one
  tanh hidden layer (option ``hidden``) and a scalar output, of the relaxed draw at temperature
  1 flattened over the event: sigmoid(z) for a Bernoulli, softmax(z) over each variable's
  categories for a categorical (bounded inputs; softmax drops z's overall level, which carries
  nothing about b). Requires a Bernoulli or categorical objective; the cost need not be
  defined off the discrete values. Cost: 1 evaluation of f; c_φ is evaluated twice more, at z
  and at z̃. The network is drawn from a fixed seed on the CPU in float64, so every run, device
  and dtype starts from the same weights.

State: the control variate's parameters (η and log λ, or φ) and their Adam optimizer (option
``lr``). ``estimate`` keeps them fixed, so its n estimates are i.i.d. and unbiased, and records
its noise and θ; ``update`` rebuilds that call's estimates with their graph in the parameters
and takes one Adam step on the single-sample variance proxy mean_i ‖g_i‖²: E[g] = ∇_θ J does
not depend on the parameters, so its gradient is that of the trace of the covariance.
``compare`` measures them after ``warm_up_steps`` = 200 updates of ``warm_up_batch`` = 16
estimates at the measured θ: Adam moves a parameter by up to about ``lr`` per step, so 200
steps at the default 0.01 let η, log λ and the network's weights travel by order 1; on the
toys RELAX's variance settles within about 50 updates and REBAR's within about 150, for the
price of 3,200 estimates. An ``estimate`` before any :meth:`reset`, or for an objective whose
event the network does not fit, starts afresh for that objective.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

from gradbench.core.estimator import Estimator
from gradbench.core.objective import Capability, Objective
from gradbench.core.params import ParamLayout, Params
from gradbench.core.settings import Setting, at_least, positive
from gradbench.estimators.perturbation import DISCRETE, Perturbation

#: Seed of the generator that draws RELAX's initial network.
NETWORK_SEED = 0
_LEARNING_RATE = Setting("lr", float, 0.01, "Adam learning rate of the control variate", positive)


@dataclass(frozen=True)
class _Draws:
    """What one call of ``estimate`` drew, for ``update`` to rebuild its estimates: θ, the
    noise N of z = ℓ + N and the fresh noise of z̃, each ``[n, *event]`` (no reference to the
    objective, so a deep copy of the estimator does not copy it)."""

    params: Params
    noise: Tensor
    fresh: Tensor


#: Adam's decays of its moment estimates and its denominator's offset (Kingma & Ba 2015, the
#: defaults of ``torch.optim.Adam``).
ADAM_BETAS, ADAM_EPSILON = (0.9, 0.999), 1e-8


@dataclass
class _State:
    """The control variate's parameters, Adam's moment estimates of their gradients and the
    updates taken. Adam is written out (:meth:`adam_step`) because ``torch.optim`` imports
    ``torch._dynamo`` when its first optimizer is built, seconds of start-up for a few weights."""

    weights: dict[str, Tensor]
    first_moments: dict[str, Tensor]
    second_moments: dict[str, Tensor]
    updates: int = 0

    @classmethod
    def start(cls, weights: dict[str, Tensor]) -> _State:
        def zeros() -> dict[str, Tensor]:
            return {name: torch.zeros_like(weight) for name, weight in weights.items()}

        return cls({k: w.requires_grad_() for k, w in weights.items()}, zeros(), zeros())

    def adam_step(self, gradients: dict[str, Tensor], lr: float) -> None:
        """One step of Adam (Kingma & Ba 2015, algorithm 1) along ``gradients``."""
        self.updates += 1
        beta1, beta2 = ADAM_BETAS
        with torch.no_grad():
            for name, gradient in gradients.items():
                first = self.first_moments[name].lerp_(gradient, 1 - beta1)
                second = self.second_moments[name].mul_(beta2)
                second.addcmul_(gradient, gradient, value=1 - beta2)
                denominator = (second / (1 - beta2**self.updates)).sqrt_().add_(ADAM_EPSILON)
                step = lr / (1 - beta1**self.updates)
                self.weights[name].addcdiv_(first, denominator, value=-step)


class _LearnedControlVariate(Estimator):
    """g = [f(b) − c(z̃)] ∇_θ log q_θ(b) + ∇_θ c(z) − ∇_θ c(z̃); subclasses give c and its
    starting parameters."""

    stateful = True
    warm_up_steps = 200
    warm_up_batch = 16

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        self._state: _State | None = None
        self._pending: _Draws | None = None

    @property
    def updates(self) -> int:
        """Updates since the last :meth:`reset`."""
        return 0 if self._state is None else self._state.updates

    @property
    def weights(self) -> dict[str, Tensor] | None:
        """The control variate's parameters, None before the first reset or estimate."""
        return None if self._state is None else self._state.weights

    @abstractmethod
    def initial_weights(self, inputs: int) -> dict[str, Tensor]:
        """The control variate's starting parameters, float64 on the CPU, for an event of
        ``inputs`` coordinates."""

    def fits(self, weights: dict[str, Tensor], inputs: int) -> bool:
        """Whether parameters made for one event serve an event of ``inputs`` coordinates."""
        return True

    @abstractmethod
    def control(
        self,
        objective: Objective,
        params: Params,
        family: Perturbation,
        perturbed: Tensor,
        weights: dict[str, Tensor],
    ) -> Tensor:
        """c(z) ``[n]`` of perturbed logits z ``[n, *event]`` under the parameters
        ``weights`` (in z's dtype, on its device), differentiable in both."""

    def reset(self, objective: Objective, params: Params) -> None:
        self._state = self._start(Perturbation.of(objective).logits_of(params))
        self._pending = None

    def _start(self, logits: Tensor) -> _State:
        """The start for logits ``[*event]``, in their dtype and on their device."""
        weights = self.initial_weights(logits.numel())
        return _State.start({k: w.to(logits.detach()) for k, w in weights.items()})

    def update(self, objective: Objective, params: Params) -> None:
        """One Adam step on mean_i ‖g_i‖² of the last :meth:`estimate` call's draws at the θ
        it saw; nothing when no estimate came since the last update."""
        draws, state, self._pending = self._pending, self._state, None
        if draws is None or state is None:
            return
        with torch.enable_grad():
            estimates = self._estimates(objective, draws, state, create_graph=True)
            variance_proxy = estimates.square().sum(1).mean()
            gradients = torch.autograd.grad(
                variance_proxy, list(state.weights.values()), materialize_grads=True
            )
        state.adam_step(dict(zip(state.weights, gradients, strict=True)), self.option("lr"))

    def estimate(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> Tensor:
        draws, state = self._draw(objective, params, n, generator)
        return self._estimates(objective, draws, state, create_graph=False).detach()

    def warm_up_step(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> None:
        """The draws of :meth:`estimate` and the :meth:`update` on them: the update computes
        the estimates itself (with their graph), so they are not computed first for nothing."""
        self._draw(objective, params, n, generator)
        self.update(objective, params)

    def _draw(
        self, objective: Objective, params: Params, n: int, generator: torch.Generator
    ) -> tuple[_Draws, _State]:
        """The noise of ``n`` estimates (two draws each, z and the conditional's), kept for the
        next :meth:`update`, and the state they are estimated in."""
        family = Perturbation.of(objective)
        logits = family.logits_of(params).detach()
        if self._state is None or not self.fits(self._state.weights, logits.numel()):
            # No reset yet, or one for an objective of another event: start afresh for this one.
            self._state = self._start(logits)
        noise = family.noise(logits, n, generator)
        fresh = family.noise(logits, n, generator)
        self._pending = _Draws({k: v.detach() for k, v in params.items()}, noise, fresh)
        return self._pending, self._state

    def _estimates(
        self, objective: Objective, draws: _Draws, state: _State, create_graph: bool
    ) -> Tensor:
        """The per-sample estimates ``[n, P]`` of ``draws``; with ``create_graph`` they keep
        their graph in the control variate's parameters."""
        family, params = Perturbation.of(objective), draws.params
        n = draws.noise.shape[0]
        leaves = {k: v.expand(n, *v.shape).requires_grad_() for k, v in params.items()}
        inputs = list(leaves.values())
        layout = ParamLayout.of(params)
        with torch.enable_grad():
            logits = family.logits_of(leaves)
            # The state is built in θ's dtype and device: a no-op unless θ's changed since.
            weights = {
                k: w.to(dtype=logits.dtype, device=logits.device) for k, w in state.weights.items()
            }
            hard = family.hard(logits.detach() + draws.noise)
            conditional = family.conditional_from(logits, hard, draws.fresh)
            control_at_z = self.control(objective, params, family, logits + draws.noise, weights)
            control_at_conditional = self.control(objective, params, family, conditional, weights)
            log_q = objective.distribution(leaves).log_prob(hard)
            score = torch.autograd.grad(
                log_q.sum(), inputs, retain_graph=True, materialize_grads=True
            )
            pathwise = torch.autograd.grad(
                (control_at_z - control_at_conditional).sum(),
                inputs,
                create_graph=create_graph,
                materialize_grads=True,
            )
            flat_score = layout.flatten(dict(zip(leaves, score, strict=True)), batch_dims=1)
            flat_pathwise = layout.flatten(dict(zip(leaves, pathwise, strict=True)), batch_dims=1)
            coefficient = objective.cost(hard, params) - control_at_conditional
            return coefficient.unsqueeze(1) * flat_score + flat_pathwise


class Rebar(_LearnedControlVariate):
    """c(z) = η f(sigmoid(z/λ)); state η and log λ."""

    name = "rebar"
    description = "REBAR: score function with a trained Concrete control variate (state)"
    requires = frozenset({Capability.BERNOULLI, Capability.RELAXED_COST})
    options = (_LEARNING_RATE,)
    evals_formula = "3"

    def evals_per_sample(self, grad_dim: int) -> int:
        return 3

    def initial_weights(self, inputs: int) -> dict[str, Tensor]:
        return {
            "scale": torch.tensor(1.0, dtype=torch.float64),
            "log_temperature": torch.tensor(math.log(0.5), dtype=torch.float64),
        }

    def control(
        self,
        objective: Objective,
        params: Params,
        family: Perturbation,
        perturbed: Tensor,
        weights: dict[str, Tensor],
    ) -> Tensor:
        relaxed = torch.sigmoid(perturbed / weights["log_temperature"].exp())
        return weights["scale"] * objective.cost(relaxed, params)

    def state_description(self) -> str:
        if self._state is None:
            return "η = 1, λ = 0.5 (no updates)"
        scale = float(self._state.weights["scale"].detach())
        temperature = math.exp(float(self._state.weights["log_temperature"].detach()))
        return f"η = {scale:.3g}, λ = {temperature:.3g} {_after(self._state.updates)}"


class Relax(_LearnedControlVariate):
    """c_φ(z) = w₂ · tanh(W₁ soft(z) + b₁) + b₂; state φ = (W₁, b₁, w₂, b₂)."""

    name = "relax"
    description = "RELAX: score function with a trained neural control variate (state)"
    requires_one_of = DISCRETE
    options = (
        _LEARNING_RATE,
        Setting("hidden", int, 16, "hidden units of the network c_φ", at_least(1)),
    )

    def initial_weights(self, inputs: int) -> dict[str, Tensor]:
        """PyTorch's default for linear layers, U(±1/√fan-in), from :data:`NETWORK_SEED`."""
        hidden = int(self.option("hidden"))
        generator = torch.Generator().manual_seed(NETWORK_SEED)

        def uniform(*shape: int, fan_in: int) -> Tensor:
            draw = torch.rand(shape, generator=generator, dtype=torch.float64)
            return (2 * draw - 1) / math.sqrt(fan_in)

        return {
            "hidden_weight": uniform(inputs, hidden, fan_in=inputs),
            "hidden_bias": uniform(hidden, fan_in=inputs),
            "output_weight": uniform(hidden, fan_in=hidden),
            "output_bias": uniform(fan_in=hidden),
        }

    def fits(self, weights: dict[str, Tensor], inputs: int) -> bool:
        return weights["hidden_weight"].shape[0] == inputs

    def control(
        self,
        objective: Objective,
        params: Params,
        family: Perturbation,
        perturbed: Tensor,
        weights: dict[str, Tensor],
    ) -> Tensor:
        relaxed = family.soft(perturbed, 1.0).flatten(1)
        hidden = torch.tanh(relaxed @ weights["hidden_weight"] + weights["hidden_bias"])
        return hidden @ weights["output_weight"] + weights["output_bias"]

    def state_description(self) -> str:
        if self._state is None:
            return "no network yet (built at the first reset or estimate)"
        count = sum(weight.numel() for weight in self._state.weights.values())
        return f"network of {count} weights {_after(self._state.updates)}"


def _after(updates: int) -> str:
    return f"after {updates} updates" if updates else "(no updates)"
