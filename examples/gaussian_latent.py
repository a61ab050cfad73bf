"""A Gaussian latent z ~ N(μ, σ²), θ = (μ, log σ); cost: a fixed decoder's log p(x | z)."""

import torch
from torch.distributions import Bernoulli, Normal

import gradbench

torch.manual_seed(0)
decoder = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 5))
x = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])  # one data point: 5 binary pixels
GaussianLatent = gradbench.ModelObjective.define(
    "gaussian-latent", "z ~ N(μ, σ²), cost log p(x | z) under a fixed tanh decoder",
    parameters={"mu": torch.zeros(2), "log_sigma": torch.zeros(2)},
    distribution=lambda theta: Normal(theta["mu"], theta["log_sigma"].exp()),
    cost=lambda z: Bernoulli(logits=decoder.to(z)(z)).log_prob(x.to(z)).sum(-1),
)  # fmt: skip
gradbench.register_objective(GaussianLatent)
