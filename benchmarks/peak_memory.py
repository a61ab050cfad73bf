"""Peak memory of a run as n grows: flat, because estimates stream through fixed-size chunks.

    python benchmarks/peak_memory.py [--device cpu] [--max-exponent 7] [--chunk-size 10000]

The chunk size is fixed (a run's memory is bounded by its chunk, by design), so what is
measured is whether anything else grows with n. Each n runs in a fresh process (peak resident
memory cannot be reset within one): pathwise estimates on gaussian-square, D = 16, float32.
Reported: the growth of the process's peak resident set size over what it held after importing
gradbench and torch (CPU), or the peak of torch's CUDA allocator (GPU).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

CHILD = """
import resource, sys, torch
from gradbench.engine.run import RunConfig, run_pair
from gradbench.estimators.reparam import Reparam
from gradbench.objectives.gaussian import GaussianSquare
n, device, chunk = int(sys.argv[1]), torch.device(sys.argv[2]), int(sys.argv[3])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
config = RunConfig(n, timing_repeats=0, device=device, chunk_size=chunk)
result = run_pair(GaussianSquare(dim=16), Reparam(), config)
if device.type == "cuda":
    peak = torch.cuda.max_memory_allocated(device)
else:
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
print(peak, result.chunk_size, result.summary.n_used)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-exponent", type=int, default=7)
    parser.add_argument("--chunk-size", type=int, default=10_000)
    args = parser.parse_args()
    kind = "CUDA allocator peak" if args.device.startswith("cuda") else "peak RSS growth"
    print(f"{'n':>10} {'chunk':>8} {kind + ' (MiB)':>26}")
    for exponent in range(4, args.max_exponent + 1):
        n = 10**exponent
        output = subprocess.run(
            [sys.executable, "-c", CHILD, str(n), args.device, str(args.chunk_size)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        peak, chunk, used = int(output[0]), int(output[1]), int(output[2])
        assert used == n
        print(f"{n:>10} {chunk:>8} {peak / 2**20:>26.1f}", flush=True)


if __name__ == "__main__":
    main()
