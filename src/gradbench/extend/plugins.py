"""Plugins: estimators and objectives from other packages, modules and files.

Three ways in, all ending in :class:`~gradbench.extend.registry.Registry.register`:

1. **Entry points** in the groups ``gradbench.estimators`` and ``gradbench.objectives`` of any
   installed distribution, loaded on first use of a registry. gradbench's own built-ins come in
   this way. Set ``GRADBENCH_DISABLE_PLUGIN_AUTOLOAD=1`` to load only the built-ins.
2. **Specs** given to :func:`load_plugin` (the CLI's ``--plugin``): ``path/to/file.py``,
   ``package.module`` (whose import registers with the decorators) or ``package.module:Attr``
   (an Estimator or Objective subclass, or a list of them).
3. **Python**: ``@gradbench.register_estimator`` / ``@gradbench.register_objective``.

A plugin that fails to import, holds no estimator or objective, or reuses a taken name is
refused whole with one line naming it and the problem: a broken entry point (which nobody asked
for by name) is kept in :func:`problems` and everything else still runs, while a spec given to
:func:`load_plugin` raises :class:`PluginError`. File specs are made absolute
(:func:`absolute_spec`) before they are loaded or recorded, so that a worker started in another
directory finds the same file. Loaded plugins are recorded (spec, version, names) for the
result's provenance.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, entry_points, packages_distributions, version
from pathlib import Path
from types import ModuleType

from gradbench.core.estimator import Estimator
from gradbench.core.objective import Objective
from gradbench.extend import registry

AUTOLOAD_ENV = "GRADBENCH_DISABLE_PLUGIN_AUTOLOAD"
GROUPS = {"gradbench.estimators": registry.estimators, "gradbench.objectives": registry.objectives}


@dataclass(frozen=True)
class Plugin:
    """A loaded plugin: how it was named, its kind and version, and what it registered."""

    spec: str
    kind: str  # "entry point", "module" or "file"
    version: str
    names: tuple[str, ...]


class PluginError(Exception):
    """A plugin that could not be loaded; the message is one line naming it and the problem."""


@dataclass
class _State:
    loaded: list[Plugin]
    problems: list[str]
    autoloaded: bool


_state = _State(loaded=[], problems=[], autoloaded=False)


def loaded() -> list[dict]:
    """The loaded plugins (built-ins excluded), as plain dicts for provenance."""
    return [asdict(plugin) for plugin in _state.loaded]


def problems() -> list[str]:
    """One line per entry point that could not be loaded."""
    return list(_state.problems)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".replace("\n", " ").strip()


def _registered_names() -> set[tuple[str, str]]:
    return {(target.kind, name) for target in GROUPS.values() for name in target.registered()}


def snapshot() -> tuple:
    """Everything plugin loading can change, to put back with :func:`restore`."""
    return (
        {group: target.registered() for group, target in GROUPS.items()},
        _State(list(_state.loaded), list(_state.problems), _state.autoloaded),
    )


def restore(saved: tuple) -> None:
    entries, state = saved
    for group, target in GROUPS.items():
        target.replace(entries[group])
    _state.loaded, _state.problems = list(state.loaded), list(state.problems)
    _state.autoloaded = state.autoloaded


def autoload() -> None:
    """Register every entry point once (only gradbench's own when autoloading is disabled)."""
    if _state.autoloaded:
        return
    _state.autoloaded = True
    disabled = os.environ.get(AUTOLOAD_ENV, "").strip() not in ("", "0")
    for group, target in GROUPS.items():
        for point in entry_points(group=group):
            package = point.dist.name if point.dist is not None else "unknown"
            built_in = package == "gradbench"
            if disabled and not built_in:
                continue
            package_version = point.dist.version if point.dist is not None else "unknown"
            origin = registry.BUILT_IN if built_in else f"entry point {package} {package_version}"
            saved = snapshot()
            try:
                cls = target.register(point.load(), origin=origin)
            except Exception as error:  # a broken third-party plugin must not stop the others
                restore(saved)
                _state.problems.append(
                    f"plugin entry point {point.name!r} of {package}: {_describe(error)}"
                )
                continue
            if not built_in:
                spec = f"{group}:{point.name} = {point.value}"
                _state.loaded.append(Plugin(spec, "entry point", package_version, (cls.name,)))


def is_file_spec(spec: str) -> bool:
    """Whether ``spec`` names a Python file (it ends in ``.py`` or holds a path separator)
    rather than a module."""
    separators = [sep for sep in (os.sep, os.altsep) if sep]
    return spec.endswith(".py") or any(sep in spec for sep in separators)


def absolute_spec(spec: str) -> str:
    """``spec`` with an existing file made absolute; module specs and missing files unchanged.

    A relative ``path/to/file.py`` means a different file (or none) to a worker started in
    another directory; the absolute path means the same one on every machine that shares the
    file system.
    """
    if is_file_spec(spec) and Path(spec).is_file():
        return os.path.abspath(spec)
    return spec


def load_plugin(spec: str) -> Plugin:
    """Load ``path.py``, ``module`` or ``module:Attr``; raise :class:`PluginError` if it fails.

    A file is loaded and recorded by its absolute path (:func:`absolute_spec`). Loading the
    same spec twice returns the first record.
    """
    autoload()
    spec = absolute_spec(spec)
    for plugin in _state.loaded:
        if plugin.spec == spec:
            return plugin
    before = _registered_names()
    saved = snapshot()
    try:
        if is_file_spec(spec):
            kind, plugin_version = "file", _load_file(Path(spec))
        else:
            kind, plugin_version = "module", _load_module(spec)
    except Exception as error:  # whatever a plugin's import raises, report it in one line
        restore(saved)
        raise PluginError(f"plugin {spec!r}: {_describe(error)}") from None
    names = tuple(name for _, name in sorted(_registered_names() - before))
    names = names or _named_classes(spec)  # module:Class already registered by its package
    if not names:
        restore(saved)
        raise PluginError(
            f"plugin {spec!r}: registered no estimator or objective; decorate its classes with "
            "@gradbench.register_estimator / @gradbench.register_objective, or name one as "
            "module:Class"
        )
    plugin = Plugin(spec, kind, plugin_version, names)
    _state.loaded.append(plugin)
    return plugin


def _load_file(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"no such file {str(path)!r}")
    source = path.read_bytes()
    digest = hashlib.sha256(source).hexdigest()
    module_name = f"gradbench_plugin_{path.stem}_{digest[:12]}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"cannot import {str(path)!r} as a Python file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up
    try:
        with registry.registering_as(f"file {path}"):
            module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return f"sha256:{digest[:16]}"


def _load_module(spec: str) -> str:
    module_name, _, attribute = spec.partition(":")
    with registry.registering_as(f"module {spec}"):
        module = importlib.import_module(module_name)
        if attribute:
            _register_attribute(module, attribute, origin=f"module {spec}")
    return _module_version(module)


def _named_classes(spec: str) -> tuple[str, ...]:
    """The names of the classes a ``module:Attr`` spec points at (empty for other specs)."""
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        return ()
    value = getattr(sys.modules[module_name], attribute)
    return tuple(cls.name for cls in (value if isinstance(value, list | tuple) else [value]))


def _register_attribute(module: ModuleType, attribute: str, origin: str) -> None:
    value = getattr(module, attribute)
    classes = value if isinstance(value, list | tuple) else [value]
    for cls in classes:
        if isinstance(cls, type) and issubclass(cls, Estimator):
            registry.estimators.register(cls, origin=origin)
        elif isinstance(cls, type) and issubclass(cls, Objective):
            registry.objectives.register(cls, origin=origin)
        else:
            raise TypeError(
                f"{module.__name__}.{attribute} is {cls!r}, not a gradbench Estimator or "
                "Objective subclass"
            )


def _module_version(module: ModuleType) -> str:
    top = module.__name__.partition(".")[0]
    for distribution in packages_distributions().get(top, []):
        try:
            return version(distribution)
        except PackageNotFoundError:
            continue
    return str(getattr(module, "__version__", "unknown"))
