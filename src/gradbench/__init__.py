"""gradbench: benchmark Monte Carlo gradient estimators in PyTorch.

Measures bias, variance and wall time of per-sample gradient estimators against objectives
with exact (or estimated) gradients. Start with :func:`compare`; add an estimator by subclassing
:class:`Estimator` and registering it with :func:`register_estimator`; benchmark your own model
with :meth:`ModelObjective.define` and :func:`register_objective`.
"""

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
