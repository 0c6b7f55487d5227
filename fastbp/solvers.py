"""Optimizers on the flat parameter buffer: sgd (momentum, Nesterov), adam,
learning-rate schedules, and L-BFGS through ``scipy.optimize``.

Nothing here knows about estimators. The stochastic update rules are the
reference that the compiled kernels reproduce; they follow scikit-learn's
``_stochastic_optimizers`` step for step (Adam in its epsilon-hat form with
the bias corrections folded into one step size per batch).
"""

from dataclasses import dataclass

import numpy as np
import scipy.optimize

SGD, ADAM = 0, 1
SOLVER_CODES = {"sgd": SGD, "adam": ADAM}


@dataclass
class Hyper:
    """Hyper-parameters that stay fixed during an epoch."""

    alpha: float = 0.0
    momentum: float = 0.9
    nesterov: bool = True
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8


class OptState:
    """Mutable optimizer state: buffers shaped like ``params``, step counter
    and the current learning rate.

    ``t`` counts Adam updates (batches), as scikit-learn's ``AdamOptimizer.t``.
    """

    def __init__(self, solver, n_params, dtype, learning_rate_init,
                 lr_schedule="constant", power_t=0.5):
        if solver not in SOLVER_CODES:
            raise ValueError(f"Unknown stochastic solver {solver!r}.")
        self.solver = solver
        self.code = SOLVER_CODES[solver]
        self.learning_rate_init = float(learning_rate_init)
        self.learning_rate = float(learning_rate_init)
        self.lr_schedule = lr_schedule
        self.power_t = float(power_t)
        self.t = 0
        # velocity (sgd) or first moment (adam); second moment (adam only).
        self.m = np.zeros(n_params, dtype=dtype)
        self.v = np.zeros(n_params if solver == "adam" else 0, dtype=dtype)

    def astype(self, dtype):
        """Cast the buffers (a warm start on data of another dtype)."""
        self.m = self.m.astype(dtype)
        self.v = self.v.astype(dtype)
        return self

    def save(self, into=None):
        """A copy of the state (into the dict ``into`` when given, reusing its
        buffers) for :meth:`restore`."""
        if into is None or into["m"].shape != self.m.shape or into["m"].dtype != self.m.dtype:
            into = {"m": self.m.copy(), "v": self.v.copy()}
        else:
            into["m"][...] = self.m
            into["v"][...] = self.v
        into["t"] = self.t
        into["learning_rate"] = self.learning_rate
        return into

    def restore(self, saved):
        """Go back to the state :meth:`save` recorded."""
        self.m[...] = saved["m"]
        self.v[...] = saved["v"]
        self.t = saved["t"]
        self.learning_rate = saved["learning_rate"]

    # ---- schedules, called between epochs by the estimator
    def iteration_ends(self, time_step):
        if self.solver == "sgd" and self.lr_schedule == "invscaling":
            self.learning_rate = self.learning_rate_init / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        """True to stop; for the 'adaptive' sgd schedule, divide the rate by 5
        and go on while it is above 1e-6."""
        if self.solver != "sgd" or self.lr_schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + " Setting learning rate to %f" % self.learning_rate)
        return False


def adam_step_size(state, hyper):
    """Adam's bias-corrected step size for update number ``state.t``."""
    t = state.t
    return state.learning_rate_init * np.sqrt(1 - hyper.beta_2**t) / (1 - hyper.beta_1**t)


def step(params, grad, state, hyper):
    """One optimizer update of ``params`` (in place) from ``grad``."""
    if state.code == SGD:
        lr = state.learning_rate
        mu = hyper.momentum
        vel = state.m
        vel *= mu
        vel -= lr * grad
        if hyper.nesterov:
            params += mu * vel - lr * grad
        else:
            params += vel
    else:
        state.t += 1
        b1, b2 = hyper.beta_1, hyper.beta_2
        m, v = state.m, state.v
        m *= b1
        m += (1 - b1) * grad
        v *= b2
        v += (1 - b2) * grad**2
        lr = adam_step_size(state, hyper)
        params += -lr * m / (np.sqrt(v) + hyper.epsilon)


# Below this many multiply-adds per loss evaluation, L-BFGS runs with one
# BLAS thread: OpenBLAS's thread start-up dominates tiny products (10-15x
# slower with 2 threads on ~100-parameter fits, measured).
SMALL_LBFGS_WORK = 5e7


def minimize_lbfgs(fun, x0, *, max_iter, max_fun, tol, callback=None, work=None):
    """Run scipy's L-BFGS-B on ``fun(x) -> (loss, grad)`` as scikit-learn does.

    ``work`` (multiply-adds of one evaluation) below ``SMALL_LBFGS_WORK``
    limits BLAS to one thread for the run.
    """
    from contextlib import nullcontext

    from ._blas_threads import blas_limit

    small = work is not None and work < SMALL_LBFGS_WORK
    with blas_limit(1) if small else nullcontext():
        return scipy.optimize.minimize(
            fun,
            x0,
            method="L-BFGS-B",
            jac=True,
            callback=callback,
            options={"maxfun": max_fun, "maxiter": max_iter, "gtol": tol},
        )
