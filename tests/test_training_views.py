"""The two views of a training run: the figure (PNG/SVG) and the TensorBoard event files.

The tables are synthetic, in the columns ``gradbench train`` writes: 2 objectives × 2 trained
estimators × 2 seeds × 4 checkpoints, and a basket of 3 estimators with ``ok`` and ``skipped``
rows.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gradbench.core.errors import InputError

OBJECTIVES = {"gaussian-square": "maximise", "logistic-regression": "minimise"}
ESTIMATORS = ["reinforce", "reparam"]
BASKET = ["mvd", "reinforce", "reparam"]
SEEDS = [0, 1]
STEPS = [0, 10, 20, 30]


def checkpoint_table(seeds: list[int] = SEEDS) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for objective, direction in OBJECTIVES.items():
        sign = 1.0 if direction == "maximise" else -1.0
        for e, estimator in enumerate(ESTIMATORS):
            for seed in seeds:
                for k, step in enumerate(STEPS):
                    rows.append(
                        {
                            "objective": objective,
                            "estimator": estimator,
                            "seed": seed,
                            "step": step,
                            "wall_time_s": 0.01 * step * (1 + e) + 0.001 * seed,
                            "objective_value": sign * (1 - np.exp(-0.1 * step))
                            + rng.normal(0, 0.05),
                            "objective_value_se": np.nan
                            if objective == "gaussian-square"
                            else 0.01,
                            "grad_norm": np.exp(-0.05 * step) + 0.01 * k,
                            "direction": direction,
                            "param_mu": 0.1 * k,
                        }
                    )
    return pd.DataFrame(rows)


def basket_table(seeds: list[int] = SEEDS) -> pd.DataFrame:
    rows = []
    for objective in OBJECTIVES:
        for e, estimator in enumerate(ESTIMATORS):
            for seed in seeds:
                for step in STEPS:
                    for b, name in enumerate(BASKET):
                        skipped = name == "mvd" and objective == "logistic-regression"
                        variance = (
                            np.nan
                            if skipped
                            else (b + 1) * np.exp(-0.03 * step * (1 + e)) * (1 + 0.05 * seed)
                        )
                        rows.append(
                            {
                                "objective": objective,
                                "estimator": estimator,
                                "seed": seed,
                                "step": step,
                                "basket_estimator": name,
                                "status": "skipped" if skipped else "ok",
                                "variance": variance,
                                "variance_ci_low": 0.8 * variance,
                                "variance_ci_high": 1.25 * variance,
                                "n": 1000,
                            }
                        )
    return pd.DataFrame(rows)


# ---- the figure ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_figure_is_written(tmp_path: Path, suffix: str) -> None:
    pytest.importorskip("matplotlib")
    from gradbench.report.training_plot import write_training_figure

    path = tmp_path / f"training{suffix}"
    write_training_figure(checkpoint_table(), basket_table(), path)
    assert path.stat().st_size > 1000
    if suffix == ".svg":
        text = path.read_text()
        assert "<svg" in text and "J(θ) (maximised)" in text and "J(θ) (minimised)" in text
    else:
        assert path.read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_figure_with_one_seed(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from gradbench.report.training_plot import write_training_figure

    path = tmp_path / "one-seed.png"
    write_training_figure(checkpoint_table([0]), basket_table([0]), path)
    assert path.stat().st_size > 1000


@pytest.mark.parametrize("basket", [None, "empty", "skipped"])
def test_figure_without_basket(tmp_path: Path, basket: str | None) -> None:
    pytest.importorskip("matplotlib")
    from gradbench.report.training_plot import draw_training, write_training_figure

    table = basket_table()
    frames = {None: None, "empty": table.iloc[0:0], "skipped": table.assign(status="skipped")}
    figure = draw_training(checkpoint_table(), frames[basket])
    # Two panels per objective, no basket panel.
    axes = [ax for sub in figure.subfigs[1:-1] for ax in sub.axes if ax.get_visible()]
    assert len(axes) == 2 * len(OBJECTIVES)
    path = tmp_path / "no-basket.svg"
    write_training_figure(checkpoint_table(), frames[basket], path)
    assert path.stat().st_size > 1000


def test_figure_panels(tmp_path: Path) -> None:
    """Three panels per objective; one line per trained estimator in the J panels; in the
    basket panel solid lines for the own trajectory and dashed ones for the others."""
    pytest.importorskip("matplotlib")
    from gradbench.report.training_plot import draw_training

    figure = draw_training(checkpoint_table(), basket_table())
    rows = figure.subfigs[1:-1]
    assert [row._suptitle.get_text() for row in rows] == list(OBJECTIVES)
    for row, direction in zip(rows, OBJECTIVES.values(), strict=True):
        by_step, by_time, variance = row.axes
        assert by_step.get_ylabel() == f"J(θ) ({direction[:-1]}ed)"
        assert len(by_step.lines) == len(by_time.lines) == len(ESTIMATORS)
        assert variance.get_yscale() == "log"
        solid = [line for line in variance.lines if line.get_linestyle() == "-"]
        dashed = [line for line in variance.lines if line.get_linestyle() == "--"]
        assert len(solid) == len(ESTIMATORS)
        ok_names = 3 if row._suptitle.get_text() == "gaussian-square" else 2
        assert len(dashed) == len(ESTIMATORS) * (ok_names - 1)
    # The same colour for an estimator in every panel.
    colours = {line.get_color() for row in rows for line in row.axes[0].lines[:1]}
    assert len(colours) == 1


def test_figure_mean_and_band() -> None:
    """The J line is the mean over seeds; the band is ± std/√R."""
    pytest.importorskip("matplotlib")
    from gradbench.report.training_plot import _mean_over_seeds

    table = checkpoint_table()
    group = table[(table.objective == "gaussian-square") & (table.estimator == "reparam")]
    line = _mean_over_seeds(group)
    values = group[group.step == 20]["objective_value"].to_numpy()
    at = line[line.step == 20].iloc[0]
    assert at["mean"] == pytest.approx(values.mean())
    assert at["high"] - at["mean"] == pytest.approx(values.std(ddof=1) / np.sqrt(2))
    one = table[(table.objective == "logistic-regression") & (table.seed == 0)]
    line = _mean_over_seeds(one[one.estimator == "reparam"])
    assert (line["high"] - line["mean"]).to_numpy() == pytest.approx(1.96 * 0.01)


@pytest.mark.parametrize("name", ["training.pdf", "training"])
def test_figure_bad_suffix(tmp_path: Path, name: str) -> None:
    from gradbench.report.training_plot import write_training_figure

    suffix = Path(name).suffix or "(none)"
    with pytest.raises(InputError, match=re.escape(f"{suffix!r}") + r".*\.png, \.svg"):
        write_training_figure(checkpoint_table(), None, tmp_path / name)
    assert not list(tmp_path.iterdir())


def test_figure_without_matplotlib(tmp_path: Path, monkeypatch) -> None:
    from gradbench.report.training_plot import write_training_figure

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(
        InputError, match=r"--plot needs matplotlib: pip install 'gradbench\[plot\]'"
    ):
        write_training_figure(checkpoint_table(), None, tmp_path / "training.png")


# ---- TensorBoard --------------------------------------------------------------------------


def test_tensorboard_event_files(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gradbench.report.tensorboard import write_tensorboard

    table, basket = checkpoint_table(), basket_table()
    write_tensorboard(table, basket, tmp_path)
    runs = sorted(p.parent for p in tmp_path.rglob("events.out.tfevents.*"))
    expected = sorted(
        tmp_path / objective / estimator / f"seed{seed}"
        for objective in OBJECTIVES
        for estimator in ESTIMATORS
        for seed in SEEDS
    )
    assert runs == expected
    for objective in OBJECTIVES:
        events = EventAccumulator(str(tmp_path / objective / "reparam" / "seed1"))
        events.Reload()
        ok = BASKET if objective == "gaussian-square" else ["reinforce", "reparam"]
        tags = {"objective_value", "grad_norm", *(f"basket/{name}/variance" for name in ok)}
        assert set(events.Tags()["scalars"]) == tags
        for tag in tags:
            scalars = events.Scalars(tag)
            assert [s.step for s in scalars] == STEPS
        rows = table[
            (table.objective == objective) & (table.estimator == "reparam") & (table.seed == 1)
        ]
        scalars = events.Scalars("objective_value")
        assert [s.value for s in scalars] == pytest.approx(rows["objective_value"].tolist())
        # Wall time: epoch 0 plus the seconds of gradient steps.
        assert [s.wall_time for s in scalars] == pytest.approx(rows["wall_time_s"].tolist())
        variance = events.Scalars("basket/reinforce/variance")
        assert [s.wall_time for s in variance] == pytest.approx(rows["wall_time_s"].tolist())


def test_tensorboard_without_basket(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gradbench.report.tensorboard import write_tensorboard

    write_tensorboard(checkpoint_table([3]), None, tmp_path)
    events = EventAccumulator(str(tmp_path / "gaussian-square" / "reinforce" / "seed3"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"objective_value", "grad_norm"}
    assert len(events.Scalars("grad_norm")) == len(STEPS)


def test_tensorboard_missing(tmp_path: Path, monkeypatch) -> None:
    from gradbench.report.tensorboard import write_tensorboard

    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(InputError, match=r"--tensorboard needs tensorboard: pip install"):
        write_tensorboard(checkpoint_table(), None, tmp_path)
