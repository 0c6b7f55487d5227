"""Activation functions, their derivatives and the losses, as lookup tables.

Python owns the names; kernels see integer codes. Every table is keyed by the
canonical name (``"sigmoid"`` is an alias resolved by :func:`canonical`).

Forward functions work in place on the pre-activation ``H`` and leave the
activation ``Z`` there. Derivatives take the activation's *output* ``Z`` and
scale ``delta`` in place, so only the forward outputs need to be stored.
Two kinds of exceptions:

* "gelu" and "silu" are not invertible: their derivative is a function of
  the pre-activation ``H`` (``DERIVATIVE_AT``), which the backends evaluate
  in the forward pass, where ``H`` is at hand (and, for gelu, erf already
  computed), and keep for exactly those layers
  (:data:`NEEDS_PRE_ACTIVATION`);
* maxout's forward pass reduces ``units * k`` columns to ``units``, and its
  backward pass routes ``delta`` to the arg-max piece; both live in the
  backends because they change the array's shape.

"leaky_relu" takes the slope of its negative part as an argument
(``negative_slope``); every other function ignores it.
"""

from math import sqrt

import numpy as np
from scipy.special import erf, expit, logsumexp

# Integer codes shared with the compiled kernels (see _cython_backend.pyx).
IDENTITY, LOGISTIC, TANH, RELU, SOFTPLUS, MAXOUT, EXP, SOFTMAX = range(8)
LEAKY_RELU, ELU, SELU, GELU, SILU = range(8, 13)

CODES = {
    "identity": IDENTITY,
    "logistic": LOGISTIC,
    "tanh": TANH,
    "relu": RELU,
    "softplus": SOFTPLUS,
    "maxout": MAXOUT,
    "exp": EXP,
    "softmax": SOFTMAX,
    "leaky_relu": LEAKY_RELU,
    "elu": ELU,
    "selu": SELU,
    "gelu": GELU,
    "silu": SILU,
}

ALIASES = {"sigmoid": "logistic", "swish": "silu"}

HIDDEN_ACTIVATIONS = (
    "identity", "logistic", "tanh", "relu", "softplus", "maxout",
    "leaky_relu", "elu", "selu", "gelu", "silu",
)
# Hidden activations whose derivative needs the pre-activation H (besides
# maxout, which needs it for its arg-max): the backends keep f'(H) for them.
NEEDS_PRE_ACTIVATION = ("gelu", "silu")

# SELU's self-normalising constants (Klambauer et al., 2017), and their
# product, the limit of the negative part.
SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805
SELU_SCALE_ALPHA = SELU_SCALE * SELU_ALPHA
# 1/sqrt(2) and 1/sqrt(2 pi), for GELU's x * Phi(x) and its derivative.
INV_SQRT2 = 1 / sqrt(2)
INV_SQRT_2PI = 1 / sqrt(2 * np.pi)
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
    """Return the canonical spelling of an activation name (of each name, as
    a tuple, for a list/tuple of them: one per hidden layer)."""
    if isinstance(name, (list, tuple)):
        return tuple(canonical(n) for n in name)
    return ALIASES.get(name, name)


def hidden_activations(activation, n_hidden):
    """The canonical hidden activation of each of ``n_hidden`` layers.

    ``activation`` is one name for every hidden layer, or a list/tuple with
    one name per hidden layer. Raises ValueError naming ``activation`` for an
    unknown name or a list of the wrong length.
    """
    names = sorted(set(HIDDEN_ACTIVATIONS) | set(ALIASES))
    if isinstance(activation, str):
        entries = [activation] * n_hidden
        single = True
    elif isinstance(activation, (list, tuple)):
        entries = list(activation)
        single = False
    else:
        raise TypeError(
            "activation must be a str or a list/tuple of str (one per hidden "
            f"layer), got {activation!r}."
        )
    for i, name in enumerate(entries):
        if not isinstance(name, str) or canonical(name) not in HIDDEN_ACTIVATIONS:
            where = "activation" if single else f"activation[{i}]"
            raise ValueError(
                f"{where} must be one of {names}, got {name!r}."
            )
    if len(entries) != n_hidden:
        raise ValueError(
            f"activation has {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, "
            "but the network has "
            f"{n_hidden} hidden layer{'s' if n_hidden != 1 else ''}: give one "
            "activation per hidden layer (or one name for all)."
        )
    return tuple(canonical(name) for name in entries)


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


