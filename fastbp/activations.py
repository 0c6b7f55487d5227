"""Activation functions, their derivatives and the losses, as lookup tables.

Python owns the names; kernels see integer codes. Every table is keyed by the
canonical name (``"sigmoid"`` is an alias resolved by :func:`canonical`).

Forward functions work in place on the pre-activation ``H`` and leave the
activation ``Z`` there. Derivatives take the activation's *output* ``Z`` and
scale ``delta`` in place, so only the forward outputs need to be stored.
Maxout is the exception: its forward pass reduces ``units * k`` columns to
``units``, and its backward pass routes ``delta`` to the arg-max piece; both
live in the backends because they change the array's shape.
"""

import numpy as np
from scipy.special import expit, logsumexp

# Integer codes shared with the compiled kernels (see _cython_backend.pyx).
IDENTITY, LOGISTIC, TANH, RELU, SOFTPLUS, MAXOUT, EXP, SOFTMAX = range(8)

CODES = {
    "identity": IDENTITY,
    "logistic": LOGISTIC,
    "tanh": TANH,
    "relu": RELU,
    "softplus": SOFTPLUS,
    "maxout": MAXOUT,
    "exp": EXP,
    "softmax": SOFTMAX,
}

ALIASES = {"sigmoid": "logistic"}

HIDDEN_ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "softplus", "maxout")
REGRESSOR_OUT_ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "softplus", "exp")
OUT_ACTIVATIONS = REGRESSOR_OUT_ACTIVATIONS + ("softmax",)

SQUARED_ERROR, LOG_LOSS, POISSON = range(3)
LOSS_CODES = {"squared_error": SQUARED_ERROR, "log_loss": LOG_LOSS, "poisson": POISSON}

# (output activation, loss) pairs whose output delta is simply Z - Y:
# the derivative of the loss and of the output activation cancel.
CANONICAL_PAIRS = {
    ("identity", "squared_error"),
    ("logistic", "log_loss"),
    ("softmax", "log_loss"),
    ("exp", "poisson"),
}


def canonical(name):
    """Return the canonical spelling of an activation name."""
    return ALIASES.get(name, name)


# ---------------------------------------------------------------- forward


def identity(H):
    return H


def logistic(H):
    # expit never overflows and never warns.
    return expit(H, out=H)


def tanh(H):
    return np.tanh(H, out=H)


def relu(H):
    return np.maximum(H, 0, out=H)


def softplus(H):
    # log(1 + e^h) = max(h, 0) + log1p(e^-|h|): finite for any finite h.
    pos = np.maximum(H, 0)
    np.abs(H, out=H)
    np.negative(H, out=H)
    np.exp(H, out=H)
    np.log1p(H, out=H)
    H += pos
    return H


def exp(H):
    with np.errstate(over="ignore"):
        return np.exp(H, out=H)


def softmax(H):
    H -= H.max(axis=1, keepdims=True)
    np.exp(H, out=H)
    H /= H.sum(axis=1, keepdims=True)
    return H


FORWARD = {
    "identity": identity,
    "logistic": logistic,
    "tanh": tanh,
    "relu": relu,
    "softplus": softplus,
    "exp": exp,
    "softmax": softmax,
}

# ------------------------------------------------------------ derivatives
# Each takes the activation output Z and multiplies delta by f'(H) in place.


def identity_derivative(Z, delta):
    return delta


def logistic_derivative(Z, delta):
    delta *= Z
    delta *= 1 - Z
    return delta


def tanh_derivative(Z, delta):
    delta *= 1 - Z**2
    return delta


def relu_derivative(Z, delta):
    delta[Z <= 0] = 0
    return delta


def softplus_derivative(Z, delta):
    # sigmoid(h) = 1 - exp(-softplus(h)), accurate for small Z too.
    delta *= -np.expm1(-Z)
    return delta


def exp_derivative(Z, delta):
    delta *= Z
    return delta


DERIVATIVE = {
    "identity": identity_derivative,
    "logistic": logistic_derivative,
    "tanh": tanh_derivative,
    "relu": relu_derivative,
    "softplus": softplus_derivative,
    "exp": exp_derivative,
}

