"""Sweep axes: the values one setting takes, as a list or a linear or logarithmic scan.

``NAME=V1,V2,...`` lists values. ``NAME=START:STOP:COUNT[:lin|log]`` scans COUNT values from
START to STOP, both included: evenly spaced (``lin``, the default), or evenly spaced in log
(``log``: v_i = START · (STOP/START)^(i/(COUNT−1)), both bounds > 0; a value that misses an
integer by rounding alone is that integer, so 1:256:9:log is 1, 2, 4, …, 256). Several axes
make a grid, their Cartesian product, the first axis varying slowest.

NAME routes like ``--set``: KEY to every objective declaring it, NAME.KEY to one objective or
estimator (``fd.step``). Values are numbers: an integer stays an ``int`` (for integer settings
such as ``dim``), anything else is a finite ``float``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from gradbench.core.errors import InputError

Number = int | float

LIST_FORM = "NAME=V1,V2,..."
SCAN_FORM = "NAME=START:STOP:COUNT[:lin|log]"
SPACINGS = ("lin", "log")


@dataclass(frozen=True)
class Axis:
    """One swept setting and its values, in order."""

    name: str
    values: tuple[Number, ...]

    @classmethod
    def of(cls, name: str, values: Iterable[object], source: str | None = None) -> Axis:
        """An axis from numbers or number text; ``source`` (the user's text) labels errors."""
        where = source if source is not None else f"axis {name!r}"
        name = name.strip()
        if not name:
            raise InputError(f"{where}: the setting name is empty; expected {LIST_FORM}")
        parsed = tuple(_number(value, where, LIST_FORM) for value in values)
        if not parsed:
            raise InputError(f"{where}: no values; expected {LIST_FORM}")
        repeated = [value for value in parsed if parsed.count(value) > 1]
        if repeated:
            raise InputError(f"{where}: value {number_text(repeated[0])} is given twice")
        return cls(name, parsed)

    @classmethod
    def scan(cls, name: str, start: float, stop: float, count: int, spacing: str = "lin") -> Axis:
        """COUNT values from ``start`` to ``stop`` inclusive, ``lin`` or ``log`` spaced."""
        where = f"{name}={start:g}:{stop:g}:{count}:{spacing}"
        try:
            values = _scan(start, stop, count, spacing)
        except InputError as error:
            raise InputError(f"{where!r}: {error}") from None
        return cls.of(name, values, repr(where))


def parse_list(text: str) -> Axis:
    """``NAME=V1,V2,...`` → an :class:`Axis` (the form of ``--param``)."""
    where = f"--param {text!r}"
    name, sep, values = text.partition("=")
    if not sep or not values.strip():
        raise InputError(f"{where}: expected {LIST_FORM}, e.g. --param k=0.1,0.5,1")
    if ":" in values:
        raise InputError(f"{where}: expected {LIST_FORM}; scans are --param-scan {SCAN_FORM}")
    return Axis.of(name, [value.strip() for value in values.split(",")], where)


def parse_scan(text: str) -> Axis:
    """``NAME=START:STOP:COUNT[:lin|log]`` → an :class:`Axis` (the form of ``--param-scan``)."""
    where = f"--param-scan {text!r}"
    name, sep, body = text.partition("=")
    parts = [part.strip() for part in body.split(":")]
    if not sep or not name.strip() or len(parts) not in (3, 4):
        raise InputError(f"{where}: expected {SCAN_FORM}, e.g. --param-scan sigma=0.1:10:20:log")
    start, stop = (_number(part, where, SCAN_FORM) for part in parts[:2])
    count = _number(parts[2], where, SCAN_FORM)
    if not isinstance(count, int):
        raise InputError(f"{where}: COUNT {parts[2]!r} is not an integer; expected {SCAN_FORM}")
    spacing = parts[3] if len(parts) == 4 else "lin"
    try:
        values = _scan(start, stop, count, spacing)
    except InputError as error:
        raise InputError(f"{where}: {error}") from None
    return Axis.of(name, values, where)


def _scan(start: float, stop: float, count: int, spacing: str) -> list[float]:
    if spacing not in SPACINGS:
        raise InputError(
            f"spacing {spacing!r} is not one of {', '.join(SPACINGS)}; expected {SCAN_FORM}"
        )
    if count < 1:
        raise InputError(f"COUNT {count} must be >= 1; expected {SCAN_FORM}")
    if spacing == "log" and not (start > 0 and stop > 0):
        raise InputError(f"a log scan needs START > 0 and STOP > 0; expected {SCAN_FORM}")
    if count > 1 and start == stop:
        raise InputError(f"START equals STOP, so its {count} values would be equal")
    space = np.geomspace if spacing == "log" else np.linspace
    return [_snapped(float(value)) for value in space(start, stop, count)]


def _snapped(value: float) -> float:
    """``value``, or the integer it misses by rounding alone (a log scan's 7.999999999999999
    is 8, which an integer setting such as ``particles`` accepts)."""
    nearest = round(value)
    return float(nearest) if abs(value - nearest) <= 1e-12 * max(1.0, abs(value)) else value


def grid(axes: Sequence[Axis]) -> list[dict[str, Number]]:
    """Every combination of the axes' values, the first axis varying slowest."""
    names = [axis.name for axis in axes]
    return [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(axis.values for axis in axes))
    ]


def number_text(value: Number) -> str:
    """Canonical text of a value, for task keys: ``1`` for 1 and 1.0, ``0.5``, ``1e-05``."""
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 2**53):
        return str(int(value))
    return repr(float(value))


def _number(raw: object, where: str, form: str) -> Number:
    if isinstance(raw, bool):
        raise InputError(f"{where}: {raw!r} is not a number; expected {form}")
    if isinstance(raw, int | float):
        value: Number = raw
    else:
        text = str(raw).strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise InputError(f"{where}: {text!r} is not a number; expected {form}") from None
    if not math.isfinite(value):
        raise InputError(f"{where}: {raw!r} is not a finite number; expected {form}")
    return value
