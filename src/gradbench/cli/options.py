"""The options that several commands share, as ``Annotated`` types, and their parsers.

Each parser's error repeats the bad value (typer turns it into exit status 2).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gradbench.core.settings import parse_assignment
from gradbench.engine.reference import GROUPS, MAX_SAMPLES, PRECISION
from gradbench.engine.run import DEVICES, DTYPES, SEED_RANGE, RunConfig

if TYPE_CHECKING:
    from gradbench.api import ReferenceOptions


def _integer(minimum: int, noun: str, maximum: int = 2**63 - 1) -> Callable[[str], int]:
    """A typer parser for integers in [``minimum``, ``maximum``] whose error repeats the bad
    value; the default maximum is int64's, the width of every integer column."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise typer.BadParameter(f"{text!r} is not an integer") from None
        if value < minimum:
            raise typer.BadParameter(f"{value} is not {noun} (must be >= {minimum})")
        if value > maximum:
            raise typer.BadParameter(f"{value} is not {noun} (must be <= {maximum})")
        return value

    return parse


SEED = _integer(SEED_RANGE[0], "a 64-bit seed", SEED_RANGE[1])
POSITIVE = _integer(1, "a positive integer")
NON_NEGATIVE = _integer(0, "a non-negative integer")


def parse_settings(assignments: list[str] | None) -> dict[str, str]:
    """``KEY=VALUE`` texts → {KEY: VALUE}, a later one replacing an earlier one."""
    return dict(parse_assignment(text) for text in assignments or [])


def run_arguments(
    objectives: list[str] | None,
    estimators: list[str] | None,
    samples: int | None,
    seed: int,
    device: str,
    dtype: str,
    assignments: list[str] | None,
    chunk_size: int | None,
    repeats: int,
    reference: ReferenceOptions,
) -> dict[str, object]:
    """The options ``compare`` and ``sweep`` share, as keyword arguments of
    :func:`gradbench.api.run_comparison` and :func:`gradbench.sweep`."""
    return {
        "reference": reference,
        "objectives": objectives,
        "estimators": estimators,
        "n_samples": samples,
        "seed": seed,
        "device": device,
        "dtype": dtype,
        "settings": parse_settings(assignments),
        "chunk_size": chunk_size,
        "timing_repeats": repeats,
    }


Plugins = Annotated[
    list[str] | None,
    typer.Option(
        "--plugin",
        metavar="SPEC",
        help="Load estimators and objectives from path/to/file.py, a module, or module:Class;"
        " repeatable.",
    ),
]
Plot = Annotated[
    Path | None,
    typer.Option(
        "--plot",
        metavar="PATH",
        help="Draw the result as a figure, .png or .svg (needs: pip install 'gradbench\\[plot]').",
    ),
]
Device = Annotated[str, typer.Option(metavar="DEVICE", help=f"One of {', '.join(DEVICES)}.")]
Dtype = Annotated[str, typer.Option(metavar="DTYPE", help=f"One of {', '.join(DTYPES)}.")]
Objectives = Annotated[
    list[str] | None,
    typer.Argument(
        help="Objectives to run (default: all).", metavar="OBJECTIVE", show_default=False
    ),
]
Estimators = Annotated[
    list[str] | None,
    typer.Option(
        "-e", "--estimator", metavar="NAME", help="Estimator to run; repeatable (default: all)."
    ),
]
Samples = Annotated[
    int | None,
    typer.Option(
        "-n",
        "--samples",
        parser=POSITIVE,
        metavar="N",
        help=f"Per-sample estimates per pair (default: {RunConfig.n_samples}, or fewer where"
        " an objective with thousands of parameters sets its own).",
        show_default=False,
    ),
]
Seed = Annotated[
    int,
    typer.Option(
        parser=SEED, metavar="S", help="Seed; each pair derives its own generator from it."
    ),
]
Settings = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="KEY=VALUE for every chosen objective with setting KEY, or NAME.KEY=VALUE for "
        "one objective or estimator (e.g. --set sigma=2 --set fd.step=1e-3); repeatable.",
    ),
]
ChunkSize = Annotated[
    int | None,
    typer.Option(
        parser=POSITIVE,
        metavar="N",
        help="Estimates per chunk (default: what fits 256 MiB on CPU, 4 GiB on CUDA, at most"
        " half the free memory).",
    ),
]
Repeats = Annotated[
    int,
    typer.Option(
        parser=NON_NEGATIVE,
        metavar="N",
        help="Timed repeats after a warm-up (median): the measuring pass's own chunks where"
        " it has enough, else extra calls; 0 skips timing.",
    ),
]
ReferenceSamples = Annotated[
    int | None,
    typer.Option(
        "--reference-samples",
        parser=POSITIVE,
        metavar="N",
        help="Estimates of an estimated reference (objectives without a closed form), rounded"
        f" up to {GROUPS} groups × one call's rows × 2^j (default: sized to each run, aiming at"
        f" a standard error ≤ {PRECISION:g}× the run's, at most {MAX_SAMPLES}).",
        show_default=False,
    ),
]
ReferenceEstimator = Annotated[
    str | None,
    typer.Option(
        "--reference-estimator",
        metavar="NAME",
        help="Unbiased estimator of an estimated reference (default: reparam where it"
        " applies, else rloo, else reinforce).",
        show_default=False,
    ),
]
NoCache = Annotated[
    bool,
    typer.Option("--no-cache", help="Estimate references afresh, without the disk cache."),
]
CacheDir = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        metavar="DIR",
        help="Where estimated references are cached (default: $GRADBENCH_CACHE_DIR, else"
        " ~/.cache/gradbench).",
        show_default=False,
    ),
]


def reference_options(
    samples: int | None, estimator: str | None, no_cache: bool, cache_dir: Path | None
) -> ReferenceOptions:
    """The reference options of the command line."""
    from gradbench.api import ReferenceOptions

    return ReferenceOptions(
        samples, estimator, not no_cache, None if cache_dir is None else str(cache_dir)
    )


Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace output files that exist.")]
Results = Annotated[
    Path,
    typer.Argument(
        metavar="RESULTS",
        help="A saved result: the CSV of --csv (compare or sweep) or the JSON of --json.",
        show_default=False,
    ),
]

ColumnNames = Annotated[
    list[str] | None,
    typer.Option(
        "--columns",
        metavar="NAMES",
        help="Columns to show, by their CSV names, comma-separated or repeated (e.g."
        " --columns variance,mse,time_per_sample_s); default: variance, bias_p,"
        " time_per_sample_s, work_variance.",
    ),
]
Wide = Annotated[bool, typer.Option("--wide", help="Show every column in one wide table.")]
Sort = Annotated[
    str | None,
    typer.Option(
        "--sort",
        metavar="COLUMN",
        help="Order each objective's rows by this CSV column (-COLUMN: descending); default:"
        " the ★ first, then by work_variance.",
    ),
]


def column_names(given: list[str] | None) -> list[str] | None:
    """``--columns a,b --columns c`` → [a, b, c]; None when not given."""
    if not given:
        return None
    return [name.strip() for text in given for name in text.split(",") if name.strip()]
