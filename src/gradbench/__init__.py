"""gradbench: benchmark Monte Carlo gradient estimators in PyTorch.

Measures bias, variance and wall time of per-sample gradient estimators against objectives
with exact (or estimated) gradients. Start with :func:`compare`; add an estimator by subclassing
:class:`Estimator` and registering it with :func:`register_estimator`; benchmark your own model
with :meth:`ModelObjective.define` and :func:`register_objective`.

The names below are imported on first use (PEP 562), so that importing one part of the
package (the command line, say) does not import all of it: the records and the report pull in
pandas, a fifth of a second of ``gradbench list``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

#: The modules of the public names (the same as the imports for type checkers below).
_MODULES = {
    "gradbench.api": ("ReferenceOptions", "check", "compare", "run_comparison"),
    "gradbench.core.device_copies": ("on_device_of",),
    "gradbench.core.errors": ("InputError",),
    "gradbench.core.estimator": ("Estimator", "per_sample_gradients"),
    "gradbench.core.objective": ("Capability", "Objective", "Reference"),
    "gradbench.core.params": ("ParamLayout",),
    "gradbench.core.settings": ("Setting",),
    "gradbench.engine.run": ("RunConfig", "RunResult", "run_pair"),
    "gradbench.extend.conformance": ("ConformanceReport", "check_estimator"),
    "gradbench.extend.plugins": ("PluginError", "load_plugin"),
    "gradbench.extend.registry": ("register_estimator", "register_objective"),
    "gradbench.objectives.model": ("ModelObjective",),
    "gradbench.objectives.networks": ("batched_call", "module_parameters"),
    "gradbench.records.comparison": ("Comparison",),
    "gradbench.stats.accumulator": ("GradientStatistics",),
    "gradbench.stats.summary": ("Summary",),
    "gradbench.sweeps.grid": ("Axis",),
    "gradbench.sweeps.orchestration": ("sweep",),
    "gradbench.sweeps.result": ("SweepResult",),
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "Axis",
    "Capability",
    "Comparison",
    "ConformanceReport",
    "Estimator",
    "GradientStatistics",
    "InputError",
    "ModelObjective",
    "Objective",
    "ParamLayout",
    "PluginError",
    "Reference",
    "ReferenceOptions",
    "RunConfig",
    "RunResult",
    "Setting",
    "Summary",
    "SweepResult",
    "batched_call",
    "check",
    "check_estimator",
    "compare",
    "load_plugin",
    "module_parameters",
    "on_device_of",
    "per_sample_gradients",
    "register_estimator",
    "register_objective",
    "run_comparison",
    "run_pair",
    "sweep",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gradbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:
    from gradbench.api import ReferenceOptions, check, compare, run_comparison
    from gradbench.core.device_copies import on_device_of
    from gradbench.core.errors import InputError
    from gradbench.core.estimator import Estimator, per_sample_gradients
    from gradbench.core.objective import Capability, Objective, Reference
    from gradbench.core.params import ParamLayout
    from gradbench.core.settings import Setting
    from gradbench.engine.run import RunConfig, RunResult, run_pair
    from gradbench.extend.conformance import ConformanceReport, check_estimator
    from gradbench.extend.plugins import PluginError, load_plugin
    from gradbench.extend.registry import register_estimator, register_objective
    from gradbench.objectives.model import ModelObjective
    from gradbench.objectives.networks import batched_call, module_parameters
    from gradbench.records.comparison import Comparison
    from gradbench.stats.accumulator import GradientStatistics
    from gradbench.stats.summary import Summary
    from gradbench.sweeps.grid import Axis
    from gradbench.sweeps.orchestration import sweep
    from gradbench.sweeps.result import SweepResult
