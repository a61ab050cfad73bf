"""Milliseconds per call of ``GradientStatistics.add`` on one fixed chunk, beside ``torch.randn``
of the same shape, in one process (median of 21 calls after one warm-up):

    python benchmarks/accumulator_add.py

Run at two commits to compare two versions of the accumulator on the same machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import torch

from gradbench.stats.accumulator import GradientStatistics

SHAPES = [(32768, 16), (8192, 16), (71088, 16), (1024, 1024), (4096, 1024)]


def median_ms(call: Callable[[], object], repeats: int = 21) -> float:
    call()
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        walls.append(time.perf_counter() - start)
    return sorted(walls)[repeats // 2] * 1e3


def main() -> None:
    torch.manual_seed(0)
    print(f"{'chunk':>12} {'add ms':>8} {'randn ms':>9} {'ratio':>6}")
    for rows, dim in SHAPES:
        estimates = torch.randn(rows, dim)
        statistics = GradientStatistics(torch.ones(dim, dtype=torch.float64), rows * 10**6)
        add = median_ms(partial(statistics.add, estimates))
        noise = median_ms(partial(torch.randn, rows, dim))
        print(f"{rows:>6} × {dim:<5} {add:>8.2f} {noise:>9.2f} {add / noise:>6.2f}")


if __name__ == "__main__":
    main()