def leaky_relu(H, negative_slope=0.01):
    # h if h >= 0 else slope * h; NaN stays NaN.
    neg = H < 0
    H[neg] *= H.dtype.type(negative_slope)
    return H


def elu(H):
    # h if h > 0 else e^h - 1 (expm1 only of h <= 0: never overflows).
    np.copyto(H, np.expm1(np.minimum(H, 0)), where=~(H > 0))
    return H


def selu(H):
    # scale * h if h > 0 else scale * alpha * (e^h - 1)
    neg = ~(H > 0)
    E = np.expm1(np.minimum(H, 0))
    E *= H.dtype.type(SELU_SCALE_ALPHA)
    H *= H.dtype.type(SELU_SCALE)
    np.copyto(H, E, where=neg)
    return H


def _gauss_cdf(H):
    """Phi(h) = (1 + erf(h / sqrt(2))) / 2, in H's dtype."""
    P = erf(H * H.dtype.type(INV_SQRT2))
    P += 1
    P *= H.dtype.type(0.5)
    return P


def gelu(H):
    # h * Phi(h), the exact (erf) form
    H *= _gauss_cdf(H)
    return H


def silu(H):
    # h * sigmoid(h); expit never overflows
    H *= expit(H)
    return H


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
    "leaky_relu": leaky_relu,  # default slope; apply() passes the network's
    "elu": elu,
    "selu": selu,
    "gelu": gelu,
    "silu": silu,
}


def apply(name, H, negative_slope=0.01):
    """``H = f(H)`` in place for a hidden or output activation (not maxout)."""
    if name == "leaky_relu":
        return leaky_relu(H, negative_slope)
    return FORWARD[name](H)

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


def leaky_relu_derivative(Z, delta, negative_slope=0.01):
    # f' = 1 for Z > 0, negative_slope otherwise (Z has H's sign for any
    # slope > 0; slope 0 is relu)
    delta[Z <= 0] *= delta.dtype.type(negative_slope)
    return delta


def elu_derivative(Z, delta):
    # f'(h) = e^h = Z + 1 for h <= 0
    neg = Z <= 0
    delta[neg] *= Z[neg] + 1
    return delta


def selu_derivative(Z, delta):
    # f'(h) = scale for h > 0, scale * alpha * e^h = Z + scale * alpha else
    neg = Z <= 0
    factor = np.where(neg, Z + Z.dtype.type(SELU_SCALE_ALPHA), Z.dtype.type(SELU_SCALE))
    delta *= factor
    return delta


DERIVATIVE = {
    "identity": identity_derivative,
    "logistic": logistic_derivative,
    "tanh": tanh_derivative,
    "relu": relu_derivative,
    "softplus": softplus_derivative,
    "exp": exp_derivative,
    "leaky_relu": leaky_relu_derivative,  # default slope, as FORWARD
    "elu": elu_derivative,
    "selu": selu_derivative,
}

# f'(H) as a function of the pre-activation H (a new array): gelu and silu.


def gelu_derivative_at(H):
    # Phi(h) + h * phi(h), phi(h) = e^(-h^2 / 2) / sqrt(2 pi)
    with np.errstate(over="ignore"):  # h^2 -> inf for huge |h|: phi = 0
        g = H * H
    g *= H.dtype.type(-0.5)
    np.exp(g, out=g)
    g *= H.dtype.type(INV_SQRT_2PI)
    g *= H
    g += _gauss_cdf(H)
    return g


def silu_derivative_at(H):
    # s (1 + h (1 - s)), s = sigmoid(h)
    s = expit(H)
    g = 1 - s
    g *= H
    g += 1
    g *= s
    return g


DERIVATIVE_AT = {"gelu": gelu_derivative_at, "silu": silu_derivative_at}


def derivative(name, Z, H, delta, negative_slope=0.01):
    """``delta *= f'(H)`` in place for a hidden activation (not maxout), from
    its output ``Z`` or, for gelu/silu, its pre-activation ``H``."""
    if name in DERIVATIVE_AT:
        delta *= DERIVATIVE_AT[name](H)
        return delta
    if name == "leaky_relu":
        return leaky_relu_derivative(Z, delta, negative_slope)
    return DERIVATIVE[name](Z, delta)

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
