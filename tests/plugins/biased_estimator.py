"""A deliberately biased estimator that claims to be unbiased: 1.1 × the pathwise gradient.

`gradbench check biased-reparam --plugin tests/plugins/biased_estimator.py` must fail.
"""

import gradbench
from gradbench.estimators.reparam import Reparam


@gradbench.register_estimator
class BiasedReparam(Reparam):
    name = "biased-reparam"
    description = "1.1 × the pathwise gradient (deliberately biased)"

    def estimate(self, objective, params, n, generator):
        return 1.1 * super().estimate(objective, params, n, generator)
