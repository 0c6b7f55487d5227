"""The reference backend: forward, backward and the epoch loop in NumPy/SciPy.

Readable first. The compiled backend must give the same numbers (see
tests/test_parity.py). The order of floating-point operations follows
scikit-learn's MLP so that fits agree with it to rounding:

* deltas are kept *unnormalised* (``Z_L - Y``, times the sample weights) and
  each gradient is divided by the batch weight ``n`` (or ``sum(s)``) last:
  ``dW = (Z^T D + alpha W) / n``, ``db = sum(D) / n``;
* the loss is ``mean_i loss_i + alpha / (2 n) * sum ||W||^2``.

One batch is the same steps, with the same names, as in the compiled
backend (fastbp/_cython_backend.pyx): ``_forward`` -> ``_loss_delta`` ->
``_backward`` -> ``_l2_and_scale``. Work is driven in chunks inside one
BLAS-thread session per call, as there.
"""

import time

import numpy as np
import scipy.sparse as sp

from . import _backend_input as _input
from . import activations as act
from .solvers import step

name = "numpy"

# Seconds of work per chunk of a session (see fastbp._blas_threads).
_CHUNK_SECONDS = 0.02
# A unit of work on the predict path: a block of rows of about this many
# multiply-adds (a few ms), within these bounds.
_FORWARD_BLOCK_WORK = 2**26
_FORWARD_BLOCK_ROWS = (64, 8192)


