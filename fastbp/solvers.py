"""Optimizers on the flat parameter buffer: sgd (momentum, Nesterov), adam,
decoupled weight decay (AdamW / SGDW), gradient clipping, learning-rate
schedules, and L-BFGS through ``scipy.optimize``.

Nothing here knows about estimators. The stochastic update rules are the
reference that the compiled kernels reproduce; they follow scikit-learn's
``_stochastic_optimizers`` step for step (Adam in its epsilon-hat form with
the bias corrections folded into one step size per batch).
"""

import math
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
    # Decoupled weight decay: the weights (not the biases) are multiplied by
    # ``1 - lr * weight_decay`` at each step, lr the scheduled rate.
    weight_decay: float = 0.0
    # Global L2 norm each minibatch's gradient is clipped to (None: off).
    max_grad_norm: float | None = None
    # Inverted dropout: one rate in [0, 1) per hidden layer (empty or all 0:
    # none, and no random numbers are drawn), and the seed of the epoch's
    # masks (an int in [0, 2**64), needed when a rate is > 0). The estimator
    # draws a new seed from its random_state for each epoch; each backend
    # turns it into its own generator (the two draw different masks).
    dropout: tuple = ()
    dropout_seed: int | None = None


class OptState:
    """Mutable optimizer state: buffers shaped like ``params``, step counter
    and the current learning rate.

    ``t`` counts Adam updates (batches), as scikit-learn's ``AdamOptimizer.t``.
    ``learning_rate`` is the rate of the schedule ("constant", "invscaling",
    "adaptive" or "cosine"); a step uses :meth:`step_rate`, that rate times
    ``lr_factor`` (the warm-up), for sgd and adam alike (Adam's base rate).
    ``epoch`` counts the epochs run, for "cosine" and the warm-up over
    ``planned_epochs``.
    """

    # Defaults for states saved before these existed.
    lr_factor = 1.0
    epoch = 0
    planned_epochs = 1
    warmup_epochs = 0

    def __init__(self, solver, n_params, dtype, learning_rate_init,
                 lr_schedule="constant", power_t=0.5, planned_epochs=1,
                 warmup_fraction=0.0):
        if solver not in SOLVER_CODES:
            raise ValueError(f"Unknown stochastic solver {solver!r}.")
        self.solver = solver
        self.code = SOLVER_CODES[solver]
        self.learning_rate_init = float(learning_rate_init)
        self.learning_rate = float(learning_rate_init)
        self.lr_schedule = lr_schedule
        self.power_t = float(power_t)
        self.planned_epochs = int(planned_epochs)
        self.warmup_epochs = math.ceil(float(warmup_fraction) * self.planned_epochs)
        self.epoch = 0
        self.lr_factor = 1.0
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
        buffers) for :meth:`restore`.

        A buffer whose bits are all zero (a new state, before its first
        update) is recorded as None instead of copied: :meth:`restore` zeroes
        it. A one-epoch fit then makes no copy of the moments at all."""
        if into is None:
            into = {}
        for name in ("m", "v"):
            buffer = getattr(self, name)
            kept = into.get(name)
            if kept is not None and kept.shape == buffer.shape and kept.dtype == buffer.dtype:
                kept[...] = buffer
            elif not _bits(buffer).any():
                into[name] = None
            else:
                into[name] = buffer.copy()
        into["t"] = self.t
        into["learning_rate"] = self.learning_rate
        into["epoch"] = self.epoch
        into["lr_factor"] = self.lr_factor
        return into

    def restore(self, saved):
        """Go back to the state :meth:`save` recorded."""
        for name in ("m", "v"):
            kept = saved[name]
            getattr(self, name)[...] = 0 if kept is None else kept
        self.t = saved["t"]
        self.learning_rate = saved["learning_rate"]
        self.epoch = saved["epoch"]
        self.lr_factor = saved["lr_factor"]

    def step_rate(self):
        """The learning rate of this epoch's steps: the schedule's rate times
        the warm-up factor (sgd's rate; Adam's base rate before its bias
        correction)."""
        if self.lr_factor == 1.0:
            return self.learning_rate
        return self.learning_rate * self.lr_factor

    def epoch_begins(self):
        """Set the rate of the coming epoch (number ``self.epoch``, from 0):
        "cosine" decays ``learning_rate_init`` to 0 over the planned epochs
        after the warm-up; the warm-up ramps the rate linearly over its
        first ``warmup_epochs`` epochs (``(e + 1) / warmup_epochs``)."""
        e, warm = self.epoch, self.warmup_epochs
        if self.lr_schedule == "cosine":
            span = max(self.planned_epochs - warm, 1)
            progress = min(max(e - warm, 0) / span, 1.0)
            self.learning_rate = self.learning_rate_init * 0.5 * (1.0 + math.cos(math.pi * progress))
        self.lr_factor = (e + 1) / warm if e < warm else 1.0

    # ---- schedules, called between epochs by the estimator
    def iteration_ends(self, time_step):
        self.epoch += 1
        if self.lr_schedule == "invscaling":
            self.learning_rate = self.learning_rate_init / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        """True to stop; for the 'adaptive' schedule, divide the rate by 5
        and go on while it is above 1e-6."""
        if self.lr_schedule != "adaptive":
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


def _bits(buffer):
    """``buffer`` viewed as unsigned integers of its item size: all zero
    exactly when every element is +0.0 (-0.0 is not)."""
    return buffer.view(np.dtype(f"u{buffer.dtype.itemsize}"))


def adam_step_size(state, hyper):
    """Adam's bias-corrected step size for update number ``state.t``."""
    t = state.t
    return state.step_rate() * np.sqrt(1 - hyper.beta_2**t) / (1 - hyper.beta_1**t)


