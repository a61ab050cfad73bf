"""Saved results read back: a CSV or JSON written by ``compare`` or ``sweep``, as its tables.

The main table comes back typed the way :meth:`~gradbench.records.comparison.Comparison.table`
built it (integer columns as nullable Int64, empty text as ``""``, ∞ where JSON wrote ``null``
for it), so every view renders a stored result exactly as it rendered the run. Columns beyond
:data:`~gradbench.records.comparison.COLUMNS` (a sweep's ``task``, ``replicate``, ``param_*``)
are kept.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from gradbench.core.errors import InputError
from gradbench.records.comparison import COLUMNS, DETAIL_COLUMNS, INTEGER_COLUMNS, Comparison

SUFFIXES = (".csv", ".json")
#: What identifies a main table. Other columns of COLUMNS that a file lacks (written by a
#: version before they existed) read as undefined: empty, and ``best``, ``made_reference`` false.
REQUIRED_COLUMNS = ("objective", "estimator", "status", "variance")
#: Text columns that are empty for most rows; CSV readers turn an empty cell into NaN.
TEXT_COLUMNS = ("reason", "warnings", "estimator_state")
#: Columns of the main table that are not numbers; every other one of COLUMNS is.
_NOT_NUMBERS = (
    "objective",
    "estimator",
    "status",
    "reason",
    "best",
    "device",
    "device_name",
    "dtype",
    "declared_unbiased",
    "estimator_state",
    "reference",
    "reference_estimator",
    "made_reference",
    "warnings",
    "gradbench_version",
    "torch_version",
)
NUMBER_COLUMNS = tuple(c for c in COLUMNS if c not in _NOT_NUMBERS)
#: Columns of options and settings (and a sweep's axes), integer-typed when every value is.
VARIABLE_PREFIXES = ("setting_", "option_", "param_")


@dataclass(frozen=True)
class StoredResult:
    """The tables of one result; ``source`` names it in messages (its path, or "this run");
    ``details`` is None when there are none."""

    source: str
    table: pd.DataFrame
    details: pd.DataFrame | None = None
    provenance: dict = field(default_factory=dict)

    @classmethod
    def of(cls, comparison: Comparison) -> StoredResult:
        """A comparison still in memory, without its details (the total variance only)."""
        return cls("this run", comparison.table(), None, comparison.provenance)


def read_result(path: Path, detail_path: Path | None = None) -> StoredResult:
    """Read a result file (CSV main table or JSON record) and, optionally, its per-coordinate
    table from ``detail_path`` (a detail CSV, or a JSON record's details).

    Raises :class:`~gradbench.core.errors.InputError` naming the file and what is wrong with it.
    """
    _check_readable(path, SUFFIXES)
    if path.suffix.lower() == ".json":
        stored = _read_json(path)
    else:
        stored = StoredResult(str(path), _main_table(_read_csv(path), path))
    if detail_path is None:
        return stored
    _check_readable(detail_path, SUFFIXES)
    if detail_path.suffix.lower() == ".json":
        details = _read_json(detail_path).details
        if details is None:
            raise InputError(f"{str(detail_path)!r} holds no per-coordinate details")
    else:
        details = _detail_table(_read_csv(detail_path), detail_path)
    return StoredResult(stored.source, stored.table, details, stored.provenance)


def _check_readable(path: Path, suffixes: tuple[str, ...]) -> None:
    if path.suffix.lower() not in suffixes:
        suffix = path.suffix or "(none)"
        raise InputError(f"{str(path)!r}: unknown suffix {suffix!r}; valid: {', '.join(suffixes)}")
    if not path.is_file():
        raise InputError(f"{str(path)!r} does not exist or is not a file")


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        text_columns = pd.read_csv(path, nrows=0).columns
        variable = [c for c in text_columns if c.startswith(VARIABLE_PREFIXES)]
        # Variable columns are read as text first: "1" and "1.0" tell an int from a float.
        frame = pd.read_csv(path, dtype=dict.fromkeys(variable, str))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise InputError(f"{str(path)!r} is not a readable CSV file: {error}") from None
    for column in variable:
        frame[column] = _typed_text(frame[column])
    return frame


def _typed_text(column: pd.Series) -> pd.Series:
    """A column read as text → Int64 when every value is an integer literal, else numbers
    (or the text itself when not numeric)."""
    defined = column.dropna()
    if len(defined) and defined.str.fullmatch(r"[+-]?\d+").all():
        return column.astype("Int64")
    numbers = pd.to_numeric(column, errors="coerce")
    return numbers if numbers.notna().sum() == len(defined) else column


def _read_json(path: Path) -> StoredResult:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        rows, details = document["results"], document.get("details")
        provenance = document.get("provenance") or {}
        if not all(isinstance(row, dict) for row in rows):
            raise TypeError("a result row is not an object")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{str(path)!r} is not a readable JSON file: {error}") from None
    except (KeyError, TypeError):
        raise InputError(
            f"{str(path)!r} is not a gradbench JSON result (no 'results' list)"
        ) from None
    table = pd.DataFrame(rows)
    for column in [c for c in table.columns if c.startswith(VARIABLE_PREFIXES)]:
        table[column] = _typed_values(table[column])
    table = _restore_infinity(_main_table(table, path))
    detail_table = _detail_table(pd.DataFrame(details), path) if details else None
    return StoredResult(str(path), table, detail_table, provenance)


def _typed_values(column: pd.Series) -> pd.Series:
    """JSON values → Int64 when every defined one is an int (as ``Comparison.table`` does)."""
    defined = [v for v in column if v is not None and not (isinstance(v, float) and math.isnan(v))]
    integral = defined and all(isinstance(v, int) and not isinstance(v, bool) for v in defined)
    return column.astype("Int64") if integral else column


def _restore_infinity(table: pd.DataFrame) -> pd.DataFrame:
    """JSON has no ∞ and writes ``null``; the one infinity the record holds by definition is
    ``snr`` = ‖g*‖/√variance at zero variance, restored here."""
    infinite = table["snr"].isna() & (table["variance"] == 0) & (table["true_grad_norm"] > 0)
    table.loc[infinite, "snr"] = math.inf
    return table


def _main_table(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        hint = (
            " (a detail CSV goes with --detail)"
            if "param" in table.columns
            else " (a sweep's aggregate; give its per-task --csv)"
            if "variance_mean" in table.columns
            else ""
        )
        raise InputError(
            f"{str(path)!r} is not a gradbench result table{hint}; missing columns: "
            + ", ".join(missing)
        )
    flags = ("best", "made_reference")
    older = {c: False if c in flags else math.nan for c in COLUMNS if c not in table.columns}
    table = table.assign(**older)
    for column in NUMBER_COLUMNS:
        try:
            numbers = pd.to_numeric(table[column])
            table[column] = numbers.astype("Int64") if column in INTEGER_COLUMNS else numbers
        except (ValueError, TypeError):
            raise InputError(
                f"{str(path)!r}: column {column!r} holds values that are not numbers"
            ) from None
    for column in TEXT_COLUMNS:
        table[column] = ["" if pd.isna(value) else str(value) for value in table[column]]
    return table


def _detail_table(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    missing = [c for c in DETAIL_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(
            f"{str(path)!r} is not a gradbench detail table; missing columns: {', '.join(missing)}"
        )
    return table


def match_details(table: pd.DataFrame, details: pd.DataFrame, source: str) -> pd.DataFrame:
    """Each detail row with ``_row``, the index of its main-table row.

    A sweep's rows carry ``task`` and ``replicate``, matched with the pair; a comparison's
    detail rows follow its main rows in order, ``grad_dim`` rows for each row that has them.
    """
    keys = [c for c in ("task", "replicate", "objective", "estimator") if c in details.columns]
    keys += [c for c in details.columns if c.startswith("param_") and c in table.columns]
    if "task" in keys:
        index = table[keys].reset_index(names="_row")
        try:
            matched = details.merge(index, on=keys, how="left", validate="many_to_one")
        except pd.errors.MergeError:
            raise InputError(f"{source!r}: the main table repeats a task") from None
        if matched["_row"].isna().any():
            raise InputError(f"{source!r}: detail rows without a matching main row")
        return matched.astype({"_row": int})
    rows, position = [], 0
    pairs = list(zip(details["objective"], details["estimator"], strict=True))
    for index, row in table.iterrows():
        pair, count = (row["objective"], row["estimator"]), row["grad_dim"]
        if position < len(pairs) and pairs[position] == pair and not pd.isna(count):
            rows += [index] * int(count)
            position += int(count)
    if position != len(pairs) or len(rows) != len(details):
        raise InputError(
            f"{source!r}: the detail rows do not follow the main table's rows"
            " (pass the detail CSV written with it)"
        )
    return details.assign(_row=rows)
