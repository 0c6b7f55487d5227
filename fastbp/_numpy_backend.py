"""The reference backend: forward, backward and the epoch loop in NumPy/SciPy.

Readable first. The compiled backend must give the same numbers (see
tests/test_parity.py). The order of floating-point operations follows
scikit-learn's MLP so that fits agree with it to rounding:

* deltas are kept *unnormalised* (``Z_L - Y``, times the sample weights) and
  each gradient is divided by the batch weight ``n`` (or ``sum(s)``) last:
  ``dW = (Z^T D + alpha W) / n``, ``db = sum(D) / n``;
* the loss is ``mean_i loss_i + alpha / (2 n) * sum ||W||^2``.
"""

import numpy as np
import scipy.sparse as sp

from . import activations as act
from .solvers import step

name = "numpy"


def _dot(A, B):
    if sp.issparse(A):
        return np.asarray(A @ B)
    return A @ B


def _maxout(H, k):
    """Max over each unit's k contiguous columns; returns (Z, argmax)."""
    n, cols = H.shape
    pieces = H.reshape(n, cols // k, k)
    arg = pieces.argmax(axis=2)  # first maximum on ties
    Z = np.take_along_axis(pieces, arg[:, :, None], axis=2)[:, :, 0]
    return Z, arg


def _maxout_backward(dZ, arg, k):
    """Route dJ/dZ to the arg-max piece of each unit: dJ/dH."""
    n, units = dZ.shape
    D = np.zeros((n, units, k), dtype=dZ.dtype)
    np.put_along_axis(D, arg[:, :, None], dZ[:, :, None], axis=2)
    return D.reshape(n, units * k)


def _forward_train(net, coefs, intercepts, X):
    """Forward pass keeping every layer's output (and maxout's arg-max).

    Returns ``(Z, args, H_L)``: ``Z[0] = X``, ``Z[l]`` the output of layer l;
    ``args[l]`` the maxout arg-max of layer l (or None); ``H_L`` the output
    layer's pre-activation (used by the loss).
    """
    L = net.n_layers - 1
    Z = [X]
    args = [None]
    H_L = None
    for i in range(L):
        H = _dot(Z[i], coefs[i])
        H += intercepts[i]
        if i < L - 1:
            if net.activation == "maxout":
                H, arg = _maxout(H, net.maxout_pieces)
                args.append(arg)
            else:
                act.FORWARD[net.activation](H)
                args.append(None)
        else:
            H_L = H.copy() if net.loss == "poisson" else None
            act.FORWARD[net.out_activation](H)
            args.append(None)
        Z.append(H)
    return Z, args, H_L


def forward(net, params, X, logits=False):
    """Predict path: the output layer's activation ``Z_L`` (or its
    pre-activation ``H_L`` when ``logits=True``)."""
    coefs, intercepts = net.views(params)
    L = net.n_layers - 1
    Z = X
    for i in range(L):
        H = _dot(Z, coefs[i])
        H += intercepts[i]
        if i < L - 1:
            if net.activation == "maxout":
                H, _ = _maxout(H, net.maxout_pieces)
            else:
                act.FORWARD[net.activation](H)
        elif not logits:
            act.FORWARD[net.out_activation](H)
        Z = H
    return Z


def _loss_grad_into(net, params, X, Y, sample_weight, alpha, grad):
    """Loss of one batch; writes the flat gradient into ``grad``."""
    coefs, intercepts = net.views(params)
    coef_grads, intercept_grads = net.views(grad)
    n = X.shape[0]
    Z, args, H_L = _forward_train(net, coefs, intercepts, X)
    out = Z[-1]
    per_sample = act.loss_function(net.out_activation, net.loss)(Y, out, H_L)
    if sample_weight is None:
        sw_sum = n
        loss = per_sample.mean()
    else:
        sw_sum = sample_weight.sum()
        loss = np.dot(per_sample, sample_weight) / sw_sum
    values = 0.0
    for W in coefs:
        w = W.ravel()
        values += np.dot(w, w)
    loss += (0.5 * alpha) * values / sw_sum

    # Output delta (unnormalised): Z_L - Y for the canonical pairs, else
    # times f'_L written in terms of the output.
    D = out - Y
    if not net.canonical_output:
        act.DERIVATIVE[net.out_activation](out, D)
    if sample_weight is not None:
        D *= sample_weight.reshape(-1, 1)

    L = net.n_layers - 1
    for i in range(L - 1, -1, -1):
        cg = _dot(Z[i].T, D) if not sp.issparse(Z[i]) else np.asarray(Z[i].T @ D)
        cg += alpha * coefs[i]
        cg /= sw_sum
        coef_grads[i][...] = cg
        intercept_grads[i][...] = np.sum(D, axis=0) / sw_sum
        if i > 0:
            dZ = D @ coefs[i].T
            if net.activation == "maxout":
                D = _maxout_backward(dZ, args[i], net.maxout_pieces)
            else:
                D = act.DERIVATIVE[net.activation](Z[i], dZ)
    return float(loss)


def loss_grad(net, params, X, Y, sample_weight=None, alpha=0.0, grad_out=None):
    """Loss and flat gradient of one batch (used by lbfgs and ``backprop``)."""
    grad = np.empty_like(params) if grad_out is None else grad_out
    loss = _loss_grad_into(net, params, X, Y, sample_weight, alpha, grad)
    return loss, grad


def train_epoch(net, params, opt_state, X, Y, sample_weight, order, batch_size, hyper):
    """One pass over the rows ``order`` in minibatches; updates ``params`` and
    ``opt_state`` in place and returns the mean batch loss (weighted by batch
    size, as scikit-learn reports it)."""
    n = len(order)
    grad = np.empty_like(params)
    accumulated = 0.0
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        sw = None if sample_weight is None else sample_weight[idx]
        loss = _loss_grad_into(net, params, X[idx], Y[idx], sw, hyper.alpha, grad)
        accumulated += loss * len(idx)
        step(params, grad, opt_state, hyper)
    return accumulated / n
