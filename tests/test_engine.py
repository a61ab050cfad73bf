"""The engine: seeding, chunking, failure isolation, warnings."""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import replace

import pandas as pd
import pytest
import torch
from fresh_process import modules_loaded_by

from gradbench import compare, run_comparison
from gradbench.core.errors import InputError
from gradbench.core.estimator import Estimator
from gradbench.core.shapes import broadcast_shape
from gradbench.engine.run import RunConfig, choose_chunk_size, derive_seed, run_pair, timing_batch
from gradbench.engine.timing import UNSTABLE
from gradbench.estimators.moving_average import MovingAverageBaseline
from gradbench.estimators.reinforce import Reinforce
from gradbench.estimators.reparam import Reparam
from gradbench.objectives.gaussian import GaussianSquare
from gradbench.records.comparison import WARNING_SEPARATOR

FAST = RunConfig(n_samples=2000, seed=0, timing_repeats=0)
#: What a timing measures, and how (its batch and repeats follow the pace of the machine).
TIME_COLUMNS = [
    "time_per_sample_s",
    "time_per_sample_min_s",
    "time_per_sample_max_s",
    "timing_batch",
    "timing_repeats",
    "warm_up_time_s",
]


class Raising(Estimator):
    name = "raising"
    description = "always fails"

    def estimate(self, objective, params, n, generator):
        raise RuntimeError("boom")


class WrongShape(Estimator):
    name = "wrong-shape"
    description = "returns a mean instead of per-sample rows"

    def estimate(self, objective, params, n, generator):
        return Reinforce().estimate(objective, params, n, generator).mean(0, keepdim=True)


class SometimesNaN(Estimator):
    name = "sometimes-nan"
    description = "reinforce with every 10th estimate NaN"

    def estimate(self, objective, params, n, generator):
        g = Reinforce().estimate(objective, params, n, generator)
        g[::10] = math.nan
        return g


class WrongDtype(Estimator):
    name = "wrong-dtype"
    description = "returns float64 whatever the run's dtype"

    def estimate(self, objective, params, n, generator):
        return Reinforce().estimate(objective, params, n, generator).double()


class OnAnotherDevice(Estimator):
    name = "elsewhere"
    description = "returns its estimates on the meta device"

    def estimate(self, objective, params, n, generator):
        return torch.zeros((n, 2), dtype=params["mu"].dtype, device="meta")


class AllNaN(Estimator):
    name = "all-nan"
    description = "returns nothing but NaN"

    def estimate(self, objective, params, n, generator):
        return torch.full((n, 2), math.nan, dtype=params["mu"].dtype)


class OutOfMemoryAbove(Estimator):
    name = "oom"
    description = "reinforce that runs out of memory for chunks above 300"

    def estimate(self, objective, params, n, generator):
        if n > 300:
            raise torch.OutOfMemoryError("simulated")
        return Reinforce().estimate(objective, params, n, generator)


def measured(table: pd.DataFrame, columns) -> pd.DataFrame:
    """The columns a run measures, less wall times, the warnings about them (an unstable
    timing) and the cross-row ``best`` mark."""
    dropped = [*TIME_COLUMNS, "work_variance", "best"]
    kept = table[[c for c in columns if c not in dropped]].reset_index(drop=True)
    notes = kept["warnings"].str.split(WARNING_SEPARATOR, regex=False)
    kept["warnings"] = [
        WARNING_SEPARATOR.join(n for n in row if not n.startswith(UNSTABLE)) for row in notes
    ]
    return kept


def test_same_seed_same_numbers_regardless_of_other_pairs():
    alone = compare(["gaussian-square"], ["fd"], n_samples=3000, seed=4)
    together = compare(["bernoulli-toy", "gaussian-square"], ["reinforce", "fd"], 3000, seed=4)
    row = together[(together.objective == "gaussian-square") & (together.estimator == "fd")]
    pd.testing.assert_frame_equal(measured(alone, alone.columns), measured(row, alone.columns))


def test_any_order_of_estimators_gives_the_same_rows():
    forward = compare(["bernoulli-toy"], ["reinforce", "rloo", "arm"], n_samples=2000, seed=9)
    backward = compare(["bernoulli-toy"], ["arm", "rloo", "reinforce"], n_samples=2000, seed=9)
    backward = backward.iloc[::-1].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        measured(forward, forward.columns), measured(backward, forward.columns)
    )


def test_a_different_seed_gives_different_draws():
    first = compare(["gaussian-square"], ["reinforce"], n_samples=3000, seed=1)
    second = compare(["gaussian-square"], ["reinforce"], n_samples=3000, seed=2)
    assert first.variance[0] != second.variance[0]


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(0, "a", "b") == derive_seed(0, "a", "b")
    assert len({derive_seed(0, "a", "b"), derive_seed(0, "b", "a"), derive_seed(1, "a", "b")}) == 3
    assert 0 <= derive_seed(123, "x") < 2**63


