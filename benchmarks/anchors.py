"""The engine against its anchors, estimates per second, in one process.

    python benchmarks/anchors.py [--device cpu] [--repeats 5] [--quick]

For x ~ N(1, 2²) in D dimensions, f = Σ x², float32 (the issue's cells: pathwise and score
function at D = 16, N = 10⁶ and D = 1024, N = 10⁵; ``--quick`` divides N by 10):

* ``engine``: :func:`gradbench.run_pair` without timing repeats, estimates and statistics;
* ``estimates``: the estimator's own rule in the engine's chunks, no statistics;
* ``closed form``: the per-sample gradient by hand (pathwise 2x·(1, ε); score function
  f(x)·(ε/σ, (ε² − 1)/σ)), in the same chunks;
* ``torch.func``: ``vmap(grad)`` of the per-sample surrogate, in the same chunks;
* ``jax``: ``jit(vmap(grad))`` plus a mean and a variance per chunk, when JAX is installed
  (``pip install 'gradbench[bench]'``);
* ``randn``: drawing the noise alone, the floor of any Monte Carlo estimator.

Each cell is the median over ``--repeats`` interleaved rounds. The ratios in the last columns
(engine / estimates, engine / jax and engine / randn, in estimates per second) are paired: the
median over rounds of each round's own ratio, so that a machine whose speed drifts between
rounds (a shared one) moves both sides of a ratio alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from gradbench.core.status import Status
from gradbench.engine.run import RunConfig, choose_chunk_size, run_pair
from gradbench.engine.timing import synchronize
from gradbench.estimators.reinforce import Reinforce
from gradbench.estimators.reparam import Reparam
from gradbench.objectives.gaussian import GaussianSquare

ESTIMATORS = {"reparam": Reparam, "reinforce": Reinforce}
CELLS = (("reparam", 16, 10**6), ("reinforce", 16, 10**6), ("reparam", 1024, 10**5),
         ("reinforce", 1024, 10**5))  # fmt: skip
MU, SIGMA = 1.0, 2.0


def _chunks(n: int, chunk: int) -> list[int]:
    return [min(chunk, n - start) for start in range(0, n, chunk)]


def hand_closed_form(name: str, params: dict, sizes: list[int], generator) -> None:
    mu, sigma = params["mu"], params["sigma"]
    for m in sizes:
        eps = torch.randn(
            (m, mu.numel()), generator=generator, dtype=mu.dtype, device=generator.device
        )
        x = mu + sigma * eps
        if name == "reparam":
            slope = 2 * x
            torch.cat([slope, slope * eps], dim=1)
        else:
            f = (x * x).sum(1, keepdim=True)
            torch.cat([f * eps / sigma, f * (eps * eps - 1) / sigma], dim=1)


def torch_func(name: str, params: dict, sizes: list[int], generator) -> None:
    from torch.func import grad, vmap

    def pathwise(theta: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        mu, sigma = theta.chunk(2)
        return ((mu + sigma * eps) ** 2).sum()

    def score(theta: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        mu, sigma = theta.chunk(2)
        x = (MU + SIGMA * eps).detach()
        log_q = (-((x - mu) ** 2) / (2 * sigma**2) - torch.log(sigma)).sum()
        return (x * x).sum() * log_q

    rule = vmap(grad(pathwise if name == "reparam" else score), in_dims=(None, 0))
    theta = torch.cat([params["mu"], params["sigma"]])
    for m in sizes:
        eps = torch.randn(
            (m, theta.numel() // 2), generator=generator, dtype=theta.dtype, device=theta.device
        )
        rule(theta, eps)


def jax_rule(name: str, dim: int) -> Callable[[int, int], None] | None:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None

    def pathwise(theta, eps):
        mu, sigma = theta[:dim], theta[dim:]
        return jnp.sum((mu + sigma * eps) ** 2)

    def score(theta, eps):
        mu, sigma = theta[:dim], theta[dim:]
        x = jax.lax.stop_gradient(MU + SIGMA * eps)
        log_q = jnp.sum(-((x - mu) ** 2) / (2 * sigma**2) - jnp.log(sigma))
        return jnp.sum(x * x) * log_q

    per_sample = jax.vmap(jax.grad(pathwise if name == "reparam" else score), in_axes=(None, 0))

    @jax.jit
    def chunk(theta, key, m_shape):
        eps = jax.random.normal(key, (*m_shape.shape, dim))
        g = per_sample(theta, eps)
        return g.mean(0), g.var(0)

    theta = jnp.concatenate([jnp.full(dim, MU), jnp.full(dim, SIGMA)])

    def run(n: int, chunk_size: int) -> None:
        key = jax.random.PRNGKey(0)
        for m in _chunks(n, chunk_size):
            key, sub = jax.random.split(key)
            jax.block_until_ready(chunk(theta, sub, jnp.zeros(m)))

    return run


def measure(function: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of one call, the device's queue drained before and after."""
    synchronize(device)
    start = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - start


