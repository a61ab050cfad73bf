"""The engine on a GPU (marked ``cuda``; every test skips cleanly without CUDA).

The sampling loop must never wait for the device: under
``torch.cuda.set_sync_debug_mode("error")`` any synchronising call inside it raises. The loop
is run here with timing from its own chunks (CUDA events, read after the pass) and with the
statistics on the device; the one read-back is the summary after the loop.
"""

from __future__ import annotations

import traceback
from contextlib import contextmanager

import pytest
import torch

from gradbench.engine import run as engine_run
from gradbench.engine.run import RunConfig, run_pair
from gradbench.estimators.reinforce import Reinforce
from gradbench.estimators.reparam import Reparam
from gradbench.estimators.sample_baselines import LeaveOneOut
from gradbench.objectives.bernoulli import BernoulliToy
from gradbench.objectives.gaussian import GaussianSquare
from gradbench.objectives.vae import GaussianVAE
from gradbench.stats.accumulator import GradientStatistics

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_statistics_loop_does_not_synchronise(dtype):
    device = torch.device("cuda")
    reference = torch.ones(8, dtype=torch.float64, device=device)
    statistics = GradientStatistics(reference, 40_000)
    chunks = [torch.randn(4096, 8, device=device, dtype=dtype) for _ in range(9)]
    chunks.append(torch.randn(40_000 - 9 * 4096, 8, device=device, dtype=dtype))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for chunk in chunks:
            statistics.add(chunk)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    summary = statistics.summary()
    assert summary.n_used == 40_000


class StrictClock(engine_run.ChunkClock):
    """The engine's chunk clock, turning sync debug mode to "error" as the first chunk's
    estimates start: from there to the summary every call of the loop is checked."""

    @contextmanager
    def timing(self, rows: int):
        torch.cuda.set_sync_debug_mode("error")
        with super().timing(rows):
            yield


PAIRS = {
    "gaussian-square × reparam": lambda: (GaussianSquare(dim=4), Reparam()),
    "bernoulli-toy × reinforce": lambda: (BernoulliToy(), Reinforce()),
    "gaussian-square × reinforce (closed-form score)": lambda: (GaussianSquare(dim=4), Reinforce()),
    "vae-gaussian × rloo": lambda: (GaussianVAE(batch=4), LeaveOneOut()),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("pair", list(PAIRS))
def test_the_engines_sampling_loop_does_not_synchronise(monkeypatch, pair, dtype):
    """run_pair's whole measuring pass (the estimator, the output checks, the statistics, the
    CUDA events of the timing) runs under set_sync_debug_mode("error"), from the first
    chunk's estimates to the summary after the loop, its one read-back; a synchronising call
    inside fails the pair, and the assertion shows where it was made."""
    summary, measure = GradientStatistics.summary, engine_run._measure
    tracebacks: list[str] = []

    def relaxed_summary(self):
        torch.cuda.set_sync_debug_mode("default")
        return summary(self)

    def traced_measure(*args):
        try:
            return measure(*args)
        except Exception:
            tracebacks.append(traceback.format_exc())
            raise

    monkeypatch.setattr(engine_run, "ChunkClock", StrictClock)
    monkeypatch.setattr(GradientStatistics, "summary", relaxed_summary)
    monkeypatch.setattr(engine_run, "_measure", traced_measure)
    objective, estimator = PAIRS[pair]()
    config = RunConfig(n_samples=40_000, device=torch.device("cuda"), dtype=dtype, chunk_size=4096)
    try:
        result = run_pair(objective, estimator, config)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert result.status == "ok", "\n".join([result.reason, *tracebacks])
    assert result.timing is not None and result.timing.repeats >= config.timing_repeats


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_same_seed_repeats_its_numbers_on_the_device(dtype):
    config = RunConfig(n_samples=50_000, device=torch.device("cuda"), dtype=dtype, chunk_size=4096)
    for objective, estimator in ((GaussianSquare(dim=4), Reparam()), (BernoulliToy(), Reinforce())):
        first, second = (run_pair(objective, estimator, config) for _ in range(2))
        assert first.status == "ok", first.reason
        assert first.summary.variance == second.summary.variance
        assert torch.equal(first.summary.mean, second.summary.mean)
        assert first.timing.repeats >= config.timing_repeats  # from the pass's own chunks


def test_out_of_memory_halves_the_chunk():
    """The device allows this process 256 MiB; a chunk of 2^20 estimates of 64 coordinates
    needs several GiB: the engine halves the chunk until it fits, and the run completes."""
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(256 * 2**20 / total)
    try:
        rows = 2**20
        config = RunConfig(
            n_samples=rows, device=torch.device("cuda"), chunk_size=rows, timing_repeats=0
        )
        result = run_pair(GaussianSquare(dim=32), Reparam(), config)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert result.status == "ok", result.reason
    assert result.chunk_size < rows


def test_chunks_are_sized_from_the_free_device_memory():
    """Without a chunk size, the chunk fits the CUDA budget, capped by half the free memory."""
    from gradbench.engine.memory import chunk_budget

    free, _ = torch.cuda.mem_get_info()
    assert chunk_budget(torch.device("cuda")) <= max(1, int(free * 0.5))
    config = RunConfig(n_samples=100_000, device=torch.device("cuda"), timing_repeats=0)
    result = run_pair(GaussianSquare(dim=16), Reparam(), config)
    assert result.status == "ok" and result.chunk_size % 16 == 0


def test_an_estimated_reference_runs_on_the_device_and_agrees_with_the_cpus():
    """vae-gaussian's reference is drawn on the GPU in float64 (other draws than the CPU's);
    the two agree within their standard errors (Bonferroni over the coordinates, Student t
    with 63 degrees of freedom, level 1e-4)."""
    from scipy.stats import t as student_t

    from gradbench.engine.reference import ReferencePlan
    from gradbench.estimators.sample_baselines import LeaveOneOut
    from gradbench.objectives.vae import GaussianVAE

    summaries = []
    for device in ("cuda", "cpu"):
        config = RunConfig(
            n_samples=2000,
            device=torch.device(device),
            timing_repeats=0,
            reference=ReferencePlan(samples=65536),
        )
        result = run_pair(GaussianVAE(batch=4), LeaveOneOut(), config)
        assert result.status == "ok", result.reason
        summaries.append(result.summary)
    gpu, cpu = summaries
    spread = (gpu.reference_se.cpu() ** 2 + cpu.reference_se.cpu() ** 2).sqrt()
    varies = spread > 0
    z = (gpu.reference.cpu() - cpu.reference.cpu())[varies] / spread[varies]
    p = min(1.0, z.numel() * 2 * float(student_t.sf(float(z.abs().max()), 63)))
    assert p >= 1e-4
