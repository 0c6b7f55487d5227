"""``fastbp.backprop``: the algorithm itself, for checking and teaching."""

from numbers import Integral

import numpy as np
import scipy.sparse as sp

from . import activations as act
from .backends import get_backend
from .network import Network


def backprop(
    X,
    y,
    coefs,
    intercepts,
    *,
    activation="relu",
    out_activation="identity",
    loss="squared_error",
    alpha=0.0,
    sample_weight=None,
    maxout_pieces=2,
    backend="auto",
):
    """Loss and gradients of a multilayer perceptron on one batch.

    Forward pass ``H_l = Z_{l-1} W_l + b_l``, ``Z_l = f_l(H_l)``, then the
    backward pass ``dJ/dW_l = Z_{l-1}^T D_l``, ``dJ/db_l = sum_i D_l``,
    ``D_{l-1} = (D_l W_l^T) * f'_{l-1}``.

    Parameters
    ----------
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Inputs. float32 X computes in float32, anything else in float64.
    y : array-like of shape (n_samples, n_outputs)
        Targets, 2-D: one-hot rows for ``softmax``, 0/1 for ``logistic`` with
        log_loss.
    coefs : list of array-like
        ``coefs[l]`` of shape (fan_in, fan_out); a maxout hidden layer with
        ``u`` units has ``u * maxout_pieces`` columns.
    intercepts : list of array-like
        ``intercepts[l]`` of shape (fan_out,).
    activation : str, default="relu"
        Hidden activation: identity, logistic (sigmoid), tanh, relu, softplus,
        maxout.
    out_activation : str, default="identity"
        identity, logistic, tanh, relu, softplus, exp or softmax.
    loss : {"squared_error", "log_loss", "poisson"}, default="squared_error"
        ``squared_error`` is ``1/(2n) sum_i sum_k (z_ik - y_ik)^2``;
        ``log_loss`` pairs with softmax or logistic outputs; ``poisson`` (half
        deviance) with an exp output.
    alpha : float, default=0.0
        L2 penalty ``alpha / (2 n) * sum ||W||^2`` (``n`` replaced by the sum
        of the sample weights when given).
    sample_weight : array-like of shape (n_samples,), default=None
        Per-sample weights; the loss is their weighted mean.
    maxout_pieces : int, default=2
        Pieces per maxout unit.
    backend : {"auto", "cython", "numpy"}, default="auto"

    Returns
    -------
    loss : float
    coef_grads : list of ndarray
        Same shapes as ``coefs``.
    intercept_grads : list of ndarray
        Same shapes as ``intercepts``.

    Examples
    --------
    The classic 3-2-2 network with logistic units and squared error:

    >>> import numpy as np
    >>> from fastbp import backprop
    >>> loss, dW, db = backprop(
    ...     [[1.0, 4.0, 5.0]], [[0.1, 0.05]],
    ...     [np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]),
    ...      np.array([[0.7, 0.8], [0.9, 0.1]])],
    ...     [np.array([0.5, 0.5]), np.array([0.5, 0.5])],
    ...     activation="logistic", out_activation="logistic")
    >>> round(loss, 6)
    0.593245
    """
    activation = act.canonical(activation)
    out_activation = act.canonical(out_activation)
    if activation not in act.HIDDEN_ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {list(act.HIDDEN_ACTIVATIONS)}, got {activation!r}."
        )
    if isinstance(maxout_pieces, bool) or not isinstance(maxout_pieces, Integral) or maxout_pieces < 2:
        raise ValueError(f"maxout_pieces must be an integer >= 2, got {maxout_pieces!r}.")
    if not isinstance(coefs, (list, tuple)) or not isinstance(intercepts, (list, tuple)):
        raise TypeError("coefs and intercepts must be lists of arrays.")
    if len(coefs) == 0 or len(coefs) != len(intercepts):
        raise ValueError(
            f"coefs and intercepts must be non-empty lists of equal length, got "
            f"{len(coefs)} and {len(intercepts)}."
        )
    if sp.issparse(X):
        dtype = np.float32 if X.dtype == np.float32 else np.float64
        X = sp.csr_matrix(X, dtype=dtype)
    else:
        X = np.asarray(X)
        dtype = np.float32 if X.dtype == np.float32 else np.float64
        X = np.ascontiguousarray(X, dtype=dtype)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X must be a non-empty 2-D array, got shape {X.shape}.")
    y = np.ascontiguousarray(y, dtype=dtype)
    if y.ndim != 2:
        raise ValueError(f"y must be 2-D of shape (n_samples, n_outputs), got shape {y.shape}.")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}.")
    data = X.data if sp.issparse(X) else X
    if not (np.isfinite(data).all() and np.isfinite(y).all()):
        raise ValueError("X and y must not contain NaN or infinity.")
    coefs = [np.asarray(W, dtype=dtype) for W in coefs]
    intercepts = [np.asarray(b, dtype=dtype) for b in intercepts]
    for i, (W, b) in enumerate(zip(coefs, intercepts)):
        if W.ndim != 2 or b.ndim != 1 or W.shape[1] != b.shape[0]:
            raise ValueError(
                f"coefs[{i}] of shape {W.shape} and intercepts[{i}] of shape "
                f"{b.shape} don't fit together."
            )
    pieces = maxout_pieces if activation == "maxout" else 1
    layer_units = [X.shape[1]]
    for i, W in enumerate(coefs):
        if W.shape[0] != layer_units[-1]:
            raise ValueError(
                f"coefs[{i}] has {W.shape[0]} rows, but the layer before it has "
                f"{layer_units[-1]} units."
            )
        last = i == len(coefs) - 1
        if not last and W.shape[1] % pieces:
            raise ValueError(
                f"coefs[{i}] has {W.shape[1]} columns, not a multiple of "
                f"maxout_pieces={maxout_pieces}."
            )
        layer_units.append(W.shape[1] if last else W.shape[1] // pieces)
    if layer_units[-1] != y.shape[1]:
        raise ValueError(
            f"The output layer has {layer_units[-1]} units but y has {y.shape[1]} columns."
        )
    act.check_pairing(out_activation, loss, y.shape[1])
    if loss == "poisson" and np.any(y < 0):
        raise ValueError("loss='poisson' needs y >= 0.")
    if not np.isscalar(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a non-negative float, got {alpha!r}.")
    if sample_weight is not None:
        sample_weight = np.ascontiguousarray(sample_weight, dtype=dtype)
        if sample_weight.shape != (X.shape[0],):
            raise ValueError(
                f"sample_weight must have shape ({X.shape[0]},), got {sample_weight.shape}."
            )
        if not np.isfinite(sample_weight).all() or sample_weight.sum() <= 0:
            raise ValueError("sample_weight must be finite with a positive sum.")

    net = Network(layer_units, activation, out_activation, loss, maxout_pieces, dtype)
    params = net.pack(coefs, intercepts)
    loss_value, grad = get_backend(backend).loss_grad(
        net, params, X, y, sample_weight, float(alpha)
    )
    coef_grads, intercept_grads = net.views(grad)
    return float(loss_value), [g.copy() for g in coef_grads], [g.copy() for g in intercept_grads]
