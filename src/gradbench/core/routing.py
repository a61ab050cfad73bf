"""Where a ``--set`` key goes: the one routing rule of settings and options.

A key is ``KEY`` or ``NAME.KEY``:

* ``KEY`` reaches every chosen objective that declares a setting ``KEY`` (``--set sigma=2``);
* ``NAME.KEY`` reaches the objective or the estimator called ``NAME`` (``--set fd.step=1e-3``),
  whether or not it declares ``KEY`` (building it then reports the unknown name).

``compare`` routes its ``--set`` values with it, a sweep its axes and fixed settings, and a
figure the swept parameter whose exact curve it draws, so the three cannot disagree.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from gradbench.core.settings import Setting


class Side(StrEnum):
    """Which member of an (objective, estimator) pair a key addresses."""

    OBJECTIVE = "setting"
    ESTIMATOR = "option"


class _Member(Protocol):
    """An objective or estimator, class or instance: its name and what it declares."""

    name: str


def split_key(key: str) -> tuple[str | None, str]:
    """``NAME.KEY`` → (NAME, KEY); ``KEY`` → (None, KEY)."""
    owner, dot, name = key.rpartition(".")
    return (owner, name) if dot else (None, key)


def declared(member: _Member, side: Side) -> set[str]:
    """The names an objective declares as settings, or an estimator as options."""
    entries: tuple[Setting, ...] = getattr(
        member, "settings" if side is Side.OBJECTIVE else "options", ()
    )
    return {entry.name for entry in entries}


def reaches(key: str, member: _Member, side: Side) -> bool:
    """Whether ``key`` reaches ``member``, the pair's objective or estimator (``side``)."""
    owner, name = split_key(key)
    if owner is None:
        return side is Side.OBJECTIVE and name in declared(member, side)
    return owner == member.name


def addressed(key: str, objective: _Member, estimator: _Member) -> Side | None:
    """The member of the pair (objective, estimator) that ``key`` reaches, or None."""
    if reaches(key, objective, Side.OBJECTIVE):
        return Side.OBJECTIVE
    if reaches(key, estimator, Side.ESTIMATOR):
        return Side.ESTIMATOR
    return None
