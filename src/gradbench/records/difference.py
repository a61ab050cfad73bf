"""Two saved results compared pair by pair: A, the baseline, against B, the candidate.

Rows match on the objective, the estimator and every objective setting (``setting_*``),
estimator option (``option_*``), sweep axis (``param_*``) and ``replicate`` column that both
tables have. For each matched pair the record holds the raw numbers of three comparisons:

* **Variance.** Each file keeps V with its 95% interval of log V,
  V · exp(± t_{0.975, ν} · se(log V)) over G groups, ν ≤ G − 1 (:mod:`gradbench.stats.intervals`;
  the engine uses G = 64, fewer only below 64 estimates). So
  se(log V) = (log high − log low) / (2 t_{0.975, ν}); the comparison divides by t_{0.975, G−1}
  instead, which is se for light tails and carries the interval's heavy-tail widening into se
  otherwise (on the safe side). With d = log V_B − log V_A and
  se_d = √(se_A² + se_B²) (the runs are independent), the ratio V_B/V_A = exp(d) has the 95%
  interval exp(d ± z_{0.975} se_d) and the two-sided p-value 2(1 − Φ(|d| / se_d)); the change
  is significant when p < 0.05, i.e. when the interval excludes 1. Each pair is a separate test:
  among k unchanged pairs about 0.05·k are flagged by chance.
* **Time per estimate.** ``time_per_sample_s`` is a median of repeats and the files keep only
  its median, min and max, so there is no standard error to test with. The rule: not
  significant when the ranges [min, max] of A and B overlap, else faster (B's max below A's
  min) or slower; no verdict when a side has fewer than 2 repeats (its range is one point).
* **Bias.** Each side's verdict of :func:`~gradbench.records.ranking.bias_is_significant`,
  and whether it changed (n.s. → significant or back): a change that introduces a bias matters
  more than its variance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from gradbench.core.errors import InputError
from gradbench.core.status import Status
from gradbench.records.ranking import bias_is_significant
from gradbench.records.stored import StoredResult
from gradbench.stats import student_t
from gradbench.stats.accumulator import DEFAULT_GROUPS, group_count
from gradbench.stats.intervals import CONFIDENCE

#: A change with a two-sided p-value below this is significant (1 − the intervals' level).
SIGNIFICANCE = 1 - CONFIDENCE
#: Columns that identify a row beyond objective and estimator, matched when both files have them.
KEY_PREFIXES = ("setting_", "option_", "param_")
KEY_NAMES = ("replicate",)

# Verdicts, as the ``variance_verdict`` and ``time_verdict`` columns spell them.
LOWER, HIGHER, FASTER, SLOWER = "lower", "higher", "faster", "slower"
NOT_SIGNIFICANT = "not significant"
BOTH_ZERO = "both zero"  # V_A = V_B = 0: the ratio is undefined
UNDEFINED = ""  # no verdict: a status other than ok, or an undefined interval or time range

#: Columns of :attr:`Difference.pairs` after the key columns.
PAIR_COLUMNS = (
    "status_a",
    "status_b",
    "variance_a",
    "variance_b",
    "variance_ratio",
    "variance_ratio_low",
    "variance_ratio_high",
    "variance_p",
    "variance_verdict",
    "time_a",
    "time_b",
    "time_ratio",
    "time_verdict",
    "bias_p_a",
    "bias_p_b",
    "bias_changed",
)


@dataclass(frozen=True)
class Difference:
    """Two results compared: ``pairs`` holds, per matched pair in A's order, the key columns
    and :data:`PAIR_COLUMNS` (raw numbers; ``time_*`` is ``time_per_sample_s``); ``only_a`` and
    ``only_b`` hold the key columns of the rows without a partner."""

    source_a: str
    source_b: str
    keys: tuple[str, ...]
    pairs: pd.DataFrame
    only_a: pd.DataFrame
    only_b: pd.DataFrame


@dataclass(frozen=True)
class VarianceRatio:
    """V_B/V_A with its 95% interval, the p-value of "no change" and the verdict."""

    ratio: float
    low: float
    high: float
    p: float
    verdict: str


def compare_results(a: StoredResult, b: StoredResult) -> Difference:
    """Match the rows of ``a`` and ``b`` on :func:`match_keys` and compare each pair.

    Raises :class:`~gradbench.core.errors.InputError` when a file repeats a key (its rows
    cannot be matched one to one) or when no row of ``a`` matches one of ``b``.
    """
    keys = match_keys(a.table, b.table)
    rows_a, rows_b = _keyed(a, keys), _keyed(b, keys)
    matched = [key for key in rows_a if key in rows_b]
    if not matched:
        raise InputError(
            f"no pair of {a.source!r} matches one of {b.source!r} (matched on "
            + ", ".join(keys)
            + ")"
        )
    pairs = pd.DataFrame(
        [
            {**{k: rows_a[key][k] for k in keys}, **compare_pair(rows_a[key], rows_b[key])}
            for key in matched
        ],
        columns=[*keys, *PAIR_COLUMNS],
    )
    only_a = [{k: row[k] for k in keys} for key, row in rows_a.items() if key not in rows_b]
    only_b = [{k: row[k] for k in keys} for key, row in rows_b.items() if key not in rows_a]
    return Difference(
        a.source,
        b.source,
        tuple(keys),
        pairs,
        pd.DataFrame(only_a, columns=keys),
        pd.DataFrame(only_b, columns=keys),
    )


def match_keys(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """``objective``, ``estimator`` and the setting, option, axis and replicate columns that
    both tables have, in A's column order."""
    shared = [
        column
        for column in a.columns
        if column in b.columns and (column.startswith(KEY_PREFIXES) or column in KEY_NAMES)
    ]
    return ["objective", "estimator", *shared]


