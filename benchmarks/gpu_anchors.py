"""The engine against its anchors on a GPU (issue 20): estimates per second and peak memory.

    python benchmarks/gpu_anchors.py [--device cuda] [--repeats 3] [--loop-samples 2000]
        [--cells 16:1e6,16:1e7,16:1e8,1024:65536,1024:262144,1024:1e6]
        [--estimators reparam,reinforce] [--csv PATH] [--markdown PATH]

The cells of ``benchmarks/anchors.py`` (x ~ N(1, 2²) in D dimensions, f = Σ x², float32) at the
issue's sizes, with its rules: ``engine`` (:func:`gradbench.run_pair` without timing repeats),
``estimates`` (the estimator's rule in the engine's chunks), ``closed`` (the hand-derived
per-sample gradient), ``t.func`` (``torch.func.vmap(grad)``), ``jax`` (``jit(vmap(grad))`` plus
a mean and a variance per chunk, on JAX's default backend) and ``randn`` (the noise alone), and
one more: ``loop``, one sample and one ``backward()`` at a time as written by hand
(``benchmarks/throughput.py``), timed on ``--loop-samples`` samples once per (estimator, D),
since its rate does not depend on N. ``peak`` is ``torch.cuda.max_memory_allocated`` over one
engine run, reset before it (empty on the CPU).

Each rate is the median over ``--repeats`` interleaved rounds after a warm-up; the ratios are
engine / loop (of the medians: the loop runs in rounds of its own), engine / closed and
engine / jax (paired: the median of each round's own ratio, as in ``anchors.py``). Rows go
to stdout and, as each cell finishes, to ``--csv``; ``--markdown`` gets the table at the end,
or at an interrupt (Ctrl-C, or ``timeout -s INT``) with the cells done so far.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

# JAX would otherwise take 75% of the GPU's memory at its first call, beside torch's.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import torch
from anchors import ESTIMATORS, MU, SIGMA, cell_functions, interleaved_seconds, paired_ratio
from throughput import hand_loop

from gradbench.objectives.gaussian import GaussianSquare

DEFAULT_CELLS = "16:1e6,16:1e7,16:1e8,1024:65536,1024:262144,1024:1e6"
RATES = ("engine", "estimates", "closed", "t.func", "jax", "randn", "loop")
RATIOS = {"eng/loop": "loop", "eng/closed": "closed", "eng/jax": "jax"}
#: The CSV's columns: the cell, its rates (estimates per second), peak bytes and ratios.
COLUMNS = ["estimator", "dim", "n", "chunk", *RATES, "peak_bytes", *RATIOS]
#: Issue 20's targets at D = 16: the engine's least ratio to each anchor.
TARGETS = {"eng/loop": 1e4, "eng/closed": 0.5, "eng/jax": 0.5}
#: ... and its peak memory across N, at most this factor apart.
FLAT_PEAK = 2.0


def parse_cells(text: str) -> list[tuple[int, int]]:
    """``D:N`` pairs, comma-separated; N may be written 1e6."""
    cells = []
    for item in text.split(","):
        dim, n = item.split(":")
        cells.append((int(dim), int(float(n))))
    return cells


def engine_peak(engine: Callable[[], None], device: torch.device) -> int | None:
    """Peak bytes torch's CUDA allocator held during one engine run (None on the CPU)."""
    if device.type != "cuda":
        engine()
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    engine()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device)


def loop_rate(name: str, dim: int, samples: int, repeats: int, device: torch.device) -> float:
    """Estimates per second of the hand-written per-sample loop (one backward per sample)."""
    objective = GaussianSquare(dim=dim, mu=MU, sigma=SIGMA, k=0.0)
    params = {k: v.to(device, torch.float32) for k, v in objective.parameters().items()}
    generator = torch.Generator(device=device).manual_seed(0)
    estimator = ESTIMATORS[name]()

    def loop() -> None:
        hand_loop(objective, estimator, params, samples, generator)

    loop()  # warm-up
    return samples / statistics.median(interleaved_seconds({"loop": loop}, repeats, device)["loop"])


def measure_cell(name: str, dim: int, n: int, loop: float, args, device) -> dict:
    """One row: every rate of the cell, the engine's peak memory and chunk, the ratios."""
    functions, chunk = cell_functions(name, dim, n, device)
    peak = engine_peak(functions["engine"], device)  # also the engine's warm-up
    for key, function in functions.items():
        if key != "engine":
            function()  # warm-up
    seconds = interleaved_seconds(functions, args.repeats, device)
    rate = {key: n / statistics.median(times) for key, times in seconds.items()}
    rate["loop"] = loop
    row: dict[str, object] = {"estimator": name, "dim": dim, "n": n, "chunk": chunk}
    row.update({key: rate.get(key) for key in RATES})
    row["peak_bytes"] = peak
    for ratio, key in RATIOS.items():
        # Paired per round (anchors.paired_ratio); the loop runs in rounds of its own.
        if key in seconds:
            row[ratio] = paired_ratio(seconds, key)
        else:
            row[ratio] = rate["engine"] / rate[key] if key in rate else None
    return row


