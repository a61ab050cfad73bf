"""Cell formatting shared by every human view: three significant figures, every statistic
with its uncertainty, times scaled to a readable unit. Machine formats stay raw."""

from __future__ import annotations

import math

import pandas as pd

from gradbench.records.ranking import bias_is_significant, configuration

BEST_MARK = "★"
#: What the ★ means, in every view's caption (records.ranking decides it).
BEST_RULE = (
    f"{BEST_MARK} lowest work×variance (variance × seconds per estimate) among estimators"
    " unbiased by design without significant bias, and any not distinguishable from it"
)


def number(value: float) -> str:
    """Three significant figures with a short exponent (``1.69e6``, ``4.2e-8``); ``—`` for
    undefined, ``∞`` for infinite."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return _short_exponent(f"{value:.3g}")


def _short_exponent(text: str) -> str:
    """``1.69e+06`` → ``1.69e6``, ``4.2e-08`` → ``4.2e-8``."""
    mantissa, e, exponent = text.partition("e")
    return f"{mantissa}e{int(exponent)}" if e else mantissa


def variance_cell(row: dict) -> str:
    """``V [low, high]``: a row's variance with its 95% interval."""
    low, high = row["variance_ci_low"], row["variance_ci_high"]
    return f"{number(row['variance'])} [{number(low)}, {number(high)}]"


def with_se(value: float, se: float) -> str:
    return number(value) if math.isnan(se) else f"{number(value)} ± {number(se)}"


def value_with_se(value: float, se: float) -> str:
    """A mean to the decimal place of its standard error's second significant figure
    (``-18.0163 ± 0.0027``, the error to two figures), so that values apart by more than
    their errors read apart; at
    least three significant figures; six for an error of exactly 0 (every seed at one value),
    and :func:`with_se` where a fixed point does not fit (no error, or magnitudes outside
    10⁻³ … 10⁶)."""
    if math.isfinite(value) and se == 0:
        return f"{_short_exponent(f'{value:.6g}')} ± 0"
    if not (math.isfinite(value) and math.isfinite(se)) or se < 0:
        return with_se(value, se)
    if not 1e-3 <= abs(value) < 1e6:
        return with_se(value, se)
    places = max(1 - math.floor(math.log10(se)), 3 - 1 - math.floor(math.log10(abs(value))), 0)
    return f"{value:.{min(places, 6)}f} ± {_short_exponent(f'{se:.2g}')}"


def duration(seconds: float) -> str:
    """Seconds scaled to s, ms, µs or ns."""
    if math.isnan(seconds):
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def bias_verdict(row: dict, with_reference: bool = True) -> str:
    """``n.s.`` or ``p=…`` for a row's ``bias_p``, with ``ref ±r`` for an estimated reference
    (unless ``with_reference`` is False: the view then says it elsewhere)."""
    p = row["bias_p"]
    verdict = f"p={_short_exponent(f'{p:.1g}')}" if bias_is_significant(row) else "n.s."
    reference_se = row.get("reference_se_max")  # absent or empty: an exact reference
    if with_reference and reference_se is not None and not pd.isna(reference_se):
        verdict += f", ref ±{number(reference_se)}"
    return verdict


#: Said in a caption when a row made its objective's estimated reference.
MADE_REFERENCE = "; ref = made the estimated reference, so its bias is not tested"


def verdict_cell(row: dict) -> str:
    """The bias verdict alone (a title or caption says when the reference is estimated):
    ``ref`` for the estimator that made the estimated reference, whose bias it cannot test,
    ``—`` when there is no test."""
    if row.get("made_reference") is True:
        return "ref"
    return "—" if math.isnan(row["bias_p"]) else bias_verdict(row, with_reference=False)


def has_made_reference(table: pd.DataFrame) -> bool:
    """Whether a row of ``table`` made its objective's estimated reference."""
    return "made_reference" in table and bool(table["made_reference"].eq(True).any())


def bias_cell(row: dict) -> str:
    """‖bias‖ with the verdict of its test: ``n.s.`` when not distinguishable from zero; and
    ``ref ±r`` when the reference is itself estimated, r its largest standard error; ``(ref)``
    for the estimator that made that reference, whose bias it cannot test."""
    if row.get("made_reference") is True:
        return f"{number(row['bias_norm'])} (ref)"
    if math.isnan(row["bias_p"]):
        return number(row["bias_norm"])
    return f"{number(row['bias_norm'])} ({bias_verdict(row)})"


def sample_counts(table: pd.DataFrame) -> str:
    """``n = 100000``, or the count of each objective when they differ."""
    counts = table.groupby("n_samples", sort=False)["objective"].unique()
    if len(counts) <= 1:
        return f"n = {counts.index[0]}" if len(counts) else ""
    return "; ".join(f"n = {n} ({', '.join(names)})" for n, names in counts.items())


def objective_labels(rows: list[dict]) -> list[str]:
    """Each row's objective name, with its settings where one name has several configurations."""
    configurations = [configuration(row) for row in rows]
    names = [name for name, _ in set(configurations)]
    return [
        f"{name} " + " ".join(f"{k}={number(v)}" for k, v in settings)
        if names.count(name) > 1
        else name
        for name, settings in configurations
    ]
