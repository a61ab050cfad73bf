"""The finished tasks of a sweep and its tables, all views of the tasks' records.

- :meth:`SweepResult.table`: one row per task, every column of
  :meth:`~gradbench.records.comparison.Comparison.table` (``seed`` is the task's seed, ``best``
  is judged among the estimators of one replicate and objective configuration) plus ``task``,
  ``replicate`` (0 … R−1), one ``param_<name>`` column per axis holding the value as given,
  ``timing_contention`` and ``torch_threads``.
- :meth:`SweepResult.aggregate`: one row per (objective, estimator, grid point): ``status``,
  ``replicates`` (the ok ones, which the statistics use), ``<m>_mean`` and ``<m>_se`` (the
  standard error s/√R across replicates; NaN with one) of each metric in :data:`METRICS`,
  ``bias_p`` (:func:`~gradbench.stats.replicates.combined_bias_p`) and ``reference_se_max``.
- :meth:`SweepResult.detail_table`: one row per task and gradient coordinate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from gradbench.core.status import Status
from gradbench.records.comparison import DETAIL_COLUMNS, Comparison
from gradbench.records.files import write_atomic
from gradbench.records.ranking import mark_best
from gradbench.stats.replicates import combined_bias_p, mean_and_se
from gradbench.sweeps.tasks import Task, TaskOptions

#: Metrics averaged over replicates in :meth:`SweepResult.aggregate`.
METRICS = (
    "variance",
    "bias_norm",
    "mse",
    "snr",
    "cosine",
    "sign_error",
    "time_per_sample_s",
    "work_variance",
    "evals_variance",
)


@dataclass
class SweepResult:
    """The finished tasks of a sweep (every one on success), in plan order."""

    tasks: list[Task]
    records: dict[str, dict]
    axes: tuple[str, ...]
    options: TaskOptions
    executor: str
    reused: int = 0
    interrupted: bool = False
    journal: Path | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def param_columns(self) -> list[str]:
        return [f"param_{name}" for name in self.axes]

    @property
    def finished(self) -> list[Task]:
        return [task for task in self.tasks if task.key in self.records]

    def table(self) -> pd.DataFrame:
        """One row per finished task (see the module's docstring for the columns)."""
        rows = [dict(row) for task in self.finished for row in self.records[task.key]["rows"]]
        for replicate in {row["replicate"] for row in rows}:
            mark_best([row for row in rows if row["replicate"] == replicate])
        base = Comparison(rows=rows).table()
        labels = ["replicate", *self.param_columns, "timing_contention", "torch_threads", "task"]
        extra = pd.DataFrame(rows, columns=labels, index=base.index)
        order = [
            *base.columns[:2],
            *self.param_columns,
            "replicate",
            *base.columns[2:],
            "timing_contention",
            "torch_threads",
            "task",
        ]
        table = pd.concat([base, extra], axis=1)[order]
        return table.astype({"replicate": "Int64", "torch_threads": "Int64"})

    def detail_table(self) -> pd.DataFrame:
        """One row per finished task and gradient coordinate."""
        details = [d for task in self.finished for d in self.records[task.key]["details"]]
        columns = [*DETAIL_COLUMNS, "task", "replicate", *self.param_columns]
        return pd.DataFrame(details, columns=columns).astype({"replicate": "Int64"})

    def aggregate(self) -> pd.DataFrame:
        """One row per (objective, estimator, grid point): mean and standard error over the
        replicates whose status is ok."""
        table = self.table()
        keys = ["objective", "estimator", *self.param_columns]
        rows = []
        for values, group in table.groupby(keys, dropna=False, sort=False):
            ok = group[group["status"] == Status.OK]
            row = dict(zip(keys, values, strict=True))
            row.update(
                status=",".join(sorted(set(group["status"]))),
                replicates=len(ok),
                n_samples=group["n_samples"].iloc[0],
            )
            for metric in METRICS:
                row[f"{metric}_mean"], row[f"{metric}_se"] = mean_and_se(ok[metric])
            row["bias_p"] = combined_bias_p(ok["bias_p"])
            row["reference_se_max"] = ok["reference_se_max"].max()
            row["made_reference"] = bool(ok["made_reference"].eq(True).any())
            row["timing_contention"] = bool(ok["timing_contention"].any())
            rows.append(row)
        columns = [*keys, "status", "replicates", "n_samples"]
        columns += [f"{m}_{s}" for m in METRICS for s in ("mean", "se")]
        columns += ["bias_p", "reference_se_max", "made_reference", "timing_contention"]
        return pd.DataFrame(rows, columns=columns)

    def timing_note(self) -> str:
        """How the timings were taken, for the footnote under the summary."""
        if self.options.timing_repeats == 0:
            return "not timed (--repeats 0)"
        if self.table()["timing_contention"].any():
            return (
                f"taken while up to {self.options.concurrency} tasks ran at once"
                " (timing_contention = True in the CSV): compare them with care"
            )
        if self.options.exclusive_timing and self.options.concurrency > 1:
            return "one timed task per device at a time (the others wait while it is timed)"
        return "one task at a time"

    def write_csv(self, path: str | Path) -> None:
        write_atomic(path, self.table().to_csv(index=False))

    def write_aggregate_csv(self, path: str | Path) -> None:
        write_atomic(path, self.aggregate().to_csv(index=False))

    def write_detail_csv(self, path: str | Path) -> None:
        write_atomic(path, self.detail_table().to_csv(index=False))
