"""A softmax policy over 4 actions, a reward per action; θ = the policy network's weights."""

import torch
from torch.distributions import Categorical

import gradbench

torch.manual_seed(0)
policy = torch.nn.Linear(3, 4)  # state features → action logits
state, reward = torch.tensor([1.0, -0.5, 0.25]), torch.tensor([1.0, 0.2, -0.4, 0.7])
SoftmaxPolicy = gradbench.ModelObjective.define(
    "softmax-policy", "softmax policy over 4 actions, a reward per action",
    module=policy,
    distribution=lambda net: Categorical(logits=net(state)),
    cost=lambda action: reward.to(action.device)[action],
)  # fmt: skip
gradbench.register_objective(SoftmaxPolicy)
