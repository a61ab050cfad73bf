"""A single-file gradbench plugin: the score function with the exact expected cost as baseline.

    gradbench compare gaussian-square -e reinforce -e oracle-baseline \
        --plugin examples/single_file_plugin.py
    gradbench check oracle-baseline --plugin examples/single_file_plugin.py

    g = (f(x) − b) ∇_θ log q_θ(x) + ∇_θ f(x; θ),   b = J(θ) = E_q[f],

is unbiased because b does not depend on x and E_q[∇_θ log q_θ(x)] = 0. J(θ) is known only for
benchmark objectives, so this is a yardstick for learned baselines, not a practical estimator.
"""

import torch

import gradbench


@gradbench.register_estimator
class OracleBaseline(gradbench.Estimator):
    name = "oracle-baseline"
    description = "score function with the exact baseline b = J(θ) (a yardstick)"

    def estimate(self, objective, params, n, generator) -> torch.Tensor:
        x = objective.sample(params, n, generator)
        baseline = objective.expected_cost(params).detach()

        def surrogate(theta):  # θ arrives broadcast to [n, *shape]; return [n]
            cost = objective.cost(x, theta)
            log_q = objective.distribution(theta).log_prob(x)
            return (cost.detach() - baseline) * log_q + cost

        return gradbench.per_sample_gradients(surrogate, params, n)