def _keyed(result: StoredResult, keys: list[str]) -> dict[tuple, dict]:
    """Each row of ``result`` under its normalised key; an InputError if a key repeats."""
    rows: dict[tuple, dict] = {}
    for row in result.table.to_dict("records"):
        key = tuple(comparable(row[k]) for k in keys)
        if key in rows:
            described = ", ".join(f"{k}={row[k]}" for k in keys)
            raise InputError(
                f"{result.source!r} repeats the row {described}; its rows cannot be matched"
            )
        rows[key] = row
    return rows


def comparable(value: object) -> object:
    """A key value that compares equal across CSV and JSON: undefined → None, a number →
    float (``3`` matches ``3.0``), anything else (booleans included) → its text."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return float(value)
    if hasattr(value, "item"):  # numpy scalars
        return comparable(value.item())  # type: ignore[union-attr]
    return str(value)


def compare_pair(a: dict, b: dict) -> dict:
    """The :data:`PAIR_COLUMNS` of one matched pair of rows (undefined unless both are ok)."""
    compared: dict = dict.fromkeys(PAIR_COLUMNS, math.nan)
    compared.update(
        status_a=str(a["status"]),
        status_b=str(b["status"]),
        variance_verdict=UNDEFINED,
        time_verdict=UNDEFINED,
        bias_changed=False,
    )
    if a["status"] != Status.OK or b["status"] != Status.OK:
        return compared
    variance = variance_ratio(
        _number(a["variance"]),
        _number(a["variance_ci_low"]),
        _number(a["variance_ci_high"]),
        _number(b["variance"]),
        _number(b["variance_ci_low"]),
        _number(b["variance_ci_high"]),
        _groups(_number(a["n_samples"])),
        _groups(_number(b["n_samples"])),
    )
    time_a, time_b = _number(a["time_per_sample_s"]), _number(b["time_per_sample_s"])
    bias_p_a, bias_p_b = _number(a["bias_p"]), _number(b["bias_p"])
    compared.update(
        variance_a=_number(a["variance"]),
        variance_b=_number(b["variance"]),
        variance_ratio=variance.ratio,
        variance_ratio_low=variance.low,
        variance_ratio_high=variance.high,
        variance_p=variance.p,
        variance_verdict=variance.verdict,
        time_a=time_a,
        time_b=time_b,
        time_ratio=time_b / time_a if time_a > 0 else math.nan,  # False for NaN
        time_verdict=time_verdict(
            (_number(a["time_per_sample_min_s"]), _number(a["time_per_sample_max_s"])),
            (_number(b["time_per_sample_min_s"]), _number(b["time_per_sample_max_s"])),
            _number(a["timing_repeats"]),
            _number(b["timing_repeats"]),
        ),
        bias_p_a=bias_p_a,
        bias_p_b=bias_p_b,
        bias_changed=bias_changed(bias_p_a, bias_p_b),
    )
    return compared


def _groups(n_samples: float) -> int:
    """G, the groups the engine's jackknife used for a run of ``n_samples``; 64 when unknown."""
    return DEFAULT_GROUPS if math.isnan(n_samples) else group_count(int(n_samples))


def _number(value: object) -> float:
    """A table cell as a float: NaN for an undefined one (NaN, None or pandas' NA)."""
    return math.nan if value is None or value is pd.NA else float(value)  # type: ignore[arg-type]


