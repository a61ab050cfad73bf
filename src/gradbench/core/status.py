"""The outcome of one (objective, estimator) pair, as the ``status`` column spells it."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """``ok``: measured; ``skipped``: the objective lacks what the estimator requires;
    ``failed``: the run raised (the ``reason`` column says what). A member equals its string,
    so tables read back from CSV compare with it directly."""

    OK = "ok"
    SKIPPED = "skipped"
    FAILED = "failed"