def interleaved_seconds(functions: dict, repeats: int, device) -> dict[str, list[float]]:
    """Wall seconds of each function in each of ``repeats`` interleaved rounds (each function
    already warmed up)."""
    seconds: dict[str, list[float]] = {key: [] for key in functions}
    for _ in range(repeats):
        for key, function in functions.items():
            seconds[key].append(measure(function, device))
    return seconds


def paired_ratio(seconds: dict[str, list[float]], anchor: str) -> float:
    """The engine's rate over ``anchor``'s (same count of estimates): the median over rounds
    of anchor seconds / engine seconds."""
    return statistics.median(a / e for a, e in zip(seconds[anchor], seconds["engine"], strict=True))


def checked_engine(objective, estimator, config: RunConfig) -> Callable[[], None]:
    """One ``run_pair`` that raises when the pair did not run (a rate of a failure is none)."""

    def engine() -> None:
        result = run_pair(objective, estimator, config)
        if result.status != Status.OK:
            raise RuntimeError(f"engine: {result.status} {result.reason}")

    return engine


def cell_functions(name: str, dim: int, n: int, device: torch.device) -> tuple[dict, int]:
    """The candidates of one cell, each a call that produces n estimates (or draws), and the
    engine's chunk size."""
    objective = GaussianSquare(dim=dim, mu=MU, sigma=SIGMA, k=0.0)
    estimator = ESTIMATORS[name]()
    config = RunConfig(n_samples=n, device=device, timing_repeats=0)
    params = {k: v.to(device, torch.float32) for k, v in objective.parameters().items()}
    chunk = choose_chunk_size(objective, params, 1, config)
    sizes = _chunks(n, chunk)
    generator = torch.Generator(device=device).manual_seed(0)

    def estimates() -> None:
        for m in sizes:
            estimator.estimate(objective, params, m, generator)

    def draws() -> None:
        for m in sizes:
            torch.randn((m, dim), generator=generator, device=device)

    functions: dict[str, Callable[[], object]] = {
        "engine": checked_engine(objective, estimator, config),
        "estimates": estimates,
        "closed": lambda: hand_closed_form(name, params, sizes, generator),
        "t.func": lambda: torch_func(name, params, sizes, generator),
        "randn": draws,
    }
    jax_run = jax_rule(name, dim)
    if jax_run is not None:
        jax_run(min(n, chunk), chunk)  # compile
        functions["jax"] = lambda: jax_run(n, chunk)
    return functions, chunk


def row(label: str, seconds: dict[str, list[float]], count: int) -> str:
    """One printed line: the median rates and the engine's paired ratios to its anchors."""
    rate = {key: count / statistics.median(times) for key, times in seconds.items()}

    def cell(key: str) -> str:
        return f"{rate[key]:>10.3g}" if key in rate else f"{'—':>10}"

    def ratio(key: str) -> str:
        return f"{paired_ratio(seconds, key):>9.2f}" if key in rate else f"{'—':>9}"

    return (
        f"{label:<26}{cell('engine')}{cell('estimates'):>11}{cell('closed')}{cell('t.func')}"
        f"{cell('jax')}{cell('randn')}{ratio('estimates')}{ratio('jax')}{ratio('randn')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="N / 10 in every cell")
    arguments = parser.parse_args()
    device = torch.device(arguments.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {device}, float32")
    print(
        f"{'cell':<26}{'engine':>10}{'estimates':>11}{'closed':>10}{'t.func':>10}{'jax':>10}"
        f"{'randn':>10}{'eng/est':>9}{'eng/jax':>9}{'eng/rnd':>9}"
    )
    for name, dim, n in CELLS:
        n = n // 10 if arguments.quick else n
        functions, _ = cell_functions(name, dim, n, device)
        for function in functions.values():
            function()  # warm-up
        seconds = interleaved_seconds(functions, arguments.repeats, device)
        print(row(f"{name} D={dim} N={n:.0e}", seconds, n))
    print(
        f"estimates per second, median of {arguments.repeats} interleaved rounds;"
        " ratios: median of each round's own ratio"
    )


if __name__ == "__main__":
    main()