def _forward_block(net):
    lo, hi = _FORWARD_BLOCK_ROWS
    return int(min(max(_FORWARD_BLOCK_WORK // net.n_coefs, lo), hi))


def _chunked(session, n, step):
    """The offsets ``0, step, 2 step, ...`` below ``n``, driven in chunks:
    ``session.begin()`` before each chunk of about ``_CHUNK_SECONDS`` (at
    least one unit of work: the caller's loop body for one offset) and
    ``session.end(units)`` after it, as the compiled chunk kernels do."""
    start = 0
    while start < n:
        session.begin()
        t0 = time.perf_counter()
        units = 0
        while start < n and (
            units == 0 or time.perf_counter() - t0 < _CHUNK_SECONDS
        ):
            yield start
            start += step
            units += 1
        session.end(units)


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


def _draw_masks(rng, net, n, rates):
    """Inverted-dropout masks of a batch of n rows, one per hidden layer:
    None for a rate of 0, else an ``(n, units)`` array of the network's dtype
    holding 0 (dropped, probability p) or ``1 / (1 - p)`` (kept)."""
    masks = []
    for units, p in zip(net.layer_units[1:-1], rates, strict=True):
        if p > 0:
            M = (rng.random((n, units)) >= p).astype(net.dtype)
            M *= net.dtype.type(1.0 / (1.0 - p))
            masks.append(M)
        else:
            masks.append(None)
    return masks


def _passed_on(Z, masks, i):
    """What layer i passes to layer i + 1 (and to dJ/dW_{i+1}): its output
    ``Z[i]``, times its dropout mask ``masks[i - 1]`` when it has one (the
    input ``Z[0]`` never does). Z keeps the unmasked outputs because the
    derivatives are written with them (logistic: Z(1-Z)); the masked product
    is recomputed where needed, the same numbers each time."""
    if i == 0 or masks is None or masks[i - 1] is None:
        return Z[i]
    return Z[i] * masks[i - 1]


def _hidden(net, i, H):
    """``Z_l = f_l(H_l)`` of hidden layer ``i + 1``, and what its backward
    pass needs besides ``Z_l``: maxout's arg-max, gelu/silu's derivative
    ``f'(H_l)`` (evaluated while H_l is at hand: H becomes Z in place), else
    None."""
    name = net.activations[i]
    if name == "maxout":
        return _maxout(H, net.maxout_pieces)
    kept = act.DERIVATIVE_AT[name](H) if name in act.DERIVATIVE_AT else None
    return act.apply(name, H, net.negative_slope), kept


def _forward(net, coefs, intercepts, X, masks=None, layers=None):
    """Forward pass keeping every layer (and what the backward pass needs);
    ``layers``: compute only the first that many weight layers (hidden
    layers only: ``transform``), else all.

    Returns ``(Z, args, H_L)``: ``Z[0] = X``, ``Z[l]`` the output of layer l;
    ``args[l]`` the maxout arg-max of layer l, f'(H_l) for gelu/silu, or
    None; ``H_L`` the output layer's pre-activation (used by
    the poisson loss). ``masks``: dropout masks of the hidden layers
    (:func:`_draw_masks`; training only); ``Z`` keeps the unmasked outputs,
    the next layer reads the masked ones.
    """
    L = net.n_layers - 1
    Z = [X]
    args = [None]
    H_L = None
    for i in range(L if layers is None else layers):
        # H_l = Z_{l-1} . W_l + b_l   (Z_{l-1} masked by dropout)
        H = _dot(_passed_on(Z, masks, i), coefs[i])
        H += intercepts[i]
        if i < L - 1:
            # Z_l = f(H_l)
            H, arg = _hidden(net, i, H)
            args.append(arg)
        else:
            H_L = H.copy() if net.loss == "poisson" else None
            act.FORWARD[net.out_activation](H)
            args.append(None)
        Z.append(H)
    return Z, args, H_L


def _loss_delta(net, out, H_L, Y, sample_weight):
    """Per-sample losses and the unnormalised output delta.

    Returns ``(sum_i s_i loss_i, D_L)`` (s_i = 1 without weights) with
    ``D_L = (Z_L - Y) [* f'_L(Z_L) unless canonical] [* s_i]``.
    """
    per_sample = act.loss_function(net.out_activation, net.loss)(Y, out, H_L)
    if sample_weight is None:
        total = per_sample.sum()
    else:
        total = np.dot(per_sample, sample_weight)
    # Z_L - Y for the canonical pairs, else times f'_L written in terms of
    # the output.
    D = out - Y
    if not net.canonical_output:
        act.DERIVATIVE[net.out_activation](out, D)
    if sample_weight is not None:
        D *= sample_weight.reshape(-1, 1)
    return total, D


def _backward(net, coefs, Z, args, D, coef_grads, intercept_grads, masks=None):
    """Unnormalised gradients into the views of the flat gradient, layer L
    down to 1, starting from the output delta ``D = D_L``::

        dJ/dW_l = Z_{l-1}^T . D_l        (Z_0 = X)
        dJ/db_l = sum over rows of D_l
        D_{l-1} = D_l . W_l^T  (*) f'(Z_{l-1})   (maxout: routed to the
                                                  arg-max pieces instead;
                                                  gelu/silu: the f'(H_{l-1})
                                                  kept by the forward pass)

    With dropout ``masks`` (as in :func:`_forward`), Z_{l-1} is the masked
    output in dJ/dW_l and D_l . W_l^T is multiplied by the mask M_{l-1}
    before f' (whose Z is the unmasked output): the exact gradient of the
    masked network.
    """
    for i in range(net.n_layers - 2, -1, -1):
        # dJ/dW_l = Z_{l-1}^T . D_l
        coef_grads[i][...] = _dot(_passed_on(Z, masks, i).T, D)
        # dJ/db_l = sum(D_l)
        intercept_grads[i][...] = np.sum(D, axis=0)
        if i > 0:
            # dJ/dZ_{l-1} = D_l . W_l^T
            dZ = D @ coefs[i].T
            if masks is not None and masks[i - 1] is not None:
                dZ *= masks[i - 1]  # dropout: dJ/dZ of the unmasked output
            name = net.activations[i - 1]
            if name == "maxout":
                D = _maxout_backward(dZ, args[i], net.maxout_pieces)
            elif args[i] is not None:
                # gelu/silu: D_{l-1} = dJ/dZ_{l-1} (*) f'(H_{l-1}), kept
                dZ *= args[i]
                D = dZ
            else:
                # D_{l-1} = dJ/dZ_{l-1} (*) f'(H_{l-1}) written with Z_{l-1}
                D = act.derivative(name, Z[i], None, dZ, net.negative_slope)


def _l2_and_scale(coefs, coef_grads, intercept_grads, alpha, sw_sum):
    """The L2 term and the 1/sum(s) normalisation, in place on the gradient::

        dJ/dW = (Z^T . D + alpha W) / sum(s),   dJ/db = sum(D) / sum(s)

    Returns the penalty ``alpha / 2 * sum_l ||W_l||^2 / sum(s)``."""
    values = 0.0
    for W, cg, ig in zip(coefs, coef_grads, intercept_grads, strict=True):
        w = W.ravel()
        values += np.dot(w, w)
        cg += alpha * W
        cg /= sw_sum
        ig /= sw_sum
    return (0.5 * alpha) * values / sw_sum


def _loss_grad_into(net, params, X, Y, sample_weight, alpha, grad, masks=None):
    """Loss of one batch; writes the flat gradient into ``grad``.
    ``masks``: the batch's dropout masks (training), or None."""
    coefs, intercepts = net.views(params)
    coef_grads, intercept_grads = net.views(grad)
    Z, args, H_L = _forward(net, coefs, intercepts, X, masks)
    total, D = _loss_delta(net, Z[-1], H_L, Y, sample_weight)
    sw_sum = X.shape[0] if sample_weight is None else sample_weight.sum()
    loss = total / sw_sum
    _backward(net, coefs, Z, args, D, coef_grads, intercept_grads, masks)
    loss += _l2_and_scale(coefs, coef_grads, intercept_grads, alpha, sw_sum)
    return float(loss)


def _predict_block(net, coefs, intercepts, X, logits):
    """``Z_L`` (or ``H_L``) of the rows of one block."""
    L = net.n_layers - 1
    Z = X
    for i in range(L):
        H = _dot(Z, coefs[i])
        H += intercepts[i]
        if i < L - 1:
            name = net.activations[i]
            if name == "maxout":
                H, _ = _maxout(H, net.maxout_pieces)
            else:
                act.apply(name, H, net.negative_slope)
        elif not logits:
            act.FORWARD[net.out_activation](H)
        Z = H
    return Z


def forward(net, params, X, logits=False):
    """Predict path: the output layer's activation ``Z_L`` (or its
    pre-activation ``H_L`` when ``logits=True``), in blocks of rows."""
    params = _input.params_in(net, params)
    X = _input.X_in(net, X)
    coefs, intercepts = net.views(params)
    n = X.shape[0]
    block = _forward_block(net)
    if n <= block:
        with _input.session(net, "forward", max(n, 1)) as session:
            session.begin()
            out = _predict_block(net, coefs, intercepts, X, logits)
            session.end(1)
        return out
    out = np.empty((n, _input.n_outputs(net)), dtype=net.dtype)
    with _input.session(net, "forward", block) as session:
        for start in _chunked(session, n, block):
            stop = start + block
            out[start:stop] = _predict_block(
                net, coefs, intercepts, X[start:stop], logits
            )
    return out


def loss_grad(net, params, X, Y, sample_weight=None, alpha=0.0, grad_out=None):
    """Loss and flat gradient of one batch (used by lbfgs and ``backprop``)."""
    params = _input.params_in(net, params)
    X = _input.X_in(net, X)
    n = X.shape[0]
    if n == 0:
        raise ValueError("loss_grad needs at least one sample.")
    Y = _input.Y_in(net, Y, n)
    sample_weight = _input.sample_weight_in(net, sample_weight, n)
    if grad_out is None:
        grad = np.empty_like(params)
    else:
        grad = _input.params_inout(net, grad_out, "grad_out")
    with _input.session(net, "loss_grad", n) as session:
        session.begin()
        loss = _loss_grad_into(net, params, X, Y, sample_weight, alpha, grad)
        session.end(1)
    return loss, grad


def train_epoch(net, params, opt_state, X, Y, sample_weight, order, batch_size, hyper):
    """One pass over the rows ``order`` in minibatches; updates ``params`` and
    ``opt_state`` in place and returns the mean batch loss (weighted by batch
    size, as scikit-learn reports it). With dropout (``hyper.dropout``) each
    batch draws its masks from one PCG64 generator seeded with
    ``hyper.dropout_seed``; without, nothing is drawn."""
    params = _input.params_inout(net, params)
    _input.opt_buffers(net, opt_state)
    X = _input.X_in(net, X)
    order = _input.order_in(order, X.shape[0])
    batch_size = _input.batch_size_in(batch_size)
    Y = _input.Y_in(net, Y, X.shape[0])
    sample_weight = _input.sample_weight_in(net, sample_weight, X.shape[0])
    dropout = _input.dropout_in(net, hyper)
    n = len(order)
    if n == 0:
        return 0.0
    rng = None
    if dropout is not None:
        rng = np.random.Generator(np.random.PCG64(dropout.seed))
    masks = None
    grad = np.empty_like(params)
    accumulated = 0.0
    with _input.session(net, "train_epoch", min(batch_size, n)) as session:
        for start in _chunked(session, n, batch_size):
            idx = order[start : start + batch_size]
            sw = None if sample_weight is None else sample_weight[idx]
            if rng is not None:
                masks = _draw_masks(rng, net, len(idx), dropout.rates)
            loss = _loss_grad_into(
                net, params, X[idx], Y[idx], sw, hyper.alpha, grad, masks
            )
            accumulated += loss * len(idx)
            step(params, grad, opt_state, hyper, net.n_coefs)
    return accumulated / n
