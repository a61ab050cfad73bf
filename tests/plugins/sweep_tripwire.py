"""REINFORCE that logs every task it computes and can stop a sweep at one of them (for tests).

`tripwire` appends the objective's setting k to the file GRADBENCH_TRIPWIRE_LOG on each call.
When k equals GRADBENCH_TRIPWIRE_AT it stops the sweep: GRADBENCH_TRIPWIRE=interrupt raises
KeyboardInterrupt (a user's Ctrl-C), GRADBENCH_TRIPWIRE=kill sends its own process SIGKILL (a
crash: no handler, no cleanup); GRADBENCH_TRIPWIRE=fail raises an error, so that task's pair
fails (an out-of-memory, say) and the sweep goes on. Without GRADBENCH_TRIPWIRE it only logs.
"""

import os
import signal

import gradbench
from gradbench.estimators.reinforce import Reinforce


@gradbench.register_estimator
class Tripwire(Reinforce):
    name = "tripwire"
    description = "REINFORCE that logs its tasks and can stop the sweep (tests)"

    def estimate(self, objective, params, n, generator):
        k = objective.config["k"]
        with open(os.environ["GRADBENCH_TRIPWIRE_LOG"], "a") as log:
            log.write(f"{k:g}\n")
        if float(os.environ.get("GRADBENCH_TRIPWIRE_AT", "nan")) == k:
            action = os.environ.get("GRADBENCH_TRIPWIRE")
            if action == "interrupt":
                raise KeyboardInterrupt
            if action == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if action == "fail":
                raise RuntimeError("tripwire: a failing pair")
        return super().estimate(objective, params, n, generator)
