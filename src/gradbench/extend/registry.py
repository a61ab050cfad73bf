"""Name → class registries of estimators and objectives.

Built-ins come in through the ``gradbench.estimators`` / ``gradbench.objectives`` entry points of
this package's own metadata, exactly the way a plugin package registers (see
:mod:`gradbench.extend.plugins`), so every run exercises the plugin path.
:func:`register_estimator` and :func:`register_objective` are the decorators for registering
from Python.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Generic, TypeVar

from gradbench.core.errors import InputError, did_you_mean
from gradbench.core.estimator import Estimator
from gradbench.core.objective import Objective

T = TypeVar("T", Estimator, Objective)

BUILT_IN = "built-in"

#: Where registrations made right now come from; plugin loading sets it around an import.
_current_origin: ContextVar[str] = ContextVar("gradbench_registration_origin", default="python")


@contextmanager
def registering_as(origin: str) -> Iterator[None]:
    """Attribute every registration made inside the block to ``origin``."""
    token = _current_origin.set(origin)
    try:
        yield
    finally:
        _current_origin.reset(token)


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered class and where it came from (``built-in``, ``entry point pkg``, …)."""

    cls: type[T]
    origin: str


class Registry(Generic[T]):
    """Registered classes of one kind; the entry points are loaded on first use."""

    def __init__(self, kind: str, base: type[T]) -> None:
        self.kind, self.base = kind, base
        self._entries: dict[str, Entry[T]] = {}

    def register(self, cls: type[T], origin: str | None = None) -> type[T]:
        """Add ``cls`` under its ``name``; a name taken by another class is refused."""
        _autoload()
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise TypeError(f"{cls!r} is not a subclass of gradbench.{self.base.__name__}")
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{cls.__qualname__} has no class attribute 'name'")
        existing = self._entries.get(name)
        if existing is not None and existing.cls is not cls:
            raise ValueError(
                f"{self.kind} name {name!r} is taken by {existing.cls.__module__}."
                f"{existing.cls.__qualname__} ({existing.origin}); give "
                f"{cls.__module__}.{cls.__qualname__} another name"
            )
        if existing is None:
            self._entries[name] = Entry(cls, origin or _current_origin.get())
        return cls

    def entries(self) -> dict[str, Entry[T]]:
        _autoload()
        return dict(self._entries)

    def names(self) -> list[str]:
        return list(self.entries())

    def get(self, name: str) -> type[T]:
        entries = self.entries()
        if name not in entries:
            raise InputError(
                f"unknown {self.kind} {name!r}{did_you_mean(name, entries)};"
                f" valid {self.kind}s: {', '.join(entries)}"
            )
        return entries[name].cls

    def registered(self) -> dict[str, Entry[T]]:
        """What is registered now, without loading entry points first."""
        return dict(self._entries)

    def replace(self, entries: dict[str, Entry[T]]) -> None:
        """Put back what :meth:`registered` returned (undoing a failed plugin load)."""
        self._entries = dict(entries)


def _autoload() -> None:
    from gradbench.extend import plugins  # plugins imports this module

    plugins.autoload()


estimators: Registry[Estimator] = Registry("estimator", Estimator)
objectives: Registry[Objective] = Registry("objective", Objective)


def register_estimator(cls: type[Estimator]) -> type[Estimator]:
    """Class decorator: make an :class:`~gradbench.Estimator` available by its ``name``."""
    return estimators.register(cls)


def register_objective(cls: type[Objective]) -> type[Objective]:
    """Class decorator: make an :class:`~gradbench.Objective` available by its ``name``."""
    return objectives.register(cls)
