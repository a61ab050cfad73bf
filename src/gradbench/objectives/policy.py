"""A softmax policy on RiverSwim: J(θ) = E[Σ_t γ^t r(s_t, a_t)], exact by dynamic programming.

The MDP is RiverSwim (Strehl & Littman 2008, "An analysis of model-based interval estimation
for Markov decision processes", JCSS 74(8):1309–1331) in the form of Osband, Russo & Van Roy
2013 ("(More) efficient reinforcement learning via posterior sampling", NeurIPS), the one most
later work uses. A chain of S = 6 states 0..5 and A = 2 actions, 0 = left (downstream) and
1 = right (against the current):

* left moves to s − 1 with probability 1 (state 0 stays at 0);
* right, in state 0: stay 0.4, to 1 0.6; in states 1..4: to s − 1 0.05, stay 0.6, to s + 1 0.35;
  in state 5: to 4 0.4, stay 0.6;
* reward r(s, a), a function of the state and action only, paid whatever the next state:
  r(0, left) = 5/1000, r(5, right) = 1, all others 0;
* every episode starts in state 0 and lasts ``horizon`` steps H (Osband et al. use H = 20),
  undiscounted unless ``discount`` γ < 1.

Strehl & Littman's original differs in its probabilities, its rewards (5 and 10000) and its
start state; it is not what is used here.

The policy is tabular softmax, π_θ(a | s) = softmax(θ[s])_a with parameter ``logits`` ``[S, A]``
(P = 12), at θ[s] = (0, ``bias``) in every state: the uniform policy by default. There the
gradient is dense and pulls two ways: ∂J/∂θ[0, right] < 0 (state 0 leans to the small sure
reward) while every other state leans right, toward the large far one. J is to be maximised;
gradbench estimates ∇J whatever the sign.

A draw x is a trajectory ``[H, 2]``: row t holds (s_t, a_t) as floats of θ's dtype. Its
log-probability is

    log q_θ(x) = log ρ(s_0) + Σ_{t<H} log π_θ(a_t | s_t) + Σ_{t<H−1} log P(s_{t+1} | s_t, a_t),

and only the policy terms depend on θ, so the score function is Σ_t ∇ log π_θ(a_t | s_t): the
REINFORCE of this objective is Williams' (1992) policy gradient on whole-episode returns. The
cost f(x) = Σ_t γ^t r(s_t, a_t) is free of θ. Noise ε ~ U(0, 1) ``[n, H, 2]``; step t draws s_t
by inversion from ε[t, 1] (from ρ at t = 0, else from P(· | s_{t−1}, a_{t−1})) and then a_t
from ε[t, 0] and π_θ(· | s_t). The draw is a step function of θ, so there is no pathwise
gradient, but common random numbers couple draws at nearby θ.

The exact value is backward dynamic programming over the horizon, differentiable in θ:

    V_H = 0,   V_t(s) = Σ_a π_θ(a | s) [r(s, a) + γ Σ_{s'} P(s' | s, a) V_{t+1}(s')],
    J(θ) = Σ_s ρ(s) V_0(s).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution
from torch.distributions.constraints import Constraint
from torch.nn.functional import one_hot

from gradbench.core.device_copies import on_device_of
from gradbench.core.objective import Objective
from gradbench.core.params import Params
from gradbench.core.settings import Setting, at_least
from gradbench.core.shapes import broadcast_shape


@dataclass(frozen=True)
class TabularMDP:
    """A finite MDP: ``start`` ρ ``[S]``, ``transition`` P(s' | s, a) ``[S, A, S]``, ``reward``
    r(s, a) ``[S, A]``, float64 on the CPU."""

    start: Tensor
    transition: Tensor
    reward: Tensor

    @property
    def states(self) -> int:
        return self.reward.shape[0]

    @property
    def actions(self) -> int:
        return self.reward.shape[1]

    # Derived tables, made once so that :func:`on_device_of` copies each to a device only once.

    @cached_property
    def start_function(self) -> Tensor:
        """The distribution function of ρ, ``[S]``."""
        return cumulative(self.start)

    @cached_property
    def transition_function(self) -> Tensor:
        """The distribution function of P(· | s, a) in row s·A + a, ``[S·A, S]``."""
        return cumulative(self.transition).flatten(0, 1)

    @cached_property
    def log_start(self) -> Tensor:
        """log ρ ``[S]``, −inf where ρ is 0."""
        return self.start.log()

    @cached_property
    def log_transition(self) -> Tensor:
        """log P(s' | s, a) at index (s·A + a)·S + s', ``[S·A·S]``, −inf where P is 0."""
        return self.transition.log().flatten()

    @cached_property
    def flat_reward(self) -> Tensor:
        """r(s, a) at index s·A + a, ``[S·A]``."""
        return self.reward.flatten()


def river_swim() -> TabularMDP:
    """RiverSwim with 6 states as Osband, Russo & Van Roy (2013) define it (see the module)."""
    states, left, right = 6, 0, 1
    last = states - 1
    transition = torch.zeros(states, 2, states, dtype=torch.float64)
    for s in range(states):
        transition[s, left, max(s - 1, 0)] = 1.0
    transition[0, right, 0], transition[0, right, 1] = 0.4, 0.6
    for s in range(1, last):
        transition[s, right, s - 1 : s + 2] = torch.tensor([0.05, 0.6, 0.35], dtype=torch.float64)
    transition[last, right, last - 1], transition[last, right, last] = 0.4, 0.6
    reward = torch.zeros(states, 2, dtype=torch.float64)
    reward[0, left], reward[last, right] = 5 / 1000, 1.0
    start = one_hot(torch.tensor(0), states).to(torch.float64)
    return TabularMDP(start, transition, reward)


def cumulative(probabilities: Tensor) -> Tensor:
    """The distribution function F ``[*, K]`` of ``probabilities`` over the last dim, divided
    by its last entry so that it ends at exactly 1 and no u ∈ [0, 1) falls past it."""
    total = probabilities.cumsum(-1)
    return total / total[..., -1:]


def invert(uniform: Tensor, distribution_function: Tensor) -> Tensor:
    """The index k with F_{k−1} ≤ u < F_k for u ∈ [0, 1] ``[*]`` and F ``[*, K]`` (the two
    broadcast), ``[*]`` in F's dtype. A zero-probability k has F_k = F_{k−1} and is never chosen,
    not even at u = 0 or u = 1 (read as the largest number below 1).
    """
    below_one = uniform.clamp(max=1 - torch.finfo(uniform.dtype).eps / 2)
    # Summing floats: torch reduces a bool tensor over a short last dim several times slower.
    below = distribution_function <= below_one.unsqueeze(-1)
    return below.to(distribution_function.dtype).sum(-1)


class TrajectoryDistribution(Distribution):
    """Trajectories ``[H, 2]`` of (state, action) of a softmax policy in a :class:`TabularMDP`.

    ``log_policy`` is log π_θ ``[*B, S, A]``; ``batch_shape`` is ``B``, ``event_shape``
    ``(H, 2)``. Only :meth:`log_prob` is provided: the objective draws trajectories from its
    own noise, so that every draw comes from the run's generator.
    """

    arg_constraints: ClassVar[dict[str, Constraint]] = {}  # no parameter to validate
    has_rsample = False

    def __init__(self, log_policy: Tensor, mdp: TabularMDP, horizon: int) -> None:
        self.log_policy = log_policy
        self.mdp = mdp
        # Validation would read device values back to the host on every call (see Objective).
        super().__init__(log_policy.shape[:-2], torch.Size((horizon, 2)), validate_args=False)

    def log_prob(self, value: Tensor) -> Tensor:
        """log q_θ(x) for trajectories ``[*S, H, 2]``, ``[*S]`` broadcast with the batch."""
        states, actions = value[..., 0].long(), value[..., 1].long()  # [*S, H]
        S, A = self.mdp.states, self.mdp.actions
        pair = states * A + actions
        # Visits N(s, a) of the trajectory: Σ_t log π(a_t | s_t) = Σ_{s,a} N(s, a) log π(a | s).
        visits = torch.zeros(
            *pair.shape[:-1], S * A, dtype=self.log_policy.dtype, device=pair.device
        )
        visits.scatter_add_(-1, pair, torch.ones_like(pair, dtype=visits.dtype))
        policy = (visits.unflatten(-1, (S, A)) * self.log_policy).sum((-2, -1))
        log_transition = on_device_of(self.mdp.log_transition, visits)
        moves = log_transition[pair[..., :-1] * S + states[..., 1:]].sum(-1)
        return on_device_of(self.mdp.log_start, visits)[states[..., 0]] + policy + moves


class RiverSwimPolicy(Objective):
    """Expected return of a softmax policy on RiverSwim; parameter ``logits`` ``[6, 2]``."""

    maximize = True  # the expected return

    name = "policy-mdp"
    description = "return of a softmax policy on RiverSwim (6 states, horizon H), exact by DP"
    reference_method = "exact (dynamic programming)"
    differentiable_cost = False
    has_rsample = False
    #: An estimate walks H steps one after another; fewer keep the default suite quick.
    default_samples = 20_000
    settings = (
        Setting("horizon", int, 20, "steps per episode H", at_least(1)),
        Setting(
            "discount",
            float,
            1.0,
            "discount γ of the return Σ γ^t r_t, in (0, 1]",
            lambda value: None if 0 < value <= 1 else "must be in (0, 1]",
        ),
        Setting("bias", float, 0.0, "logit of right minus left in every state (0: uniform)"),
    )

    def __init__(self, **settings: object) -> None:
        super().__init__(**settings)
        self.mdp = river_swim()

    @property
    def horizon(self) -> int:
        return int(self.setting("horizon"))

    def parameters(self) -> Params:
        logits = torch.zeros(self.mdp.states, self.mdp.actions, dtype=torch.float64)
        logits[:, 1] = self.setting("bias")
        return {"logits": logits}

    def distribution(self, params: Params) -> Distribution:
        log_policy = torch.log_softmax(params["logits"], dim=-1)
        return TrajectoryDistribution(log_policy, self.mdp, self.horizon)

    def noise(self, n: int, params: Params, generator: torch.Generator) -> Tensor:
        return torch.rand(
            (n, self.horizon, 2),
            generator=generator,
            dtype=params["logits"].dtype,
            device=generator.device,
        )

    def transform(self, noise: Tensor, params: Params) -> Tensor:
        """Trajectories ``[*S, H, 2]`` (broadcast with θ's batch dims), one step at a time."""
        logits = params["logits"]
        S, A, H = self.mdp.states, self.mdp.actions, self.horizon
        batch = broadcast_shape(noise.shape[:-2], logits.shape[:-2])
        uniform = noise.expand(*batch, H, 2)
        policy = cumulative(torch.softmax(logits, dim=-1)).expand(*batch, S, A)
        transition = on_device_of(self.mdp.transition_function, noise)  # [S·A, S]
        x = noise.new_empty(*batch, H, 2)
        state = invert(uniform[..., 0, 1], on_device_of(self.mdp.start_function, noise))
        for t in range(H):
            rows = state.long()[..., None, None]
            action = invert(
                uniform[..., t, 0], torch.take_along_dim(policy, rows, dim=-2)[..., 0, :]
            )
            x[..., t, 0], x[..., t, 1] = state, action
            if t + 1 < H:
                pair = (state * A + action).long()
                state = invert(uniform[..., t + 1, 1], transition[pair])
        return x

    def cost(self, x: Tensor, params: Params) -> Tensor:
        """The discounted return Σ_t γ^t r(s_t, a_t) of trajectories ``[*S, H, 2]``: ``[*S]``."""
        pair = x[..., 0].long() * self.mdp.actions + x[..., 1].long()
        rewards = on_device_of(self.mdp.flat_reward, x)[pair]  # [*S, H]
        steps = torch.arange(self.horizon, dtype=x.dtype, device=x.device)
        return (rewards * self.setting("discount") ** steps).sum(-1)

    def expected_cost(self, params: Params) -> Tensor:
        logits = params["logits"]
        policy = torch.softmax(logits, dim=-1)  # [*B, S, A]
        transition = on_device_of(self.mdp.transition, logits)
        reward = on_device_of(self.mdp.reward, logits)
        discount = self.setting("discount")
        value = torch.zeros_like(policy[..., 0])  # V_H = 0, [*B, S]
        for _ in range(self.horizon):
            following = (transition * value[..., None, None, :]).sum(-1)  # Σ_s' P V, [*B, S, A]
            action_value = reward + discount * following
            value = (policy * action_value).sum(-1)
        return (on_device_of(self.mdp.start, logits) * value).sum(-1)