def log_variance_se(low: float, high: float, groups: int = DEFAULT_GROUPS) -> float:
    """se(log V) from the 95% jackknife interval [low, high] = V · exp(± t · se(log V)):
    (log high − log low) / (2 t_{0.975, G−1}). The interval's quantile is t_ν with
    ν ≤ G − 1 (:mod:`gradbench.stats.intervals`), so for a heavy-tailed run this errs large,
    on the safe side. NaN when the interval is undefined, not positive (V = 0 has [0, 0]) or
    G < 2."""
    if groups < 2 or not (0 < low <= high < math.inf):  # False for NaN
        return math.nan
    t = student_t.quantile(0.5 + CONFIDENCE / 2, groups - 1)
    return (math.log(high) - math.log(low)) / (2 * t)


def variance_ratio(
    variance_a: float,
    low_a: float,
    high_a: float,
    variance_b: float,
    low_b: float,
    high_b: float,
    groups_a: int = DEFAULT_GROUPS,
    groups_b: int = DEFAULT_GROUPS,
) -> VarianceRatio:
    """V_B/V_A = exp(d), d = log V_B − log V_A, with the 95% interval exp(d ± z_{0.975} se_d),
    se_d = √(se_A² + se_B²) from :func:`log_variance_se`, and the two-sided normal p-value
    2(1 − Φ(|d| / se_d)); :data:`LOWER` or :data:`HIGHER` when p < :data:`SIGNIFICANCE`, else
    :data:`NOT_SIGNIFICANT`.

    Exactly zero variance is exact (a deterministic estimator; its interval is [0, 0]): both
    zero is :data:`BOTH_ZERO` with the ratio undefined; one zero against a positive V is a
    certain change (ratio 0 or ∞, p = 0). An undefined variance or interval gives no interval,
    no p-value and no verdict (:data:`UNDEFINED`).
    """
    nan = math.nan
    if math.isnan(variance_a) or math.isnan(variance_b):
        return VarianceRatio(nan, nan, nan, nan, UNDEFINED)
    if variance_a == 0 and variance_b == 0:
        return VarianceRatio(nan, nan, nan, nan, BOTH_ZERO)
    if variance_a == 0 or variance_b == 0:
        ratio = math.inf if variance_a == 0 else 0.0
        return VarianceRatio(ratio, ratio, ratio, 0.0, HIGHER if variance_a == 0 else LOWER)
    d = math.log(variance_b) - math.log(variance_a)
    se_d = math.hypot(
        log_variance_se(low_a, high_a, groups_a), log_variance_se(low_b, high_b, groups_b)
    )
    if math.isnan(se_d):
        return VarianceRatio(math.exp(d), nan, nan, nan, UNDEFINED)
    if se_d == 0:  # both intervals are points: the ratio is known exactly
        p = 1.0 if d == 0 else 0.0
        low = high = math.exp(d)
    else:
        z = student_t.quantile(0.5 + CONFIDENCE / 2)
        low, high = math.exp(d - z * se_d), math.exp(d + z * se_d)
        p = student_t.two_sided_p(d / se_d)
    verdict = NOT_SIGNIFICANT if p >= SIGNIFICANCE else HIGHER if d > 0 else LOWER
    return VarianceRatio(math.exp(d), low, high, p, verdict)


def time_verdict(
    range_a: tuple[float, float],
    range_b: tuple[float, float],
    repeats_a: float,
    repeats_b: float,
) -> str:
    """Whether B's time per estimate differs from A's, from the [min, max] ranges of the timed
    repeats (the files keep no spread of the median to test with): :data:`NOT_SIGNIFICANT` when
    the ranges overlap, :data:`FASTER` when B's max is below A's min, :data:`SLOWER` when B's min
    is above A's max; :data:`UNDEFINED` when a range is undefined or a side has fewer than 2
    repeats (one repeat's range is a point, which says nothing about the noise)."""
    (min_a, max_a), (min_b, max_b) = range_a, range_b
    if not (repeats_a >= 2 and repeats_b >= 2) or math.isnan(min_a + max_a + min_b + max_b):
        return UNDEFINED
    if max_b < min_a:
        return FASTER
    if min_b > max_a:
        return SLOWER
    return NOT_SIGNIFICANT


def bias_changed(bias_p_a: float, bias_p_b: float) -> bool:
    """Whether the bias verdict (p < :data:`~gradbench.records.ranking.BIAS_SIGNIFICANCE`)
    differs between A and B; False when either p-value is undefined."""
    if math.isnan(bias_p_a) or math.isnan(bias_p_b):
        return False
    return bias_is_significant({"bias_p": bias_p_a}) != bias_is_significant({"bias_p": bias_p_b})