@pytest.mark.parametrize(
    ("estimator", "message"),
    [
        (Raising(), "RuntimeError: boom"),
        (WrongShape(), "returned shape (1, 2), expected (2000, 2)"),
        (WrongDtype(), "returned torch.float64, expected torch.float32"),
        (AllNaN(), "all 2000 estimates of all-nan were NaN or Inf"),
        (OnAnotherDevice(), "returned a tensor on meta, expected cpu"),
    ],
)
def test_a_failing_pair_becomes_a_failed_row(estimator, message):
    result = run_pair(GaussianSquare(), estimator, FAST)
    assert result.status == "failed"
    assert message in result.reason
    assert result.summary is None


def test_nonfinite_estimates_are_counted_and_warned():
    result = run_pair(GaussianSquare(), SometimesNaN(), FAST)
    assert result.status == "ok"
    assert result.summary.n_nonfinite == 200 and result.summary.n_used == 1800
    assert any("NaN/Inf" in note for note in result.warnings)


def test_out_of_memory_halves_the_chunk_and_finishes():
    config = RunConfig(n_samples=2000, seed=0, timing_repeats=0, chunk_size=2000)
    result = run_pair(GaussianSquare(), OutOfMemoryAbove(), config)
    assert result.status == "ok"
    assert result.chunk_size <= 300 and result.summary.n_used == 2000


def test_chunked_run_uses_the_given_chunk_and_every_sample():
    config = RunConfig(n_samples=1001, seed=0, timing_repeats=0, chunk_size=7)
    result = run_pair(GaussianSquare(dim=3), Reinforce(), config)
    assert result.chunk_size == 7 and result.summary.n_used == 1001


def test_chunk_size_shrinks_with_evaluations_and_dimension():
    objective = GaussianSquare(dim=64)
    params = objective.parameters()
    config = RunConfig(n_samples=10**8, memory_budget=2**26)
    one = choose_chunk_size(objective, params, 1, config)
    many = choose_chunk_size(objective, params, 256, config)
    assert 1 <= many < one <= 10**8
    assert many < one / 100
    assert one % 16 == 0 and many % 16 == 0


@pytest.mark.parametrize(
    ("objective_name", "estimator_name"),
    [
        ("categorical-toy", "unordered-set"),
        ("categorical-product", "gumbel-rao"),
        ("iwae-linear-gaussian", "rqmc-reparam"),
    ],
)
def test_an_estimators_own_working_memory_shrinks_its_chunk(objective_name, estimator_name):
    """The unordered-set's quadrature grids, Gumbel-Rao's M noise draws and RQMC's scrambled
    nets per estimate count in the chunk plan: a chunk's planned bytes, theirs included, stay
    within the budget, and the engine runs the pair in that chunk."""
    from gradbench.extend import registry

    objective = registry.objectives.get(objective_name)()
    estimator = registry.estimators.get(estimator_name)()
    params = {k: v.float() for k, v in objective.parameters().items()}  # as run_pair has them
    budget = 2**24
    config = RunConfig(n_samples=20_000, memory_budget=budget, timing_repeats=0)
    working = estimator.working_bytes(objective, params)
    evaluations = estimator.evaluations(objective, params)
    chunk = choose_chunk_size(objective, params, evaluations, config, working)
    assert working > 0 and chunk * working <= budget
    assert chunk < choose_chunk_size(objective, params, evaluations, config)
    assert run_pair(objective, estimator, config).chunk_size == chunk


def test_chunk_budget_is_capped_by_free_memory(monkeypatch):
    from gradbench.engine import memory

    monkeypatch.setattr(memory, "free_bytes", lambda device: 2**20)
    assert memory.chunk_budget(torch.device("cpu")) == 2**19
    monkeypatch.setattr(memory, "free_bytes", lambda device: None)
    assert memory.chunk_budget(torch.device("cpu")) == memory.DEFAULT_BUDGET["cpu"]


def test_single_draw_estimators_do_not_depend_on_the_chunk_size():
    """Whole-row CPU normal draws are chunk-invariant; only float64 sums differ, by rounding."""
    results = [
        run_pair(
            GaussianSquare(dim=3), Reinforce(), RunConfig(2048, chunk_size=c, timing_repeats=0)
        )
        for c in (2048, 512, 48)
    ]
    for other in results[1:]:
        torch.testing.assert_close(other.summary.mean, results[0].summary.mean)
        assert other.summary.variance == pytest.approx(results[0].summary.variance, rel=1e-12)


class Interrupting(Estimator):
    name = "interrupting"
    description = "a user pressing Ctrl-C"

    def estimate(self, objective, params, n, generator):
        raise KeyboardInterrupt


