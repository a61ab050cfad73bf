"""gradbench: benchmark Monte Carlo gradient estimators in PyTorch.

Measures bias, variance and wall time of per-sample gradient estimators against objectives
with exact gradients. Start with :func:`compare`; add an estimator by subclassing
:class:`Estimator` and registering it with :func:`register_estimator`.
"""

from gradbench.api import compare, run_comparison
from gradbench.engine import RunConfig, RunResult, run_pair
from gradbench.errors import InputError
from gradbench.estimator import Estimator, per_sample_gradients
from gradbench.objective import Capability, Objective
from gradbench.params import ParamLayout
from gradbench.registry import register_estimator, register_objective
from gradbench.results import Comparison
from gradbench.settings import Setting
from gradbench.stats import GradientStatistics, Summary

__all__ = [
    "Capability",
    "Comparison",
    "Estimator",
    "GradientStatistics",
    "InputError",
    "Objective",
    "ParamLayout",
    "RunConfig",
    "RunResult",
    "Setting",
    "Summary",
    "compare",
    "per_sample_gradients",
    "register_estimator",
    "register_objective",
    "run_comparison",
    "run_pair",
]
__version__ = "0.1.0"
