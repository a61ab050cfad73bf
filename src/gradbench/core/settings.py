"""Declared, validated settings of objectives and options of estimators.

An objective declares its settings (``dim``, ``mu``, …) and an estimator its options (``step``
of ``fd``) as :class:`Setting` records. One parser turns user text (``--set sigma=2``) or Python
values into checked values, so every entry point reports a bad value the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from gradbench.core.errors import InputError, did_you_mean

Value = int | float | None
Check = Callable[[float], str | None]


def positive(value: float) -> str | None:
    """Check that returns a message unless ``value > 0``."""
    return None if value > 0 else "must be > 0"


def at_least(bound: float) -> Check:
    """Check that returns a message unless ``value >= bound``."""

    def check(value: float) -> str | None:
        return None if value >= bound else f"must be >= {bound:g}"

    return check


@dataclass(frozen=True)
class Setting:
    """One named, typed, documented setting.

    ``kind`` is ``int`` or ``float``; ``default=None`` means "chosen automatically", which the
    help text explains. ``check`` returns an error message for an invalid value, else None.
    """

    name: str
    kind: type
    default: Value
    help: str
    check: Check | None = None

    def parse(self, raw: object, owner: str) -> Value:
        """Convert ``raw`` (text or number) to a checked value, or raise :class:`InputError`."""
        where = f"{owner}: setting {self.name}={raw!r}"
        if raw is None and self.default is None:
            return None
        value = _convert(raw, self.kind)
        if value is None:
            noun = "an integer" if self.kind is int else "a finite number"
            raise InputError(f"{where}: {self.name} must be {noun}")
        if self.check is not None and (problem := self.check(value)) is not None:
            raise InputError(f"{where}: {self.name} {problem}")
        return value

    def describe(self) -> str:
        default = "auto" if self.default is None else f"{self.default:g}"
        return f"{self.name}={default}"


def _convert(raw: object, kind: type) -> int | float | None:
    if isinstance(raw, bool):
        return None
    if kind is int:
        if isinstance(raw, int):
            return raw
        if isinstance(raw, float):
            return int(raw) if raw.is_integer() else None
        try:
            return int(str(raw).strip())
        except ValueError:
            return None
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def resolve(
    declared: Iterable[Setting], given: Mapping[str, object], owner: str
) -> dict[str, Value]:
    """Merge ``given`` over the defaults of ``declared``; an unknown name is an InputError."""
    by_name = {s.name: s for s in declared}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        valid = ", ".join(by_name) or "none"
        hint = did_you_mean(unknown[0], by_name)
        raise InputError(f"{owner}: unknown setting {unknown[0]!r}{hint}; valid settings: {valid}")
    return {
        name: setting.parse(given[name], owner) if name in given else setting.default
        for name, setting in by_name.items()
    }


def parse_assignment(text: str) -> tuple[str, str]:
    """Split ``KEY=VALUE`` (as given to ``--set``) into its two parts."""
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key or not value:
        raise InputError(
            f"--set {text!r}: expected KEY=VALUE, e.g. --set mu=1 or --set fd.step=1e-3"
        )
    return key, value
