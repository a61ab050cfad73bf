"""gradbench: benchmark Monte Carlo gradient estimators in PyTorch.

Measures bias, variance and wall time of per-sample gradient estimators against objectives
with exact gradients. Start with :func:`compare`; add an estimator by subclassing
:class:`Estimator` and registering it with :func:`register_estimator`.
"""

from gradbench.api import check, compare, run_comparison
from gradbench.conformance import ConformanceReport, check_estimator
from gradbench.engine import RunConfig, RunResult, run_pair
from gradbench.errors import InputError
from gradbench.estimator import Estimator, per_sample_gradients
from gradbench.grid import Axis
from gradbench.objective import Capability, Objective
from gradbench.params import ParamLayout
from gradbench.plugins import PluginError, load_plugin
from gradbench.registry import register_estimator, register_objective
from gradbench.results import Comparison
from gradbench.settings import Setting
from gradbench.stats import GradientStatistics, Summary
from gradbench.sweeps import SweepResult, sweep

__all__ = [
    "Axis",
    "Capability",
    "Comparison",
    "ConformanceReport",
    "Estimator",
    "GradientStatistics",
    "InputError",
    "Objective",
    "ParamLayout",
    "PluginError",
    "RunConfig",
    "RunResult",
    "Setting",
    "Summary",
    "SweepResult",
    "check",
    "check_estimator",
    "compare",
    "load_plugin",
    "per_sample_gradients",
    "register_estimator",
    "register_objective",
    "run_comparison",
    "run_pair",
    "sweep",
]
__version__ = "0.1.0"