def test_ctrl_c_keeps_the_pairs_that_finished():
    comparison = run_comparison(
        [GaussianSquare()], ["reinforce", Interrupting(), "fd"], n_samples=500, timing_repeats=0
    )
    assert comparison.interrupted
    assert comparison.table().estimator.tolist() == ["reinforce"]


def test_instances_run_as_given_next_to_names():
    table = compare([GaussianSquare(k=-1.0), "bernoulli-toy"], [SometimesNaN(), "fd"], 500)
    assert table.estimator.tolist() == ["sometimes-nan", "fd", "sometimes-nan", "fd"]
    assert table.setting_k[0] == -1.0 and table.n_nonfinite[0] == 50


def test_small_n_is_warned():
    result = run_pair(GaussianSquare(), Reinforce(), RunConfig(n_samples=100, timing_repeats=0))
    assert any("--samples" in note for note in result.warnings)


def test_timing_is_recorded_when_asked():
    result = run_pair(GaussianSquare(), Reinforce(), RunConfig(n_samples=500, timing_repeats=3))
    # The batch depends on how fast this machine ran the pass (see timing_batch): at most n,
    # else whole aligned rows.
    batch = result.timing.batch
    assert result.timing.repeats == 3 and (batch == 500 or (16 <= batch < 500 and batch % 16 == 0))
    assert result.timing.min_per_sample_s <= result.timing.per_sample_s
    assert result.timing.per_sample_s <= result.timing.max_per_sample_s


def test_a_stateful_estimators_warm_up_is_timed_apart_from_its_estimates():
    """ema-baseline warms up (its set-up cost is in ``warm_up_time_s``); reinforce has none;
    the table carries both, and a basket measured in a trajectory's state has none."""
    table = compare(["gaussian-square"], ["ema-baseline", "reinforce"], n_samples=500)
    warm_up = dict(zip(table.estimator, table.warm_up_time_s, strict=True))
    assert warm_up["ema-baseline"] > 0 and warm_up["reinforce"] == 0
    objective = GaussianSquare()
    as_it_comes = run_pair(objective, MovingAverageBaseline(), FAST, at=objective.parameters())
    assert as_it_comes.warm_up_s == 0


def test_api_rejects_bad_values_before_running():
    with pytest.raises(InputError, match="n_samples"):
        run_comparison(n_samples=0)
    with pytest.raises(InputError, match="unknown estimator 'nope'; valid estimators: "):
        run_comparison(estimators=["nope"])
    with pytest.raises(InputError, match="sigma must be > 0"):
        run_comparison(["gaussian-square"], settings={"sigma": -1})
    with pytest.raises(InputError, match="'fdd' is not a chosen objective or estimator"):
        run_comparison(["gaussian-square"], ["fd"], settings={"fdd.step": 1e-3})


def test_settings_route_to_objectives_and_estimator_options():
    table = compare(
        ["gaussian-square", "bernoulli-toy"],
        ["fd"],
        n_samples=500,
        settings={"dim": 2, "gaussian-square.k": 0.5, "fd.step": 1e-2},
    )
    square, toy = table.iloc[0], table.iloc[1]
    assert square.setting_dim == 2 and toy.setting_dim == 2
    assert square.setting_k == 0.5 and math.isnan(toy.setting_k)
    assert square.option_step == 1e-2 and square.grad_dim == 4 and toy.grad_dim == 2


def test_timing_batch_is_a_chunk_unless_that_would_cost_a_twentieth_of_the_run():
    # Cheap: six calls of a chunk cost less than MIN_TIMING_S, whole chunks (at most n).
    assert timing_batch(chunk=4096, n_samples=100_000, seconds_per_estimate=1e-7, repeats=5) == 4096
    assert timing_batch(chunk=4096, n_samples=1000, seconds_per_estimate=1e-7, repeats=5) == 1000
    # 1 ms per estimate, n = 4000: a 4 s run affords 0.2 s of timing, 33 rows per call for
    # the warm-up and 5 repeats, rounded down to a multiple of 16.
    assert timing_batch(chunk=4096, n_samples=4000, seconds_per_estimate=1e-3, repeats=5) == 32
    # The same pace over n = 10⁶: whole chunks are within a twentieth of the run; over 10⁵
    # not (5 s: 833 rows per call, rounded down).
    assert timing_batch(chunk=4096, n_samples=10**6, seconds_per_estimate=1e-3, repeats=5) == 4096
    assert timing_batch(chunk=4096, n_samples=10**5, seconds_per_estimate=1e-3, repeats=5) == 832
    # Slower than the budget allows for one aligned batch: still a whole batch, never zero.
    assert timing_batch(chunk=4096, n_samples=100, seconds_per_estimate=1.0, repeats=5) == 16
    assert timing_batch(chunk=8, n_samples=100, seconds_per_estimate=1.0, repeats=5) == 8


