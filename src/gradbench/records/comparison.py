"""The result record of a comparison and its machine-readable exports (CSV, JSON).

One :class:`Comparison` holds a tidy row per (objective, estimator), a row per parameter
coordinate, and the provenance. CSV, JSON, Markdown and the terminal table are views of it.
Numbers are raw floats in SI units (seconds); an undefined value is NaN (empty in CSV, ``null``
in JSON, which also stands for ±inf there since JSON has no infinities).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from torch import Tensor

from gradbench.core.objective import Objective
from gradbench.engine.run import RunConfig, RunResult
from gradbench.records.files import write_atomic
from gradbench.records.ranking import mark_best
from gradbench.stats.summary import Summary

NAN = math.nan

#: Columns of the main table, in order; objective settings (``setting_*``) and estimator
#: options (``option_*``) follow them.
COLUMNS = (
    "objective",
    "estimator",
    "status",
    "reason",
    "best",
    "n_samples",
    "n_used",
    "n_nonfinite",
    "seed",
    "run_seed",
    "device",
    "device_name",
    "dtype",
    "grad_dim",
    "evals_per_sample",
    "declared_unbiased",
    "estimator_state",
    "reference",
    "reference_estimator",
    "reference_samples",
    "made_reference",
    "reference_se_max",
    "reference_se_ratio",
    "true_grad_norm",
    "variance",
    "variance_ci_low",
    "variance_ci_high",
    "variance_kurtosis",
    "bias_norm",
    "bias_z_max",
    "bias_p",
    "mse",
    "mse_se",
    "snr",
    "cosine",
    "cosine_se",
    "sign_error",
    "sign_error_se",
    "time_per_sample_s",
    "time_per_sample_min_s",
    "time_per_sample_max_s",
    "timing_repeats",
    "timing_batch",
    "warm_up_time_s",
    "work_variance",
    "evals_variance",
    "chunk_size",
    "warnings",
    "gradbench_version",
    "torch_version",
)

DETAIL_COLUMNS = (
    "objective",
    "estimator",
    "param",
    "true_grad",
    "mean_grad",
    "bias",
    "bias_se",
    "bias_z",
    "variance",
    "variance_ci_low",
    "variance_ci_high",
)

#: Joins the warnings of one row in its ``warnings`` cell.
WARNING_SEPARATOR = " | "
#: Integer columns, kept integral with pandas' nullable Int64 (empty where undefined).
INTEGER_COLUMNS = (
    "n_samples",
    "n_used",
    "n_nonfinite",
    "seed",
    "run_seed",
    "grad_dim",
    "evals_per_sample",
    "timing_repeats",
    "timing_batch",
    "chunk_size",
    "reference_samples",
)


@dataclass
class Comparison:
    """Rows per pair and per coordinate, with provenance; ``interrupted`` if Ctrl-C cut it short."""

    rows: list[dict] = field(default_factory=list)
    details: list[dict] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)
    interrupted: bool = False

    def table(self) -> pd.DataFrame:
        """The main table: exactly the CSV's columns."""
        extra = sorted({k for row in self.rows for k in row if k.startswith("setting_")}) + sorted(
            {k for row in self.rows for k in row if k.startswith("option_")}
        )
        table = pd.DataFrame(self.rows, columns=[*COLUMNS, *extra])
        integral = [name for name in extra if _integral(row.get(name) for row in self.rows)]
        return table.astype(dict.fromkeys([*INTEGER_COLUMNS, *integral], "Int64"))

    def detail_table(self) -> pd.DataFrame:
        return pd.DataFrame(self.details, columns=list(DETAIL_COLUMNS))

    def to_json_text(self) -> str:
        document = {
            "schema_version": self.provenance.get("schema_version"),
            "provenance": self.provenance,
            "interrupted": self.interrupted,
            "results": [json_safe(row) for row in self.table().to_dict("records")],
            "details": [json_safe(row) for row in self.detail_table().to_dict("records")],
        }
        return json.dumps(document, indent=2, allow_nan=False) + "\n"

    def write_csv(self, path: str | Path) -> None:
        write_atomic(path, self.table().to_csv(index=False))

    def write_detail_csv(self, path: str | Path) -> None:
        write_atomic(path, self.detail_table().to_csv(index=False))

    def write_json(self, path: str | Path) -> None:
        write_atomic(path, self.to_json_text())


def _integral(values: Iterable[object]) -> bool:
    """Whether a setting column holds integers where defined (rows without it hold NaN)."""
    defined = [v for v in values if not (v is None or (isinstance(v, float) and math.isnan(v)))]
    return bool(defined) and all(isinstance(v, int) and not isinstance(v, bool) for v in defined)


def json_safe(row: dict) -> dict:
    """A row for JSON: NaN, ±inf and pandas' NA as null, numpy scalars as Python ones."""

    def clean(value: object) -> object:
        if value is pd.NA or (isinstance(value, float) and not math.isfinite(value)):
            return None
        if hasattr(value, "item"):  # numpy scalars from pandas
            return clean(value.item())  # type: ignore[union-attr]
        return value

    return {k: clean(v) for k, v in row.items()}