def text_line(row: dict) -> str:
    """One printed line of the table."""

    def number(value: object, width: int, spec: str = ".3g") -> str:
        return f"{value:>{width}{spec}}" if isinstance(value, float | int) else f"{'—':>{width}}"

    peak = row["peak_bytes"]
    peak_mib = peak / 2**20 if isinstance(peak, int) else None
    label = f"{row['estimator']} D={row['dim']} N={row['n']:.3g}"
    rates = "".join(number(row[key], 10) for key in RATES)
    ratios = "".join(number(row[key], 11) for key in RATIOS)
    return f"{label:<28}{rates}{number(peak_mib, 10, '.4g')}{ratios}"


def text_header() -> str:
    """The printed table's header, aligned with :func:`text_line`."""
    rates = "".join(f"{key:>10}" for key in RATES)
    ratios = "".join(f"{key:>11}" for key in RATIOS)
    return f"{'cell':<28}{rates}{'peak MiB':>10}{ratios}"


def markdown_table(rows: list[dict], environment: str) -> str:
    """The rows as a Markdown table, rates in estimates per second."""

    def cell(value: object) -> str:
        return f"{value:.3g}" if isinstance(value, float | int) else "—"

    head = ["estimator", "D", "N", *RATES, "peak MiB", *RATIOS]
    lines = [environment, "", "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for row in rows:
        peak = row["peak_bytes"]
        values = [row["estimator"], str(row["dim"]), cell(row["n"])]
        values += [cell(row[key]) for key in RATES]
        values.append(cell(peak / 2**20) if isinstance(peak, int) else "—")
        values += [cell(row[key]) for key in RATIOS]
        lines.append("| " + " | ".join(values) + " |")
    if targets := target_lines(rows):
        lines += ["", "Issue 20's targets:", "", *targets]
    return "\n".join(lines) + "\n"


def target_lines(rows: list[dict]) -> list[str]:
    """Issue 20's targets, met or missed, on the D = 16 rows: the lowest of each ratio of
    :data:`TARGETS`, and the spread of each estimator's peak memory over N."""
    small = [row for row in rows if row["dim"] == 16]
    lines = []
    for ratio, goal in TARGETS.items():
        values = [row[ratio] for row in small if row[ratio] is not None]
        if values:
            verdict = "met" if min(values) >= goal else "missed"
            lines.append(f"- {ratio} ≥ {goal:g} at D = 16: lowest {min(values):.3g}, {verdict}")
    for name in ESTIMATORS:
        peaks = [row["peak_bytes"] for row in small if row["estimator"] == name]
        if len(peaks) > 1 and all(isinstance(peak, int) and peak > 0 for peak in peaks):
            spread = max(peaks) / min(peaks)
            verdict = "met" if spread <= FLAT_PEAK else "missed"
            lines.append(
                f"- {name}'s peak memory within {FLAT_PEAK:g}× over N at D = 16:"
                f" {spread:.3g}×, {verdict}"
            )
    return lines


def describe_environment(device: torch.device) -> str:
    """torch, the device and JAX's backend, in one line."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    try:
        import jax

        jax_part = f"jax {jax.__version__} on {jax.default_backend()}"
    except ImportError:
        jax_part = "no jax"
    return f"torch {torch.__version__} on {name}, {jax_part}, float32, estimates per second"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loop-samples", type=int, default=2000)
    parser.add_argument("--cells", default=DEFAULT_CELLS, help="D:N pairs, comma-separated")
    parser.add_argument("--estimators", default=",".join(ESTIMATORS))
    parser.add_argument("--csv", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":  # the JAX column then runs where the others do
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    environment = describe_environment(device)
    print(environment)
    print(text_header())
    rows: list[dict] = []
    loops: dict[tuple[str, int], float] = {}
    interrupted = False
    with open(args.csv or os.devnull, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=COLUMNS)
        writer.writeheader()
        try:
            for dim, n in parse_cells(args.cells):
                for name in args.estimators.split(","):
                    if (name, dim) not in loops:
                        loops[name, dim] = loop_rate(
                            name, dim, args.loop_samples, args.repeats, device
                        )
                    rows.append(measure_cell(name, dim, n, loops[name, dim], args, device))
                    writer.writerow(rows[-1])
                    stream.flush()
                    print(text_line(rows[-1]))
        except KeyboardInterrupt:
            interrupted = True
            print(f"interrupted: {len(rows)} cell(s) measured", file=sys.stderr)
    print(f"median of {args.repeats} interleaved rounds; loop on {args.loop_samples} samples")
    print("\n".join(target_lines(rows)))
    if args.markdown is not None:
        args.markdown.write_text(markdown_table(rows, environment))
    return 1 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
