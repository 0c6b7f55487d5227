"""The arguments of the backend contract, checked and coerced in one place.

Both backends (:mod:`fastbp._numpy_backend`, :mod:`fastbp._cython_backend`)
take ``net, params, X, Y, sample_weight, order, batch_size, opt_state`` and
turn them into what their kernels need here, so that a bad argument gets the
same error from either. The compiled kernels need more than NumPy does
(C-contiguous arrays of ``net.dtype``, CSR with ``intp`` index arrays, an
empty array instead of ``None``): :func:`kernel_X` and
:func:`kernel_sample_weight` add that on top of the shared checks.

It also names the work of a backend call for the BLAS-thread policy
(:func:`session`): every call is driven in chunks inside one
``fastbp._blas_threads.blas_session``.
"""

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from . import _blas_threads


def n_outputs(net):
    return net.layer_units[net.n_layers - 1]


# ------------------------------------------------------------------ params


def params_in(net, params, what="params"):
    """A parameter buffer the call only reads: cast to a contiguous 1-D
    ``net.dtype`` array (no copy when it already is one)."""
    params = np.ascontiguousarray(params, dtype=net.dtype)
    if params.ndim != 1 or params.shape[0] != net.n_params:
        raise ValueError(
            f"{what} must have length {net.n_params}; got shape {params.shape}."
        )
    return params


def params_inout(net, buffer, what="params"):
    """A buffer the call writes in place: it must already be a contiguous
    1-D ``net.dtype`` array of the right length (a converted copy would
    silently drop the update)."""
    if (
        not isinstance(buffer, np.ndarray)
        or buffer.dtype != net.dtype
        or buffer.ndim != 1
        or not buffer.flags.c_contiguous
        or not buffer.flags.writeable
        or buffer.shape[0] != net.n_params
    ):
        raise ValueError(
            f"{what} must be a writeable contiguous 1-D {net.dtype} array of "
            f"length {net.n_params}."
        )
    return buffer


def opt_buffers(net, opt_state):
    """``(m, v)`` of the optimizer state, updated in place by an epoch (``v``
    is empty for sgd)."""
    m = params_inout(net, opt_state.m, "opt_state.m")
    if opt_state.solver == "adam":
        v = params_inout(net, opt_state.v, "opt_state.v")
    else:
        v = np.zeros(0, dtype=net.dtype)
    return m, v


# ------------------------------------------------------------------ X, Y, s


def _check_features(net, shape):
    n_features = net.layer_units[0]
    if len(shape) != 2 or shape[1] != n_features:
        raise ValueError(
            f"X has shape {shape}; the network expects (n_samples, {n_features})."
        )


def X_in(net, X):
    """X as the NumPy backend reads it: a CSR matrix or a 2-D array of
    ``net.dtype`` (any memory layout), with the network's number of features."""
    if sp.issparse(X):
        _check_features(net, X.shape)
        return X.tocsr().astype(net.dtype, copy=False)
    X = np.asarray(X, dtype=net.dtype)
    _check_features(net, X.shape)
    return X


class KernelX(NamedTuple):
    """X as the compiled kernels read it: either ``dense`` (C-contiguous) or
    the CSR arrays ``data``, ``indices``, ``indptr`` (``intp``), the other
    fields then being empty placeholders of the right types."""

    dense: np.ndarray
    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    sparse: bool
    n_rows: int


def _placeholder(shape, dtype):
    a = np.zeros(shape, dtype=dtype)
    a.setflags(write=False)
    return a


# Read-only placeholders for the unused fields of a KernelX.
_PLACEHOLDERS = {
    np.dtype(dtype): (
        _placeholder((0, 0), dtype),
        _placeholder(0, dtype),
        _placeholder(0, np.intp),
        _placeholder(1, np.intp),
    )
    for dtype in (np.float32, np.float64)
}


def kernel_X(net, X):
    """Return a :class:`KernelX` (six fields) for ``X``."""
    dtype = net.dtype
    no_dense, no_data, no_indices, no_indptr = _PLACEHOLDERS[dtype]
    if sp.issparse(X):
        _check_features(net, X.shape)
        X = X.tocsr()
        return KernelX(
            no_dense,
            np.ascontiguousarray(X.data, dtype=dtype),
            np.ascontiguousarray(X.indices, dtype=np.intp),
            np.ascontiguousarray(X.indptr, dtype=np.intp),
            True,
            X.shape[0],
        )
    X = np.ascontiguousarray(X, dtype=dtype)
    _check_features(net, X.shape)
    return KernelX(X, no_data, no_indices, no_indptr, False, X.shape[0])