def build_comparison(
    results: Iterable[RunResult], config: RunConfig, provenance: dict, interrupted: bool = False
) -> Comparison:
    """Turn run results into the record every output is a view of."""
    comparison = Comparison(provenance=provenance, interrupted=interrupted)
    for result in results:
        comparison.rows.append(result_row(result, config, provenance))
        comparison.details.extend(_detail_rows(result))
    mark_best(comparison.rows)
    return comparison


def result_row(result: RunResult, config: RunConfig, provenance: dict) -> dict:
    """The main table's row of one pair (see :data:`COLUMNS`)."""
    row: dict = dict.fromkeys(COLUMNS, NAN)
    row.update(
        objective=result.objective.name,
        estimator=result.estimator.name,
        status=result.status,
        reason=result.reason,
        best=False,
        n_samples=result.n_samples,
        seed=config.seed,
        run_seed=result.run_seed,
        device=provenance["device"],
        device_name=provenance["device_name"],
        dtype=provenance["dtype"],
        grad_dim=result.grad_dim,
        evals_per_sample=result.evals_per_sample,
        declared_unbiased=result.estimator.unbiased_for(result.objective),
        estimator_state=result.estimator_state,
        reference=result.reference_method or _reference_method(result.objective),
        reference_estimator=result.reference_estimator or NAN,
        reference_samples=result.reference_samples or NAN,
        made_reference=not result.bias_informative,
        warnings=WARNING_SEPARATOR.join(result.warnings),
        gradbench_version=provenance["gradbench_version"],
        torch_version=provenance["torch_version"],
    )
    row.update({f"setting_{k}": _raw(v) for k, v in result.objective.config.items()})
    row.update({f"option_{k}": _raw(v) for k, v in result.estimator.config.items()})
    summary, timing = result.summary, result.timing
    if summary is not None:
        row.update(
            n_used=summary.n_used,
            n_nonfinite=summary.n_nonfinite,
            true_grad_norm=float(summary.reference.norm()),
            reference_se_max=_largest(summary.reference_se),
            reference_se_ratio=_reference_se_ratio(summary),
            variance=summary.variance,
            variance_ci_low=summary.variance_ci[0],
            variance_ci_high=summary.variance_ci[1],
            variance_kurtosis=summary.variance_kurtosis,
            bias_norm=summary.bias_norm,
            bias_z_max=summary.bias_z_max,
            bias_p=summary.bias_p,
            mse=summary.mse,
            mse_se=summary.mse_se,
            snr=summary.snr,
            cosine=summary.cosine,
            cosine_se=summary.cosine_se,
            sign_error=summary.sign_error,
            sign_error_se=summary.sign_error_se,
            chunk_size=result.chunk_size,
            evals_variance=summary.variance * result.evals_per_sample,
            warm_up_time_s=result.warm_up_s,
        )
    if not result.bias_informative:  # tested against its own draws' mean: blind to its bias
        row.update(bias_z_max=NAN, bias_p=NAN)
    if timing is not None:
        row.update(
            time_per_sample_s=timing.per_sample_s,
            time_per_sample_min_s=timing.min_per_sample_s,
            time_per_sample_max_s=timing.max_per_sample_s,
            timing_repeats=timing.repeats,
            timing_batch=timing.batch,
            work_variance=row["variance"] * timing.per_sample_s,
        )
    return row


def _largest(values: Tensor | None) -> float:
    """The largest entry, NaN for None (an exact reference has no standard error)."""
    return NAN if values is None else float(values.max())


def _reference_method(objective: Objective) -> str:
    """How a pair that did not run (skipped, failed early) would have had its reference."""
    return objective.reference_method if objective.gives_reference() else "estimated"


def _reference_se_ratio(summary: Summary) -> float:
    """max_d se_d(reference) / se_d(run mean) over the coordinates the run varies on; NaN for
    an exact reference. An estimated reference aims at ≤ 0.25
    (:mod:`gradbench.engine.reference`)."""
    if summary.reference_se is None:
        return NAN
    run_se = (summary.coordinate_variance.double().cpu() / summary.n_used).sqrt()
    varies = run_se > 0
    if not bool(varies.any()):
        return NAN
    return float((summary.reference_se.double().cpu()[varies] / run_se[varies]).max())


def _raw(value: object) -> object:
    return NAN if value is None else value


def _detail_rows(result: RunResult) -> list[dict]:
    """One row per coordinate of θ, its columns read off the summary's ``[P]`` tensors."""
    summary = result.summary
    if summary is None:
        return []
    low, high = summary.coordinate_variance_ci
    columns = {
        "true_grad": summary.reference,
        "mean_grad": summary.mean,
        "bias": summary.bias,
        "bias_se": summary.bias_se,
        "bias_z": summary.bias_z,
        "variance": summary.coordinate_variance,
        "variance_ci_low": low,
        "variance_ci_high": high,
    }
    values = {name: column.double().tolist() for name, column in columns.items()}
    pair = {"objective": result.objective.name, "estimator": result.estimator.name}
    return [
        {**pair, "param": label, **{name: values[name][j] for name in columns}}
        for j, label in enumerate(result.labels)
    ]