# ----------------------------------------------------------------- losses
# Per-sample losses, shape (n,), summed over outputs. The batch loss is
# their (weighted) mean. Z is the output activation, H_L its pre-activation.


def squared_error(Y, Z, H):
    return 0.5 * ((Z - Y) ** 2).sum(axis=1)


def _clipped(Z):
    eps = np.finfo(Z.dtype).eps
    return np.clip(Z, eps, 1 - eps)


def multiclass_log_loss(Y, Z, H):
    P = _clipped(Z)
    return -(Y * np.log(P)).sum(axis=1)


def binary_log_loss(Y, Z, H):
    P = _clipped(Z)
    return -(Y * np.log(P) + (1 - Y) * np.log(1 - P)).sum(axis=1)


def poisson(Y, Z, H):
    # Half Poisson deviance y log(y/z) - y + z, with log z = h (no underflow).
    from scipy.special import xlogy

    with np.errstate(over="ignore"):
        return (xlogy(Y, Y) - Y * H - Y + Z).sum(axis=1)


def loss_function(out_activation, loss):
    """The per-sample loss for an (output activation, loss) pair."""
    if loss == "squared_error":
        return squared_error
    if loss == "poisson":
        return poisson
    if out_activation == "softmax":
        return multiclass_log_loss
    return binary_log_loss


def check_pairing(out_activation, loss, n_outputs=None):
    """Raise ValueError for an output activation the loss can't be paired with."""
    if loss not in LOSS_CODES:
        raise ValueError(
            f"loss must be one of {sorted(LOSS_CODES)}, got {loss!r}."
        )
    if out_activation not in OUT_ACTIVATIONS:
        raise ValueError(
            f"out_activation must be one of {sorted(OUT_ACTIVATIONS)}, "
            f"got {out_activation!r}."
        )
    if loss == "log_loss" and out_activation not in ("softmax", "logistic"):
        raise ValueError(
            "loss='log_loss' needs out_activation 'softmax' or 'logistic', "
            f"got {out_activation!r}."
        )
    if loss == "poisson" and out_activation != "exp":
        raise ValueError(
            f"loss='poisson' needs out_activation='exp', got {out_activation!r}."
        )
    if loss == "squared_error" and out_activation == "softmax":
        raise ValueError("out_activation='softmax' is only paired with log_loss.")
    if out_activation == "softmax" and n_outputs is not None and n_outputs < 2:
        raise ValueError("out_activation='softmax' needs at least 2 outputs.")


# ---------------------------------------------------------- probabilities
# Class probabilities are floored at the dtype's smallest normal number, so
# log(predict_proba) stays finite and equals predict_log_proba.


def floor_proba(P):
    """Floor probabilities (in place) at the dtype's smallest normal number."""
    return np.maximum(P, np.finfo(P.dtype).tiny, out=P)


def binary_proba(H):
    """``[1 - p, p]`` from the logits ``H`` of shape (n, 1) of one logistic
    output; ``1 - p = expit(-h)`` is exact where ``p`` rounds to 1."""
    h = H[:, 0]
    P = np.empty((H.shape[0], 2), dtype=H.dtype)
    expit(-h, out=P[:, 0])
    expit(h, out=P[:, 1])
    return floor_proba(P)


def log_proba_from_logits(H, out_activation):
    """Log class probabilities from the output logits ``H``, in log-sum-exp
    form so saturated outputs stay finite; floored as :func:`floor_proba`.
    One logistic output (binary) gives the two columns ``[log(1 - p), log p]``."""
    if out_activation == "softmax":
        log_p = H - logsumexp(H, axis=1, keepdims=True)
    else:
        # logistic: log p = -log(1 + e^-h), log(1 - p) = -log(1 + e^h)
        log_p = -np.logaddexp(0, -H)
        if H.shape[1] == 1:
            log_p = np.hstack([-np.logaddexp(0, H), log_p])
    return np.maximum(log_p, np.log(np.finfo(log_p.dtype).tiny), out=log_p)