def test_a_pass_of_many_chunks_is_its_own_timing():
    """Twelve whole chunks of 160 and a partial one: three of the eleven after the first are
    the repeats, at no extra cost; a timing guard (a sweep's exclusive lock) times apart."""
    config = RunConfig(n_samples=2000, chunk_size=160, timing_repeats=3)
    result = run_pair(GaussianSquare(), Reinforce(), config)
    assert (result.timing.repeats, result.timing.batch) == (3, 160)
    guarded = run_pair(GaussianSquare(), Reinforce(), replace(config, timing_guard=nullcontext))
    # Timed apart, the batch is a chunk unless this machine ran slower than a twentieth of the
    # pass allows (timing_batch): then fewer aligned rows.
    batch = guarded.timing.batch
    assert guarded.timing.repeats == 3 and (batch == 160 or (16 <= batch < 160 and batch % 16 == 0))
    assert guarded.summary.variance == result.summary.variance  # timing draws its own noise


class _OneSpike(Estimator):
    """Zero everywhere but one estimate: every other group's variance is 0, so the
    jackknife of log V has no defined spread."""

    name = "one-spike"
    description = "one nonzero estimate"
    unbiased = False

    def estimate(self, objective, params, n, generator):
        estimates = torch.zeros(n, 2, dtype=params["mu"].dtype)
        estimates[0, 0] = 1e3
        return estimates


def test_an_interval_one_group_dominates_gets_a_warning_that_says_what_to_do():
    result = run_pair(GaussianSquare(), _OneSpike(), RunConfig(n_samples=2000, timing_repeats=0))
    assert result.status == "ok", result.reason
    wild = [note for note in result.warnings if "one group of estimates dominates" in note]
    assert len(wild) == 1 and "mu[0]" in wild[0] and "--samples" in wild[0]


class _OutOfMemoryAbove(Estimator):
    """The pathwise rule, raising CUDA's out-of-memory error for chunks above a size."""

    name = "oom-above"
    description = "reparam that runs out of memory above 64 rows"

    def __init__(self) -> None:
        super().__init__()
        self.inner = Reparam()

    def estimate(self, objective, params, n, generator):
        if n > 64:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.inner.estimate(objective, params, n, generator)


def test_out_of_memory_halves_the_chunk_and_the_run_is_that_of_its_chunk_size():
    """Chunks of 1000 run out of memory down to 496, 240, 112 and 48 rows (halved, multiples
    of 16); the pass starts again each time, so the numbers equal a run with chunks of 48."""
    config = RunConfig(n_samples=3000, chunk_size=1000, timing_repeats=0)
    result = run_pair(GaussianSquare(dim=2), _OutOfMemoryAbove(), config)
    assert result.status == "ok", result.reason
    assert result.chunk_size == 48
    direct = run_pair(GaussianSquare(dim=2), _OutOfMemoryAbove(), replace(config, chunk_size=48))
    assert result.summary.variance == direct.summary.variance
    assert torch.equal(result.summary.mean, direct.summary.mean)


def test_a_run_too_short_for_its_kurtosis_says_how_many_estimates_it_needs():
    """REINFORCE on gaussian-square has κ̂ ≈ 60–75 at n = 2000 (benchmarks/interval_coverage.py
    flagged all of 2000 runs); reparam's κ̂ ≈ 8 is trusted. Seeded."""
    config = RunConfig(n_samples=2000, timing_repeats=0)
    score = run_pair(GaussianSquare(), Reinforce(), config)
    needed = math.ceil(100 * score.summary.variance_kurtosis)
    assert needed > 2000
    assert any(f"use --samples {needed} or more" in note for note in score.warnings)
    path = run_pair(GaussianSquare(), Reparam(), config)
    assert not any("kurtosis" in note for note in path.warnings)


@pytest.mark.parametrize(
    "shapes",
    [((2, 1), (3,)), (torch.Size([4, 1, 3]), (2, 1)), ((), (5,)), ((1,), (0,)), ((2, 3),)],
)
def test_broadcast_shape_is_torch_broadcast_shapes(shapes):
    assert broadcast_shape(*shapes) == torch.broadcast_shapes(*shapes)


def test_broadcast_shape_refuses_shapes_that_do_not_broadcast():
    with pytest.raises(RuntimeError, match="must match"):
        broadcast_shape((2,), (3,))


def test_the_objectives_that_broadcast_shapes_do_not_import_sympy():
    """iwae-discrete and policy-mdp broadcast shapes in their cost; a process that runs them
    stays free of sympy (34 MB), which torch.broadcast_shapes would import."""
    script = (
        "from gradbench import compare\n"
        "compare(['iwae-discrete', 'policy-mdp'], ['reinforce'], n_samples=64)\n"
    )
    _, loaded = modules_loaded_by(script, ["sympy"])
    assert loaded == []
