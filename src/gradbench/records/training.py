"""The record of ``gradbench train``: a row per checkpoint of every trajectory, a row per basket
estimator at each checkpoint, and the provenance; CSV and JSON are views of it.

Checkpoint rows (:data:`CHECKPOINT_COLUMNS`, then ``param_<coordinate>`` when θ has at most
:data:`MAX_PARAM_COLUMNS` coordinates): ``objective_value`` is J(θ) (``objective_value_se``
empty when exact), ``direction`` says whether J is maximised or minimised, ``wall_time_s`` the
seconds of gradient steps so far. θ itself is always in the JSON. Basket rows: the trajectory's
``objective``, ``estimator`` (the trained one), ``seed``, ``replicate``, ``step``, then
``basket_estimator`` and compare's columns (:data:`~gradbench.records.comparison.COLUMNS`),
ranked (★) among the basket at each checkpoint.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from gradbench.core.errors import InputError
from gradbench.core.params import ParamLayout
from gradbench.engine.training import TrainConfig, Trajectory
from gradbench.records.comparison import COLUMNS, json_safe, result_row
from gradbench.records.files import write_atomic
from gradbench.records.ranking import mark_best

CHECKPOINT_COLUMNS = (
    "objective",
    "estimator",
    "seed",
    "replicate",
    "status",
    "reason",
    "step",
    "wall_time_s",
    "objective_value",
    "objective_value_se",
    "grad_norm",
    "direction",
    "optimizer",
    "lr",
    "batch",
    "steps",
    "estimator_state",
    "optimum",
)
BASKET_KEYS = ("objective", "estimator", "seed", "replicate", "step", "basket_estimator")
#: θ gets columns of its own up to this many coordinates.
MAX_PARAM_COLUMNS = 64


def trajectory_rows(
    trajectory: Trajectory, replicate: int, config: TrainConfig, provenance: dict
) -> tuple[list[dict], list[dict], list[dict]]:
    """The checkpoint rows, basket rows and θ per checkpoint (for the JSON) of a trajectory."""
    objective, estimator = trajectory.objective, trajectory.estimator
    base = {
        "objective": objective.name,
        "estimator": estimator.name,
        "seed": trajectory.seed,
        "replicate": replicate,
        "status": "skipped" if trajectory.skipped else "failed" if trajectory.reason else "ok",
        "reason": trajectory.skipped or trajectory.reason,
        "direction": "maximise" if objective.maximize else "minimise",
        "optimizer": config.optimizer,
        "lr": config.lr,
        "batch": config.batch,
        "steps": config.steps,
        "estimator_state": trajectory.estimator_state,
        "optimum": _number(objective.optimal_value()),
    }
    settings = {f"setting_{k}": v for k, v in objective.config.items()}
    options = {f"option_{k}": v for k, v in estimator.config.items()}
    checkpoints, basket, thetas = [], [], []
    if trajectory.skipped or not trajectory.checkpoints:  # one row says why nothing was measured
        return [{**base, **settings, **options}], [], []
    run = replace(config.run, seed=trajectory.seed)
    for checkpoint in trajectory.checkpoints:
        layout = ParamLayout.of(checkpoint.theta)
        flat = dict(zip(layout.labels(), layout.flatten(checkpoint.theta).tolist(), strict=True))
        row = {
            **base,
            "step": checkpoint.step,
            "wall_time_s": checkpoint.wall_time_s,
            "objective_value": checkpoint.objective_value,
            "objective_value_se": checkpoint.objective_value_se,
            "grad_norm": checkpoint.grad_norm,
            **settings,
            **options,
        }
        if len(flat) <= MAX_PARAM_COLUMNS:
            row.update({f"param_{label}": value for label, value in flat.items()})
        checkpoints.append(row)
        thetas.append(
            {
                **{k: row[k] for k in ("objective", "estimator", "seed", "replicate", "step")},
                "theta": {k: v.tolist() for k, v in checkpoint.theta.items()},
            }
        )
        measured = [result_row(result, run, provenance) for result in checkpoint.basket]
        mark_best(measured)
        for compared in measured:
            basket.append(
                {
                    **{k: row[k] for k in ("objective", "estimator", "seed", "replicate")},
                    "step": checkpoint.step,
                    "basket_estimator": compared.pop("estimator"),
                    **{k: v for k, v in compared.items() if k not in ("objective", "seed")},
                }
            )
    return checkpoints, basket, thetas


def _number(value: float | None) -> float:
    return math.nan if value is None else value


@dataclass
class TrainingResult:
    """Checkpoint rows, basket rows, θ per checkpoint and provenance of a ``train`` run."""

    checkpoints: list[dict] = field(default_factory=list)
    basket: list[dict] = field(default_factory=list)
    thetas: list[dict] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)
    interrupted: bool = False

    def table(self) -> pd.DataFrame:
        extra = sorted({k for row in self.checkpoints for k in row} - set(CHECKPOINT_COLUMNS))
        columns = [*CHECKPOINT_COLUMNS, *extra]
        table = pd.DataFrame(self.checkpoints, columns=columns)
        return table.astype({"seed": "Int64", "replicate": "Int64", "step": "Int64"})

    def basket_table(self) -> pd.DataFrame:
        known = [*BASKET_KEYS, *(c for c in COLUMNS if c not in (*BASKET_KEYS, "estimator"))]
        extra = sorted({k for row in self.basket for k in row} - set(known))
        table = pd.DataFrame(self.basket, columns=[*known, *extra])
        return table.astype({"seed": "Int64", "replicate": "Int64", "step": "Int64"})

    def write_csv(self, path: str | Path) -> None:
        write_atomic(path, self.table().to_csv(index=False))

    def write_basket_csv(self, path: str | Path) -> None:
        write_atomic(path, self.basket_table().to_csv(index=False))

    def write_json(self, path: str | Path) -> None:
        document = {
            "provenance": self.provenance,
            "interrupted": self.interrupted,
            "checkpoints": [json_safe(row) for row in self.checkpoints],
            "theta": self.thetas,
            "basket": [json_safe(row) for row in self.basket],
        }
        write_atomic(path, json.dumps(document, indent=2, allow_nan=False) + "\n")


#: Columns that make a table a training result (a comparison has neither).
TRAINING_MARKERS = ("objective_value", "wall_time_s")


def is_training_result(path: Path) -> bool:
    """Whether the saved file at ``path`` is a ``train`` result (its CSV or JSON)."""
    try:
        if path.suffix.lower() == ".json":
            return "checkpoints" in json.loads(path.read_text(encoding="utf-8"))
        header = pd.read_csv(path, nrows=0).columns
    except (OSError, ValueError):
        return False
    return all(marker in header for marker in TRAINING_MARKERS)


def read_training(path: Path, basket: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The checkpoint table and basket table of a saved ``train`` result: its JSON (both), or
    its CSV with the basket from ``basket`` (a ``--basket-csv`` or the JSON; none: empty)."""

    def tables(source: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
        if source.suffix.lower() == ".json":
            document = json.loads(source.read_text(encoding="utf-8"))
            return pd.DataFrame(document["checkpoints"]), pd.DataFrame(document["basket"])
        return pd.read_csv(source), pd.DataFrame()

    try:
        table, measured = tables(path)
        if basket is not None:
            measured = (
                tables(basket)[1] if basket.suffix.lower() == ".json" else pd.read_csv(basket)
            )
    except (OSError, ValueError, KeyError) as problem:
        raise InputError(f"cannot read the training result: {problem}") from None
    missing = [
        c for c in ("objective", "estimator", "seed", "step", *TRAINING_MARKERS) if c not in table
    ]
    if missing:
        raise InputError(
            f"{str(path)!r} is not a gradbench train table; missing: {', '.join(missing)}"
        )
    return table, measured
