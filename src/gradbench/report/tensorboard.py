"""TensorBoard event files of a training run (``gradbench train --tensorboard``).

One run directory per trajectory, ``DIRECTORY/OBJECTIVE/ESTIMATOR/seedSEED``, with the scalars
``objective_value`` and ``grad_norm`` at each checkpoint (global step = the step) and
``basket/BASKET_ESTIMATOR/variance`` for each measured basket row. Every event's wall time is
the fixed epoch 0 plus the seconds of gradient steps so far, so TensorBoard's relative-time axis
shows the training's own seconds (not those spent measuring the basket or writing). Non-finite
values are left out.

tensorboard is the optional ``tensorboard`` extra, imported only inside the function.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from gradbench.core.errors import InputError

MISSING_TENSORBOARD = "--tensorboard needs tensorboard: pip install 'gradbench[tensorboard]'"
EPOCH = 0.0  # the wall time of step 0's gradient seconds
SCALARS = ("objective_value", "grad_norm")


def run_directory(directory: Path, objective: str, estimator: str, seed: int) -> Path:
    """The run directory of one trajectory."""
    return Path(directory) / f"{objective}/{estimator}/seed{seed}"


def require_tensorboard() -> None:
    """Refuse ``--tensorboard`` up front, before any work, when the extra is missing."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise InputError(MISSING_TENSORBOARD) from None


def write_tensorboard(table: pd.DataFrame, basket: pd.DataFrame | None, directory: Path) -> None:
    """Write the checkpoints of ``table`` and the ``ok`` rows of ``basket`` as event files under
    ``directory``, one run per (objective, estimator, seed)."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise InputError(MISSING_TENSORBOARD) from None

    measured = _measured(basket)
    keys = ["objective", "estimator", "seed"]
    for (objective, estimator, seed), rows in table.groupby(keys, sort=True):
        rows = rows.sort_values("step")
        steps = rows["step"].to_numpy(dtype=float)
        seconds = rows["wall_time_s"].to_numpy(dtype=float)
        writer = SummaryWriter(log_dir=str(run_directory(directory, objective, estimator, seed)))
        try:
            for row in rows.itertuples(index=False):
                walltime = EPOCH + float(row.wall_time_s)
                for tag in SCALARS:
                    value = float(getattr(row, tag))
                    if math.isfinite(value):
                        writer.add_scalar(tag, value, global_step=int(row.step), walltime=walltime)
            own = measured[
                (measured["objective"] == objective)
                & (measured["estimator"] == estimator)
                & (measured["seed"] == seed)
            ].sort_values(["basket_estimator", "step"])
            for row in own.itertuples(index=False):
                # The wall time at that step (between checkpoints: interpolated).
                walltime = EPOCH + float(np.interp(float(row.step), steps, seconds))
                writer.add_scalar(
                    f"basket/{row.basket_estimator}/variance",
                    float(row.variance),
                    global_step=int(row.step),
                    walltime=walltime,
                )
        finally:
            writer.close()


def _measured(basket: pd.DataFrame | None) -> pd.DataFrame:
    """The basket's ``ok`` rows with a finite variance."""
    columns = ["objective", "estimator", "seed", "step", "basket_estimator", "variance"]
    if basket is None or basket.empty:
        return pd.DataFrame(columns=columns)
    rows = basket.loc[basket["status"] == "ok", columns].copy()
    rows["variance"] = pd.to_numeric(rows["variance"], errors="coerce")
    return rows[np.isfinite(rows["variance"].to_numpy(dtype=float))]
