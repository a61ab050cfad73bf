"""The columns a person can ask for (``--columns``), by their CSV names: a short header and how
each cell is rendered from a row of the main table.

A statistic comes with its uncertainty where the record has one: ``variance`` shows its 95%
interval, ``mse``, ``cosine`` and ``sign_error`` their standard errors, ``bias_p`` the verdict of
the bias test. Any other column of the CSV renders as its value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from gradbench.core.errors import InputError, did_you_mean
from gradbench.records.comparison import COLUMNS
from gradbench.records.stored import VARIABLE_PREFIXES
from gradbench.report.format import (
    BEST_MARK,
    duration,
    number,
    variance_cell,
    verdict_cell,
    with_se,
)


@dataclass(frozen=True)
class Column:
    """One displayed column: its header and its cell of a row."""

    header: str
    cell: Callable[[dict], str]
    numeric: bool = True


def _value(name: str) -> Callable[[dict], str]:
    def cell(row: dict) -> str:
        value = row.get(name)
        if value is None or value is pd.NA:
            return "—"
        if isinstance(value, float):
            return number(value)
        return str(value)

    return cell


def _estimator(row: dict) -> str:
    """The name, ★ first when it earns it, and a sweep's replicate (``reparam #1``)."""
    name = str(row["estimator"])
    replicate = row.get("replicate")
    if replicate is not None and not pd.isna(replicate):
        name += f" #{replicate}"
    return f"{BEST_MARK} {name}" if row["best"] else f"  {name}"


def _seconds(name: str) -> Callable[[dict], str]:
    return lambda row: duration(row[name])


def _with_se(name: str) -> Callable[[dict], str]:
    return lambda row: with_se(row[name], row[f"{name}_se"])


#: Columns with a header or rendering of their own; every other CSV column renders as its value.
SPECIAL: dict[str, Column] = {
    "estimator": Column("estimator", _estimator, numeric=False),
    "variance": Column("variance [95% CI]", variance_cell),
    "bias_p": Column("bias", verdict_cell),
    "bias_norm": Column("‖bias‖", _value("bias_norm")),
    "mse": Column("MSE", _with_se("mse")),
    "cosine": Column("cosine", _with_se("cosine")),
    "sign_error": Column("sign error", _with_se("sign_error")),
    "snr": Column("SNR", _value("snr")),
    "evals_per_sample": Column("evals", _value("evals_per_sample")),
    "evals_variance": Column("evals×var", _value("evals_variance")),
    "time_per_sample_s": Column("time/est.", _seconds("time_per_sample_s")),
    "time_per_sample_min_s": Column("fastest", _seconds("time_per_sample_min_s")),
    "time_per_sample_max_s": Column("slowest", _seconds("time_per_sample_max_s")),
    "warm_up_time_s": Column("warm-up", _seconds("warm_up_time_s")),
    "work_variance": Column("work×var", _value("work_variance")),
}

#: The compact default: what the ranking rests on, with its uncertainty.
DEFAULT_COLUMNS = ("estimator", "variance", "bias_p", "time_per_sample_s", "work_variance")


def check_names(names: Sequence[str], flag: str = "--columns") -> None:
    """Refuse, before anything runs, a name that is no column of a result: one of
    :data:`~gradbench.records.comparison.COLUMNS`, or a ``setting_*`` / ``option_*`` column
    (those depend on the objectives and estimators; one a run lacks shows as ``—``)."""
    for name in names:
        if name not in COLUMNS and not name.startswith(VARIABLE_PREFIXES):
            raise InputError(
                f"{flag}: unknown column {name!r}{did_you_mean(name, COLUMNS)}; valid: the CSV's"
                f" columns, {', '.join(COLUMNS)}, and setting_* / option_*"
            )


def columns(names: Sequence[str]) -> list[Column]:
    """The columns called ``names`` (CSV names, see :func:`check_names`); ``estimator``
    always comes first."""
    check_names(names)
    chosen = ["estimator", *[name for name in dict.fromkeys(names) if name != "estimator"]]
    return [SPECIAL.get(name) or Column(name, _value(name), numeric=True) for name in chosen]