def clip_gradient(grad, max_grad_norm):
    """Scale ``grad`` (in place) to the global L2 norm ``max_grad_norm`` when
    its norm exceeds it; returns the norm before clipping."""
    norm = float(np.sqrt(np.dot(grad.astype(np.float64), grad.astype(np.float64))))
    if norm > max_grad_norm:
        grad *= grad.dtype.type(max_grad_norm / norm)
    return norm


def step(params, grad, state, hyper, n_coefs=None):
    """One optimizer update of ``params`` (in place) from ``grad``.

    ``n_coefs``: the weights are ``params[:n_coefs]`` (the rest biases), the
    part decoupled weight decay shrinks (all of ``params`` when None).
    """
    if hyper.max_grad_norm is not None:
        clip_gradient(grad, hyper.max_grad_norm)
    lr = state.step_rate()
    decay = None
    if hyper.weight_decay:
        decay = params.dtype.type(1 - lr * hyper.weight_decay)
    weights = params[:n_coefs] if n_coefs is not None else params
    if state.code == SGD:
        mu = hyper.momentum
        vel = state.m
        vel *= mu
        vel -= lr * grad
        if hyper.nesterov:
            update = mu * vel - lr * grad
        else:
            update = vel
        if decay is not None:
            weights *= decay
        params += update
    else:
        state.t += 1
        b1, b2 = hyper.beta_1, hyper.beta_2
        m, v = state.m, state.v
        m *= b1
        m += (1 - b1) * grad
        v *= b2
        v += (1 - b2) * grad**2
        lr = adam_step_size(state, hyper)
        update = -lr * m / (np.sqrt(v) + hyper.epsilon)
        if decay is not None:
            weights *= decay
        params += update


# Below this many multiply-adds per loss evaluation, L-BFGS runs with one
# BLAS thread: OpenBLAS's thread start-up dominates tiny products (10-15x
# slower with 2 threads on ~100-parameter fits, measured).
SMALL_LBFGS_WORK = 5e7


def minimize_lbfgs(fun, x0, *, max_iter, max_fun, tol, callback=None, work=None):
    """Run scipy's L-BFGS-B on ``fun(x) -> (loss, grad)`` as scikit-learn does.

    ``work`` (multiply-adds of one evaluation) below ``SMALL_LBFGS_WORK``
    limits BLAS to one thread for the run. Above it, L-BFGS-B's own BLAS
    calls (level-1, over the parameters) run on one thread while each
    evaluation chooses its threads: OpenBLAS's threads spinning after a
    threaded ``ddot`` would take the core of the evaluation's helper thread.
    """
    from ._blas_threads import blas_between, blas_limit

    small = work is not None and work < SMALL_LBFGS_WORK
    with blas_limit(1) if small else blas_between(1) as block:
        if small:
            evaluate = fun
        else:
            def evaluate(x):
                try:
                    return fun(x)
                finally:
                    block.settle()

        return scipy.optimize.minimize(
            evaluate,
            x0,
            method="L-BFGS-B",
            jac=True,
            callback=callback,
            options={"maxfun": max_fun, "maxiter": max_iter, "gtol": tol},
        )
