"""Name → class registries of estimators and objectives.

Built-ins come in through the ``gradbench.estimators`` / ``gradbench.objectives`` entry points of
this package's own metadata, exactly the way a plugin package registers, so every run exercises
the plugin path. :func:`register_estimator` and :func:`register_objective` are the decorators for
registering from Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from gradbench.errors import InputError
from gradbench.estimator import Estimator
from gradbench.objective import Objective

T = TypeVar("T", Estimator, Objective)

BUILT_IN = "built-in"


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered class and where it came from (``built-in``, ``entry point pkg``, …)."""

    cls: type[T]
    origin: str


class Registry(Generic[T]):
    """Registered classes of one kind, loaded lazily from the entry-point group on first use."""

    def __init__(self, kind: str, base: type[T], group: str) -> None:
        self.kind, self.base, self.group = kind, base, group
        self._entries: dict[str, Entry[T]] = {}
        self._loaded = False

    def register(self, cls: type[T], origin: str = "python") -> type[T]:
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
        self._entries[name] = Entry(cls, origin)
        return cls

    def _load_entry_points(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for point in entry_points(group=self.group):
            package = point.dist.name if point.dist is not None else "unknown package"
            origin = BUILT_IN if package == "gradbench" else f"entry point ({package})"
            self.register(point.load(), origin=origin)

    def entries(self) -> dict[str, Entry[T]]:
        self._load_entry_points()
        return dict(self._entries)

    def names(self) -> list[str]:
        return list(self.entries())

    def get(self, name: str) -> type[T]:
        entries = self.entries()
        if name not in entries:
            raise InputError(
                f"unknown {self.kind} {name!r}; valid {self.kind}s: {', '.join(entries)}"
            )
        return entries[name].cls


estimators: Registry[Estimator] = Registry("estimator", Estimator, "gradbench.estimators")
objectives: Registry[Objective] = Registry("objective", Objective, "gradbench.objectives")


def register_estimator(cls: type[Estimator]) -> type[Estimator]:
    """Class decorator: make an :class:`~gradbench.Estimator` available by its ``name``."""
    return estimators.register(cls)


def register_objective(cls: type[Objective]) -> type[Objective]:
    """Class decorator: make an :class:`~gradbench.Objective` available by its ``name``."""
    return objectives.register(cls)