def Y_in(net, Y, n):
    """Targets: a contiguous ``(n, n_outputs)`` array of ``net.dtype``."""
    Y = np.ascontiguousarray(Y, dtype=net.dtype)
    expected = (n, n_outputs(net))
    if Y.shape != expected:
        raise ValueError(f"Y has shape {Y.shape}; expected {expected}.")
    return Y


def sample_weight_in(net, sample_weight, n):
    """None, or a contiguous ``(n,)`` array of ``net.dtype``."""
    if sample_weight is None:
        return None
    sw = np.ascontiguousarray(sample_weight, dtype=net.dtype)
    if sw.shape != (n,):
        raise ValueError(f"sample_weight has shape {sw.shape}; expected {(n,)}.")
    return sw


def kernel_sample_weight(net, sample_weight):
    """``(array, has_weights)`` for the kernels: an empty array for None."""
    if sample_weight is None:
        return _PLACEHOLDERS[net.dtype][1], False
    return sample_weight, True


def order_in(order, n_rows):
    """The rows of an epoch, in order: contiguous ``intp`` indices into X."""
    order = np.ascontiguousarray(order, dtype=np.intp)
    if order.ndim != 1:
        raise ValueError(f"order must be 1-D; got shape {order.shape}.")
    if order.shape[0] and (order.min() < 0 or order.max() >= n_rows):
        raise ValueError(f"order holds row indices outside X's {n_rows} rows.")
    return order


def batch_size_in(batch_size):
    if isinstance(batch_size, (bool, np.bool_)) or not isinstance(
        batch_size, (int, np.integer)
    ):
        raise TypeError(f"batch_size must be an int, got {batch_size!r}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    return int(batch_size)


class Dropout(NamedTuple):
    """The dropout of a training call: ``rates`` (one per hidden layer,
    each in ``[0, 1)``, at least one > 0) and the ``seed`` of its masks."""

    rates: tuple
    seed: int


def dropout_in(net, hyper):
    """The dropout ``hyper`` asks for (``hyper.dropout``,
    ``hyper.dropout_seed``) as a :class:`Dropout`, or None when every rate
    is 0 (then nothing is drawn)."""
    rates = tuple(getattr(hyper, "dropout", None) or ())
    n_hidden = net.n_layers - 2
    if rates and len(rates) != n_hidden:
        raise ValueError(
            f"hyper.dropout must hold one rate per hidden layer ({n_hidden}); "
            f"got {len(rates)}."
        )
    for r in rates:
        number = isinstance(r, (int, float, np.integer, np.floating))
        if isinstance(r, (bool, np.bool_)) or not number or not 0 <= r < 1:
            raise ValueError(f"hyper.dropout rates must be numbers in [0, 1); got {rates}.")
    rates = tuple(float(r) for r in rates)
    if not any(rates):
        return None
    seed = getattr(hyper, "dropout_seed", None)
    integral = isinstance(seed, (int, np.integer))
    if isinstance(seed, (bool, np.bool_)) or not integral or not 0 <= seed < 2**64:
        raise ValueError(
            "hyper.dropout_seed must be an int in [0, 2**64) when a dropout rate "
            f"is > 0; got {seed!r}."
        )
    return Dropout(rates, int(seed))


# ---------------------------------------------------------- BLAS sessions


def session(net, kind, rows):
    """The BLAS-thread session of one backend call whose unit of work (one
    minibatch, one block of rows) has ``rows`` rows.

    ``key`` names the GEMM shapes, so what the policy learns about them is
    kept for the next call of the same kind; ``largest_gemm`` is the
    multiply-adds of the largest GEMM of one unit.
    """
    key = (kind, net.dtype.str, tuple(net.coef_shapes), int(rows))
    largest = int(rows) * max(fi * fo for fi, fo in net.coef_shapes)
    return _blas_threads.blas_session(key, largest)
