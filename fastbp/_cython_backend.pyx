# cython: language_level=3
"""The compiled backend: forward, backward and whole training epochs in C.

Same contract and the same numbers as :mod:`fastbp._numpy_backend` (see
tests/test_parity.py); only the speed differs.
"""

# Design:
#
#   1. Python wrappers (``forward``, ``loss_grad``, ``train_epoch``) own all
#      validation and coercion: X to C-contiguous ``net.dtype`` (CSC -> CSR,
#      CSR index arrays to intp), Y / sample_weight / order to contiguous
#      arrays, scratch buffers allocated once per call. They pick the BLAS
#      thread count for an epoch (threadpoolctl, once per call) and dispatch
#      on the dtype to one fused-type kernel entry point (``_*_kernel``).
#   2. Kernel entry points take typed, contiguity-declared memoryviews, turn
#      them into raw pointers and run the whole loop inside ``with nogil:``.
#      ``train_epoch`` releases the GIL for chunks of minibatches of about
#      _CHUNK_SECONDS each and re-takes it between chunks only to call
#      PyErr_CheckSignals, so Ctrl-C stops a fit within milliseconds and other
#      Python threads keep running.
#   3. One minibatch = gather rows -> ``_forward`` -> ``_loss_delta`` ->
#      ``_backward`` -> one fused optimizer pass (``_sgd_step`` / ``_adam_step``)
#      that also applies the L2 term and the 1/sum(weights) scaling, so the
#      flat gradient buffer is read exactly once.
#   4. ``cdef ... noexcept nogil`` helpers on raw pointers: the row-major
#      ``_gemm`` (the only place that knows Fortran BLAS is column-major), the
#      CSR products for the first layer, fused bias+activation, fused
#      derivative x delta, maxout routing, the output layer with its loss.
#
# Memory layout of every batch buffer is row-major (rows = samples), with the
# row stride equal to the layer's width; a partial last batch uses the first
# rows of the same buffers. The flat parameter buffer holds all W_l (C order)
# then all b_l; its layout comes from ``net`` as a (5, L) intp table.

import numpy as np
import scipy.sparse as sp

from cython cimport floating
from cpython.exc cimport PyErr_CheckSignals
from libc.math cimport (exp, expf, log, logf, log1p, log1pf, expm1, expm1f,
                        tanh, tanhf, sqrt, sqrtf, fabs, fabsf, pow)
from libc.string cimport memcpy, memset
from libc.limits cimport INT_MAX
from scipy.linalg.cython_blas cimport sgemm, dgemm, sdot, ddot

from . import activations as _act
from .solvers import SGD as _SGD, ADAM as _ADAM

name = "cython"

cdef extern from *:
    """
    #ifndef FASTBP_DEBUG
    #define FASTBP_DEBUG 0
    #endif
    static const int fastbp_debug_build = FASTBP_DEBUG;
    """
    const int fastbp_debug_build

DEBUG = bool(fastbp_debug_build)
"""True when built with FASTBP_DEBUG=1 (bounds/wraparound/init checks on)."""

# Integer codes, declared once (the values come from activations.py and are
# checked at import below).
cdef enum:
    IDENTITY = 0
    LOGISTIC = 1
    TANH = 2
    RELU = 3
    SOFTPLUS = 4
    MAXOUT = 5
    EXP = 6
    SOFTMAX = 7

cdef enum:
    SQUARED_ERROR = 0
    LOG_LOSS = 1
    POISSON = 2

cdef enum:
    SOLVER_SGD = 0
    SOLVER_ADAM = 1

assert (_act.IDENTITY, _act.LOGISTIC, _act.TANH, _act.RELU, _act.SOFTPLUS,
        _act.MAXOUT, _act.EXP, _act.SOFTMAX) == tuple(range(8))
assert (_act.SQUARED_ERROR, _act.LOG_LOSS, _act.POISSON) == (0, 1, 2)
assert (_SGD, _ADAM) == (SOLVER_SGD, SOLVER_ADAM)

# Seconds of minibatches per GIL release in train_epoch (then the GIL is
# taken back briefly to check for Ctrl-C).
cdef double _CHUNK_SECONDS = 0.02

cdef extern from *:
    """
    #if defined(_WIN32)
    #include <time.h>
    static double fastbp_now(void) {
        struct timespec ts; timespec_get(&ts, TIME_UTC);
        return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
    }
    #else
    #include <time.h>
    static double fastbp_now(void) {
        struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
    }
    #endif
    """
    double fastbp_now() noexcept nogil
# Rows per block on the predict path.
cdef Py_ssize_t _FORWARD_BLOCK = 512
# Weight layers the kernels handle (per-layer pointer arrays on the stack).
_MAX_LAYERS = 64


# ===================================================================== math
# Typed wrappers: float kernels call the float libm functions, like NumPy.

cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)

cdef inline floating _log(floating x) noexcept nogil:
    if floating is float:
        return logf(x)
    else:
        return log(x)

cdef inline floating _log1p(floating x) noexcept nogil:
    if floating is float:
        return log1pf(x)
    else:
        return log1p(x)

cdef inline floating _expm1(floating x) noexcept nogil:
    if floating is float:
        return expm1f(x)
    else:
        return expm1(x)

cdef inline floating _tanh(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)

cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)

cdef inline floating _fabs(floating x) noexcept nogil:
    if floating is float:
        return fabsf(x)
    else:
        return fabs(x)

cdef inline floating _eps(floating x) noexcept nogil:
    # the dtype's machine epsilon (np.finfo(dtype).eps)
    if floating is float:
        return 1.1920928955078125e-07
    else:
        return 2.220446049250313e-16


# ===================================================================== BLAS

cdef void _gemm(bint trans_a, bint trans_b, int m, int n, int k,
                floating alpha, const floating* A, int lda,
                const floating* B, int ldb, floating beta,
                floating* C, int ldc) noexcept nogil:
    """Row-major ``C (m x n) = alpha * op(A) @ op(B) + beta * C``.

    ``lda``/``ldb``/``ldc`` are the row strides of the matrices as stored.
    Fortran BLAS is column-major, where a row-major matrix reads as its
    transpose, so we ask it for ``C^T = op(B)^T @ op(A)^T``: swap the
    operands (and m/n), keep each operand's own transpose flag.
    """
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> B, &ldb,
              <float*> A, &lda, &beta, C, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> B, &ldb,
              <double*> A, &lda, &beta, C, &ldc)


cdef floating _sqnorm(const floating* x, int n) noexcept nogil:
    """``np.dot(x, x)`` (BLAS dot, as the NumPy backend)."""
    cdef int one = 1
    if floating is float:
        return sdot(&n, <float*> x, &one, <float*> x, &one)
    else:
        return ddot(&n, <double*> x, &one, <double*> x, &one)


# ============================================================ network layout

cdef struct Spec:
    # Shape of the network; pointers into a (5, L) intp table owned by Python.
    Py_ssize_t L              # number of weight layers
    int act, out_act, loss, k
    bint canonical
    Py_ssize_t n_params, n_coefs
    const Py_ssize_t* fan_in  # rows of W_l
    const Py_ssize_t* fan_out  # columns of W_l (units * k for maxout)
    const Py_ssize_t* units   # output units of layer l
    const Py_ssize_t* coef_off
    const Py_ssize_t* icpt_off


cdef struct Buffers:
    # Per-layer pointers into the scratch buffers (layer l = 0 .. L-1).
    void** Z         # Z[l]: activation output of hidden layer l (B x units)
    void** H         # H[l]: maxout pre-activation (B x units*k) or NULL
    int** arg        # arg[l]: maxout arg-max piece (B x units) or NULL
    void* H_out      # output pre-activation (B x n_out)
    void* Z_out      # output activation (B x n_out)
    void* D0         # deltas, ping-pong (B x max width)
    void* D1
    void* dZ         # dJ/dZ before maxout routing (B x max units)
    void* Xb         # gathered dense minibatch (B x n_features) or NULL


cdef struct Input:
    # The rows of X that make up a batch. Dense: ``dense`` points at B
    # C-contiguous rows. CSR: row b of the batch is row ``rows[b]`` of X
    # (``row0 + b`` when rows is NULL).
    bint sparse
    const void* dense
    const void* data
    const Py_ssize_t* indices
    const Py_ssize_t* indptr
    const Py_ssize_t* rows
    Py_ssize_t row0


cdef inline Py_ssize_t _row(const Py_ssize_t* rows, Py_ssize_t row0,
                            Py_ssize_t b) noexcept nogil:
    return rows[b] if rows != NULL else row0 + b


class _Layout:
    """Scratch memory for batches of up to ``B`` rows, allocated once.

    Holds the NumPy arrays (so they live as long as the kernel runs) and the
    offsets the kernel turns into pointers.
    """

    def __init__(self, net, Py_ssize_t B, bint gather):
        L = net.n_layers - 1
        if L > _MAX_LAYERS:
            raise ValueError(
                f"The compiled backend handles up to {_MAX_LAYERS} layers.")
        dtype = net.dtype
        maxout = net.activation == "maxout"
        units = net.layer_units[1:]
        fan_out = net.fan_out
        self.table = np.ascontiguousarray(
            [net.fan_in, net.fan_out, units, net.coef_offsets,
             net.intercept_offsets], dtype=np.intp)
        # BLAS takes 32-bit sizes: every GEMM dimension, and n of the dot
        # over a whole weight matrix.
        largest = max(int(fi) * int(fo) for fi, fo in zip(net.fan_in, net.fan_out))
        if max(B, largest, net.layer_units[0]) > INT_MAX:
            raise ValueError(
                "Layer or batch too large for the compiled backend's 32-bit "
                "BLAS sizes; use backend='numpy' or smaller batches.")
        sizes = []          # (name, layer, n_elements)
        n_int = 0
        arg_offsets = []
        for l in range(L - 1):
            sizes.append(("Z", l, B * units[l]))
            if maxout:
                sizes.append(("H", l, B * fan_out[l]))
                arg_offsets.append((l, n_int))
                n_int += B * units[l]
        n_out = units[L - 1]
        width = max(list(fan_out) + list(units))
        sizes += [("H_out", 0, B * n_out), ("Z_out", 0, B * n_out),
                  ("D0", 0, B * width), ("D1", 0, B * width)]
        if maxout:
            sizes.append(("dZ", 0, B * max(units)))
        if gather:
            sizes.append(("Xb", 0, B * net.layer_units[0]))
        offsets = {}
        total = 0
        for key, l, size in sizes:
            offsets[key, l] = total
            # start every buffer on an 8-element boundary (from the base)
            total += -(-size // 8) * 8 + 8
        self.scratch = np.empty(total, dtype=dtype)
        self.args = np.empty(max(n_int, 1), dtype=np.intc)
        # offsets table: rows Z, H, arg per layer (-1 if absent) + singles
        self.z_off = np.full(L, -1, dtype=np.intp)
        self.h_off = np.full(L, -1, dtype=np.intp)
        self.a_off = np.full(L, -1, dtype=np.intp)
        for (key, l), off in offsets.items():
            if key == "Z":
                self.z_off[l] = off
            elif key == "H":
                self.h_off[l] = off
        for l, off in arg_offsets:
            self.a_off[l] = off
        self.singles = np.array(
            [offsets.get((k, 0), -1) for k in
             ("H_out", "Z_out", "D0", "D1", "dZ", "Xb")], dtype=np.intp)
        self.L = L


cdef void _make_spec(Spec* s, net, const Py_ssize_t[:, ::1] table):
    s.L = table.shape[1]
    s.act = net.activation_code
    s.out_act = net.out_activation_code
    s.loss = net.loss_code
    s.k = net.maxout_pieces if net.activation == "maxout" else 1
    s.canonical = net.canonical_output
    s.n_params = net.n_params
    s.n_coefs = net.n_coefs
    s.fan_in = &table[0, 0]
    s.fan_out = &table[1, 0]
    s.units = &table[2, 0]
    s.coef_off = &table[3, 0]
    s.icpt_off = &table[4, 0]


cdef int _make_buffers(Buffers* buf, char* base, Py_ssize_t itemsize,
                       int* args, layout,
                       void** zp, void** hp, int** ap) except -1:
    """Point ``buf`` into the scratch block (element offsets from _Layout)."""
    cdef const Py_ssize_t[::1] z_off = layout.z_off
    cdef const Py_ssize_t[::1] h_off = layout.h_off
    cdef const Py_ssize_t[::1] a_off = layout.a_off
    cdef const Py_ssize_t[::1] singles = layout.singles
    cdef Py_ssize_t l
    for l in range(z_off.shape[0]):
        zp[l] = <void*> (base + z_off[l] * itemsize) if z_off[l] >= 0 else NULL
        hp[l] = <void*> (base + h_off[l] * itemsize) if h_off[l] >= 0 else NULL
        ap[l] = (args + a_off[l]) if a_off[l] >= 0 else NULL
    buf.Z = zp
    buf.H = hp
    buf.arg = ap
    buf.H_out = <void*> (base + singles[0] * itemsize)
    buf.Z_out = <void*> (base + singles[1] * itemsize)
    buf.D0 = <void*> (base + singles[2] * itemsize)
    buf.D1 = <void*> (base + singles[3] * itemsize)
    buf.dZ = <void*> (base + singles[4] * itemsize) if singles[4] >= 0 else NULL
    buf.Xb = <void*> (base + singles[5] * itemsize) if singles[5] >= 0 else NULL
    return 0


# ======================================================= elementwise kernels

cdef void _bias_act(int code, floating* H, const floating* b,
                    Py_ssize_t B, Py_ssize_t width) noexcept nogil:
    """Hidden layer, in place: ``H = f(H + b)`` (NumPy: ``H += b; f(H)``),
    row by row so the second pass reads the row from L1."""
    cdef Py_ssize_t r, j
    cdef floating* h
    for r in range(B):
        h = H + r * width
        for j in range(width):
            h[j] += b[j]
        _act_flat(code, h, width)


cdef void _bias_maxout(const floating* H, const floating* b, Py_ssize_t B,
                       Py_ssize_t units, Py_ssize_t k, floating* Z,
                       int* arg) noexcept nogil:
    """Maxout: ``Z[:, u] = max_j (H + b)[:, u*k + j]``, remembering the arg-max
    (the first maximum on ties; a NaN wins, as np.argmax)."""
    cdef Py_ssize_t r, u, j, base, best_j
    cdef floating x, best
    cdef const floating* h
    for r in range(B):
        h = H + r * units * k
        for u in range(units):
            base = u * k
            best = h[base] + b[base]
            best_j = 0
            for j in range(1, k):
                x = h[base + j] + b[base + j]
                if x > best or (x != x and best == best):
                    best = x
                    best_j = j
            Z[r * units + u] = best
            arg[r * units + u] = <int> best_j


cdef void _maxout_backward(const floating* dZ, const int* arg, Py_ssize_t B,
                           Py_ssize_t units, Py_ssize_t k,
                           floating* D) noexcept nogil:
    """Route dJ/dZ to each unit's arg-max piece: D (B x units*k)."""
    cdef Py_ssize_t i
    memset(D, 0, B * units * k * sizeof(floating))
    for i in range(B * units):
        D[i * k + arg[i]] = dZ[i]


cdef void _derivative(int code, const floating* Z, floating* D,
                      Py_ssize_t n) noexcept nogil:
    """``D *= f'(H)`` written with the output Z, in place over n elements
    (the operation order of activations.*_derivative)."""
    cdef Py_ssize_t i
    if code == RELU:
        for i in range(n):
            if Z[i] <= 0:
                D[i] = 0
    elif code == LOGISTIC:
        for i in range(n):
            D[i] = D[i] * Z[i] * (1 - Z[i])
    elif code == TANH:
        for i in range(n):
            D[i] = D[i] * (1 - Z[i] * Z[i])
    elif code == SOFTPLUS:
        for i in range(n):
            D[i] = D[i] * -_expm1(-Z[i])             # sigmoid(h) = 1 - e^-Z
    elif code == EXP:
        for i in range(n):
            D[i] = D[i] * Z[i]
    # IDENTITY: nothing


cdef void _colsum(const floating* D, Py_ssize_t B, Py_ssize_t width,
                  floating* out) noexcept nogil:
    """``out = D.sum(axis=0)`` row after row, as NumPy reduces axis 0."""
    cdef Py_ssize_t r, j
    cdef const floating* d
    memcpy(out, D, width * sizeof(floating))
    for r in range(1, B):
        d = D + r * width
        for j in range(width):
            out[j] += d[j]


# ======================================================= first-layer products

cdef void _csr_times_W(const Input* inp, Py_ssize_t B, const floating* W,
                       Py_ssize_t fo, floating* H) noexcept nogil:
    """``H = X_csr[rows] @ W`` without densifying X (scipy's csr_matvecs)."""
    cdef Py_ssize_t b, p, j, r
    cdef floating a
    cdef const floating* data = <const floating*> inp.data
    cdef const floating* w
    cdef floating* h
    memset(H, 0, B * fo * sizeof(floating))
    for b in range(B):
        r = _row(inp.rows, inp.row0, b)
        h = H + b * fo
        for p in range(inp.indptr[r], inp.indptr[r + 1]):
            a = data[p]
            w = W + inp.indices[p] * fo
            for j in range(fo):
                h[j] += a * w[j]


cdef void _csr_T_times_D(const Input* inp, Py_ssize_t B, const floating* D,
                         Py_ssize_t fi, Py_ssize_t fo,
                         floating* G) noexcept nogil:
    """``G = X_csr[rows]^T @ D`` (fi x fo) without densifying X."""
    cdef Py_ssize_t b, p, j, r
    cdef floating a
    cdef const floating* data = <const floating*> inp.data
    cdef const floating* d
    cdef floating* g
    memset(G, 0, fi * fo * sizeof(floating))
    for b in range(B):
        r = _row(inp.rows, inp.row0, b)
        d = D + b * fo
        for p in range(inp.indptr[r], inp.indptr[r + 1]):
            a = data[p]
            g = G + inp.indices[p] * fo
            for j in range(fo):
                g[j] += a * d[j]


# ============================================================ forward/backward

cdef void _forward(const Spec* s, const floating* params, const Input* inp,
                   Py_ssize_t B, const Buffers* buf) noexcept nogil:
    """Forward pass of B rows keeping every layer: hidden outputs in Z[l],
    maxout arg-max in arg[l], the output layer in H_out (pre-activation) and
    Z_out."""
    cdef Py_ssize_t l, fi, fo
    cdef const floating* W
    cdef const floating* b
    cdef const floating* Z_prev
    cdef floating* H
    cdef bint maxout = s.act == MAXOUT
    for l in range(s.L):
        W = params + s.coef_off[l]
        b = params + s.icpt_off[l]
        fi = s.fan_in[l]
        fo = s.fan_out[l]
        if l == s.L - 1:
            H = <floating*> buf.H_out
        elif maxout:
            H = <floating*> buf.H[l]
        else:
            H = <floating*> buf.Z[l]
        if l == 0:
            if inp.sparse:
                _csr_times_W(inp, B, W, fo, H)              # H = X @ W_1
            else:
                # H = X @ W_1
                _gemm(False, False, <int> B, <int> fo, <int> fi, <floating> 1,
                      <const floating*> inp.dense, <int> fi, W, <int> fo,
                      <floating> 0, H, <int> fo)
        else:
            Z_prev = <const floating*> buf.Z[l - 1]
            # H = Z_{l-1} @ W_l
            _gemm(False, False, <int> B, <int> fo, <int> fi, <floating> 1,
                  Z_prev, <int> fi, W, <int> fo, <floating> 0, H, <int> fo)
        if l < s.L - 1:
            if maxout:
                _bias_maxout(H, b, B, s.units[l], s.k, <floating*> buf.Z[l],
                             buf.arg[l])
            else:
                _bias_act(s.act, H, b, B, fo)
        else:
            _output_act(s.out_act, H, b, B, fo, <floating*> buf.Z_out)


cdef void _output_act(int code, floating* H, const floating* b, Py_ssize_t B,
                      Py_ssize_t width, floating* Z) noexcept nogil:
    """Output layer: ``H += b`` (kept for the poisson loss), ``Z = f(H)``."""
    cdef Py_ssize_t r, j, n = B * width
    cdef floating mx, total
    cdef floating* z
    for r in range(B):
        for j in range(width):
            H[r * width + j] += b[j]
    if code == SOFTMAX:
        for r in range(B):
            z = Z + r * width
            mx = H[r * width]
            for j in range(1, width):
                if H[r * width + j] > mx:
                    mx = H[r * width + j]
            for j in range(width):
                z[j] = _exp(H[r * width + j] - mx)      # stable: max(h) -> 0
            total = 0
            for j in range(width):
                total += z[j]
            for j in range(width):
                z[j] = z[j] / total
    else:
        memcpy(Z, H, n * sizeof(floating))
        _act_flat(code, Z, n)


cdef void _act_flat(int code, floating* h, Py_ssize_t n) noexcept nogil:
    """``h = f(h)`` in place over n contiguous elements (not maxout/softmax)."""
    cdef Py_ssize_t j
    cdef floating x, pos
    if code == RELU:
        for j in range(n):
            h[j] = 0 if h[j] < 0 else h[j]          # np.maximum(H, 0); NaN stays
    elif code == LOGISTIC:
        for j in range(n):
            h[j] = 1 / (1 + _exp(-h[j]))           # expit; exp overflow -> 0
    elif code == TANH:
        for j in range(n):
            h[j] = _tanh(h[j])
    elif code == SOFTPLUS:
        for j in range(n):
            x = h[j]
            pos = 0 if x < 0 else x
            # log(1 + e^x) = max(x, 0) + log1p(e^-|x|), finite for any x
            h[j] = _log1p(_exp(-_fabs(x))) + pos
    elif code == EXP:
        for j in range(n):
            h[j] = _exp(h[j])


cdef double _loss_delta(const Spec* s, const Buffers* buf, const floating* Y,
                        const floating* sw, const Py_ssize_t* rows,
                        Py_ssize_t row0, Py_ssize_t B) noexcept nogil:
    """Per-sample losses and the unnormalised output delta.

    Returns ``sum_i s_i * loss_i`` (s_i = 1 without weights). Writes
    ``D0 = (Z - Y) [* f'_L(Z) unless canonical] [* s_i]``.
    """
    cdef Py_ssize_t i, j, r, width = s.units[s.L - 1]
    cdef const floating* H = <const floating*> buf.H_out
    cdef const floating* Z = <const floating*> buf.Z_out
    cdef floating* D = <floating*> buf.D0
    cdef const floating* y
    cdef const floating* z
    cdef const floating* h
    cdef floating* d
    cdef floating row_loss, p, diff, yj, w, eps
    cdef double total = 0
    eps = _eps(<floating> 0)
    for i in range(B):
        r = _row(rows, row0, i)
        y = Y + r * width
        z = Z + i * width
        h = H + i * width
        d = D + i * width
        row_loss = 0
        if s.loss == SQUARED_ERROR:
            for j in range(width):
                diff = z[j] - y[j]
                row_loss += diff * diff
            row_loss = <floating> 0.5 * row_loss
        elif s.loss == LOG_LOSS:
            for j in range(width):
                p = z[j]                          # clip(Z, eps, 1 - eps)
                if p < eps:
                    p = eps
                elif p > 1 - eps:
                    p = 1 - eps
                if s.out_act == SOFTMAX:
                    row_loss += y[j] * _log(p)
                else:
                    row_loss += y[j] * _log(p) + (1 - y[j]) * _log(1 - p)
            row_loss = -row_loss
        else:  # POISSON: half deviance y log(y/z) - y + z with log z = h
            for j in range(width):
                yj = y[j]
                row_loss += ((yj * _log(yj) if yj != 0 else <floating> 0)
                             - yj * h[j] - yj + z[j])
        for j in range(width):
            d[j] = z[j] - y[j]
        if not s.canonical:
            _derivative(s.out_act, z, d, width)
        if sw != NULL:
            w = sw[r]
            for j in range(width):
                d[j] = d[j] * w
            total += <double> row_loss * <double> w
        else:
            total += row_loss
    return total


cdef void _backward(const Spec* s, const floating* params, const Input* inp,
                    Py_ssize_t B, const Buffers* buf,
                    floating* G) noexcept nogil:
    """Unnormalised gradients into G (layout of params): ``Z_{l-1}^T D_l``
    and column sums of ``D_l``, starting from the output delta in D0."""
    cdef Py_ssize_t l, fi, fo
    cdef const floating* W
    cdef floating* D = <floating*> buf.D0
    cdef floating* D_next = <floating*> buf.D1
    cdef floating* tmp
    cdef floating* GW
    cdef bint maxout = s.act == MAXOUT
    for l in range(s.L - 1, -1, -1):
        W = params + s.coef_off[l]
        fi = s.fan_in[l]
        fo = s.fan_out[l]
        GW = G + s.coef_off[l]
        if l == 0:
            if inp.sparse:
                _csr_T_times_D(inp, B, D, fi, fo, GW)      # dW_1 = X^T @ D_1
            else:
                # dW_1 = X^T @ D_1
                _gemm(True, False, <int> fi, <int> fo, <int> B, <floating> 1,
                      <const floating*> inp.dense, <int> fi, D, <int> fo,
                      <floating> 0, GW, <int> fo)
        else:
            # dW_l = Z_{l-1}^T @ D_l
            _gemm(True, False, <int> fi, <int> fo, <int> B, <floating> 1,
                  <const floating*> buf.Z[l - 1], <int> fi, D, <int> fo,
                  <floating> 0, GW, <int> fo)
        _colsum(D, B, fo, G + s.icpt_off[l])               # db_l = D_l.sum(0)
        if l == 0:
            break
        if maxout:
            # dZ = D_l @ W_l^T, then route it to the arg-max pieces
            _gemm(False, True, <int> B, <int> fi, <int> fo, <floating> 1,
                  D, <int> fo, W, <int> fo, <floating> 0,
                  <floating*> buf.dZ, <int> fi)
            _maxout_backward(<const floating*> buf.dZ, buf.arg[l - 1], B,
                             s.units[l - 1], s.k, D_next)
        else:
            # dZ = D_l @ W_l^T, then D_{l-1} = dZ * f'(Z_{l-1})
            _gemm(False, True, <int> B, <int> fi, <int> fo, <floating> 1,
                  D, <int> fo, W, <int> fo, <floating> 0, D_next, <int> fi)
            _derivative(s.act, <const floating*> buf.Z[l - 1], D_next, B * fi)
        tmp = D
        D = D_next
        D_next = tmp


cdef double _l2(const Spec* s, const floating* params) noexcept nogil:
    """``sum_l ||W_l||^2`` (per layer with BLAS dot, as the NumPy backend)."""
    cdef Py_ssize_t l
    cdef double values = 0
    for l in range(s.L):
        values += _sqnorm(params + s.coef_off[l],
                          <int> (s.fan_in[l] * s.fan_out[l]))
    return values


# ================================================================ optimizers
# One pass over the flat buffer each: a plain counted loop on raw pointers
# that the compiler vectorizes. The gradient is formed on the fly,
# g = (G + alpha * W) / sw_sum for weights (alpha = 0 for biases), so the
# gradient buffer is read once. Memory-bound at small batches and, for Adam,
# bound by sqrt and division: the loops are written in C so that GCC can
# build an AVX2 clone beside the baseline one (target_clones, picked at load
# time by the CPU; AVX2 alone enables no FMA, so the rounding is the same as
# NumPy's on any machine). Elsewhere they are plain C loops.

cdef extern from *:
    """
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) \
        && defined(__linux__) && !FASTBP_DEBUG
    #define FASTBP_CLONES __attribute__((target_clones("avx2", "default")))
    #else
    #define FASTBP_CLONES
    #endif

    /* p -= lr_t * m / (sqrt(v) + eps) after the moment updates
       m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2 */
    #define FASTBP_ADAM(T, NAME, SQRT)                                      \
    static FASTBP_CLONES void NAME(                                         \
        T *p, const T *G, T *m, T *v, Py_ssize_t n, T alpha, T inv_sw,      \
        T b1, T one_b1, T b2, T one_b2, T neg_lr_t, T eps)                  \
    {                                                                       \
        for (Py_ssize_t i = 0; i < n; i++) {                                \
            T g = (G[i] + alpha * p[i]) * inv_sw;                           \
            T mi = b1 * m[i] + one_b1 * g;                                  \
            T vi = b2 * v[i] + one_b2 * (g * g);                            \
            m[i] = mi;                                                      \
            v[i] = vi;                                                      \
            p[i] += neg_lr_t * mi / (SQRT(vi) + eps);                       \
        }                                                                   \
    }

    /* vel = mu vel - lr g; p += mu vel - lr g (Nesterov) or p += vel */
    #define FASTBP_SGD(T, NAME)                                             \
    static FASTBP_CLONES void NAME(                                         \
        T *p, const T *G, T *vel, Py_ssize_t n, T alpha, T inv_sw,          \
        T lr, T mu, int nesterov)                                           \
    {                                                                       \
        if (nesterov) {                                                     \
            for (Py_ssize_t i = 0; i < n; i++) {                            \
                T g = (G[i] + alpha * p[i]) * inv_sw;                       \
                T u = mu * vel[i] - lr * g;                                 \
                vel[i] = u;                                                 \
                p[i] += mu * u - lr * g;                                    \
            }                                                               \
        } else {                                                            \
            for (Py_ssize_t i = 0; i < n; i++) {                            \
                T g = (G[i] + alpha * p[i]) * inv_sw;                       \
                T u = mu * vel[i] - lr * g;                                 \
                vel[i] = u;                                                 \
                p[i] += u;                                                  \
            }                                                               \
        }                                                                   \
    }

    FASTBP_ADAM(float, fastbp_adam_f, sqrtf)
    FASTBP_ADAM(double, fastbp_adam_d, sqrt)
    FASTBP_SGD(float, fastbp_sgd_f)
    FASTBP_SGD(double, fastbp_sgd_d)
    """
    void fastbp_adam_f(float* p, const float* G, float* m, float* v,
                       Py_ssize_t n, float alpha, float inv_sw, float b1,
                       float one_b1, float b2, float one_b2, float neg_lr_t,
                       float eps) noexcept nogil
    void fastbp_adam_d(double* p, const double* G, double* m, double* v,
                       Py_ssize_t n, double alpha, double inv_sw, double b1,
                       double one_b1, double b2, double one_b2,
                       double neg_lr_t, double eps) noexcept nogil
    void fastbp_sgd_f(float* p, const float* G, float* vel, Py_ssize_t n,
                      float alpha, float inv_sw, float lr, float mu,
                      int nesterov) noexcept nogil
    void fastbp_sgd_d(double* p, const double* G, double* vel, Py_ssize_t n,
                      double alpha, double inv_sw, double lr, double mu,
                      int nesterov) noexcept nogil


cdef inline void _sgd_step(floating* p, const floating* G, floating* vel,
                           Py_ssize_t n, floating alpha, floating inv_sw,
                           floating lr, floating mu,
                           bint nesterov) noexcept nogil:
    if floating is float:
        fastbp_sgd_f(p, G, vel, n, alpha, inv_sw, lr, mu, nesterov)
    else:
        fastbp_sgd_d(p, G, vel, n, alpha, inv_sw, lr, mu, nesterov)


cdef inline void _adam_step(floating* p, const floating* G, floating* m,
                            floating* v, Py_ssize_t n, floating alpha,
                            floating inv_sw, floating b1, floating one_b1,
                            floating b2, floating one_b2, floating neg_lr_t,
                            floating eps) noexcept nogil:
    if floating is float:
        fastbp_adam_f(p, G, m, v, n, alpha, inv_sw, b1, one_b1, b2, one_b2,
                      neg_lr_t, eps)
    else:
        fastbp_adam_d(p, G, m, v, n, alpha, inv_sw, b1, one_b1, b2, one_b2,
                      neg_lr_t, eps)


# ============================================================ kernel entries

cdef inline const floating* _ptr1(const floating[::1] a) noexcept:
    return &a[0] if a.shape[0] > 0 else NULL


def _forward_kernel(net, layout, const floating[::1] params,
                    const floating[:, ::1] X, const floating[::1] X_data,
                    const Py_ssize_t[::1] X_indices,
                    const Py_ssize_t[::1] X_indptr, bint sparse,
                    floating[:, ::1] out, bint logits):
    """OUT: ``out`` (n x n_outputs) = Z_L or H_L, in blocks of rows."""
    cdef Spec s
    cdef Buffers buf
    cdef Input inp
    cdef floating[::1] scratch = layout.scratch
    cdef int[::1] args = layout.args
    cdef Py_ssize_t n = out.shape[0], n_out = out.shape[1]
    cdef Py_ssize_t start, B, block = layout.block
    cdef Py_ssize_t n_features = net.layer_units[0]
    cdef const floating* src
    cdef void* zp[64]     # _MAX_LAYERS
    cdef void* hp[64]
    cdef int* ap[64]
    _make_spec(&s, net, layout.table)
    _make_buffers(&buf, <char*> &scratch[0], sizeof(floating), &args[0],
                  layout, zp, hp, ap)
    inp.sparse = sparse
    inp.rows = NULL
    inp.data = <const void*> _ptr1(X_data)
    inp.indices = &X_indices[0] if X_indices.shape[0] > 0 else NULL
    inp.indptr = &X_indptr[0]
    with nogil:
        start = 0
        while start < n:
            B = min(block, n - start)
            inp.row0 = start
            if not sparse:
                inp.dense = <const void*> &X[start, 0]
            _forward(&s, &params[0], &inp, B, &buf)
            src = <const floating*> (buf.H_out if logits else buf.Z_out)
            memcpy(&out[start, 0], src, B * n_out * sizeof(floating))
            start += B


def _loss_grad_kernel(net, layout, const floating[::1] params,
                      const floating[:, ::1] X, const floating[::1] X_data,
                      const Py_ssize_t[::1] X_indices,
                      const Py_ssize_t[::1] X_indptr, bint sparse,
                      const floating[:, ::1] Y, const floating[::1] sw,
                      bint has_sw, double alpha, floating[::1] grad):
    """One batch (all rows of X). OUT: ``grad``; returns the loss."""
    cdef Spec s
    cdef Buffers buf
    cdef Input inp
    cdef floating[::1] scratch = layout.scratch
    cdef int[::1] args = layout.args
    cdef Py_ssize_t n = Y.shape[0], i
    cdef const floating* swp = _ptr1(sw) if has_sw else NULL
    cdef double loss, sw_sum
    cdef floating sw_sum_f, alpha_f = <floating> alpha
    cdef floating* g = &grad[0]
    cdef const floating* p = &params[0]
    cdef void* zp[64]     # _MAX_LAYERS
    cdef void* hp[64]
    cdef int* ap[64]
    _make_spec(&s, net, layout.table)
    _make_buffers(&buf, <char*> &scratch[0], sizeof(floating), &args[0],
                  layout, zp, hp, ap)
    inp.sparse = sparse
    inp.rows = NULL
    inp.row0 = 0
    inp.data = <const void*> _ptr1(X_data)
    inp.indices = &X_indices[0] if X_indices.shape[0] > 0 else NULL
    inp.indptr = &X_indptr[0]
    inp.dense = NULL
    if not sparse:
        inp.dense = <const void*> &X[0, 0]
    with nogil:
        _forward(&s, p, &inp, n, &buf)
        loss = _loss_delta(&s, &buf, &Y[0, 0], swp, NULL, 0, n)
        if swp != NULL:
            sw_sum = 0
            for i in range(n):
                sw_sum += swp[i]
        else:
            sw_sum = n
        loss = loss / sw_sum + (0.5 * alpha) * _l2(&s, p) / sw_sum
        _backward(&s, p, &inp, n, &buf, g)
        # grad = (Z^T D + alpha W) / sw_sum, db = sum(D) / sw_sum
        sw_sum_f = <floating> sw_sum
        for i in range(s.n_coefs):
            g[i] = (g[i] + alpha_f * p[i]) / sw_sum_f
        for i in range(s.n_coefs, s.n_params):
            g[i] = g[i] / sw_sum_f
    return loss


def _train_epoch_kernel(net, layout, floating[::1] params,
                        floating[::1] m, floating[::1] v,
                        long long[::1] t_inout,
                        const floating[:, ::1] X, const floating[::1] X_data,
                        const Py_ssize_t[::1] X_indices,
                        const Py_ssize_t[::1] X_indptr, bint sparse,
                        const floating[:, ::1] Y, const floating[::1] sw,
                        bint has_sw, const Py_ssize_t[::1] order,
                        Py_ssize_t batch_size, int solver, double lr,
                        double lr_init, double alpha, double momentum,
                        bint nesterov, double beta_1, double beta_2,
                        double epsilon):
    """One epoch of minibatches. IN/OUT: params, m, v, t_inout[0]; returns
    the sum over batches of batch_loss * batch_len."""
    cdef Spec s
    cdef Buffers buf
    cdef Input inp
    cdef floating[::1] scratch = layout.scratch
    cdef floating[::1] G_arr = layout.grad
    cdef int[::1] args = layout.args
    cdef floating* p = &params[0]
    cdef floating* G = &G_arr[0]
    cdef floating* mp = &m[0]
    cdef floating* vp = &v[0] if v.shape[0] > 0 else NULL
    cdef const floating* Xp = NULL
    cdef const floating* Yp = &Y[0, 0]
    cdef const floating* swp = _ptr1(sw) if has_sw else NULL
    cdef const Py_ssize_t* rows
    cdef Py_ssize_t n = order.shape[0]
    cdef Py_ssize_t n_features = net.layer_units[0]
    cdef Py_ssize_t n_batches = (n + batch_size - 1) // batch_size
    cdef Py_ssize_t batch, bi, start, B, i
    cdef long long t = t_inout[0]
    cdef double accumulated = 0, loss, sw_sum, chunk_start
    cdef floating inv_sw, neg_lr_t
    cdef floating alpha_f = <floating> alpha, zero = 0
    cdef floating lr_f = <floating> lr, mu_f = <floating> momentum
    cdef floating b1 = <floating> beta_1, b2 = <floating> beta_2
    cdef floating one_b1 = <floating> (1 - beta_1)
    cdef floating one_b2 = <floating> (1 - beta_2)
    cdef floating eps_f = <floating> epsilon
    cdef Py_ssize_t n_coefs = net.n_coefs, n_params = net.n_params
    cdef void* zp[64]     # _MAX_LAYERS
    cdef void* hp[64]
    cdef int* ap[64]
    _make_spec(&s, net, layout.table)
    _make_buffers(&buf, <char*> &scratch[0], sizeof(floating), &args[0],
                  layout, zp, hp, ap)
    inp.sparse = sparse
    inp.row0 = 0
    inp.data = <const void*> _ptr1(X_data)
    inp.indices = &X_indices[0] if X_indices.shape[0] > 0 else NULL
    inp.indptr = &X_indptr[0]
    inp.dense = buf.Xb
    if not sparse:
        Xp = &X[0, 0]

    batch = 0
    try:
        while batch < n_batches:
            with nogil:
                chunk_start = fastbp_now()
                for bi in range(batch, n_batches):
                    start = bi * batch_size
                    B = min(batch_size, n - start)
                    rows = &order[start]
                    # Retrieve the minibatch: gather dense rows (CSR rows are
                    # read in place through `rows`).
                    if not sparse:
                        for i in range(B):
                            memcpy((<floating*> buf.Xb) + i * n_features,
                                   Xp + rows[i] * n_features,
                                   n_features * sizeof(floating))
                    else:
                        inp.rows = rows
                    # Forward, loss and output delta, backward.
                    _forward(&s, <const floating*> p, &inp, B, &buf)
                    loss = _loss_delta(&s, &buf, Yp, swp, rows, 0, B)
                    if swp != NULL:
                        sw_sum = 0
                        for i in range(B):
                            sw_sum += swp[rows[i]]
                    else:
                        sw_sum = B
                    loss = loss / sw_sum
                    if alpha != 0:
                        loss += (0.5 * alpha) * _l2(&s, p) / sw_sum
                    accumulated += loss * B
                    _backward(&s, <const floating*> p, &inp, B, &buf, G)
                    # Update params (weights, then biases without L2).
                    inv_sw = <floating> (1.0 / sw_sum)
                    if solver == SOLVER_SGD:
                        _sgd_step(p, G, mp, n_coefs, alpha_f, inv_sw, lr_f,
                                  mu_f, nesterov)
                        _sgd_step(p + n_coefs, G + n_coefs, mp + n_coefs,
                                  n_params - n_coefs, zero, inv_sw, lr_f,
                                  mu_f, nesterov)
                    else:
                        t += 1
                        neg_lr_t = <floating> -(lr_init
                                                * sqrt(1 - pow(beta_2, <double> t))
                                                / (1 - pow(beta_1, <double> t)))
                        _adam_step(p, G, mp, vp, n_coefs, alpha_f, inv_sw,
                                   b1, one_b1, b2, one_b2, neg_lr_t, eps_f)
                        _adam_step(p + n_coefs, G + n_coefs, mp + n_coefs,
                                   vp + n_coefs, n_params - n_coefs, zero,
                                   inv_sw, b1, one_b1, b2, one_b2, neg_lr_t,
                                   eps_f)
                    batch = bi + 1
                    if fastbp_now() - chunk_start > _CHUNK_SECONDS:
                        break
            PyErr_CheckSignals()        # Ctrl-C: raises KeyboardInterrupt
    finally:
        t_inout[0] = t
    return accumulated


# ============================================================ test shims
# Thin def wrappers around the nogil helpers, for tests/test_cython_backend.py.

def _gemm_shim(bint trans_a, bint trans_b, double alpha,
               const floating[:, ::1] A, const floating[:, ::1] B,
               double beta, floating[:, ::1] C):
    """IN/OUT C: ``C = alpha * op(A) @ op(B) + beta * C`` (row-major)."""
    cdef int m = C.shape[0], n = C.shape[1]
    cdef int k = A.shape[0] if trans_a else A.shape[1]
    cdef int kb = B.shape[1] if trans_b else B.shape[0]
    if (A.shape[1] if trans_a else A.shape[0]) != m or kb != k or \
            (B.shape[0] if trans_b else B.shape[1]) != n:
        raise ValueError("gemm: shapes do not match.")
    with nogil:
        _gemm(trans_a, trans_b, m, n, k, <floating> alpha, &A[0, 0],
              <int> A.shape[1], &B[0, 0], <int> B.shape[1], <floating> beta,
              &C[0, 0], <int> C.shape[1])


def _activation_shim(int code, floating[:, ::1] H, floating[:, ::1] Z_out):
    """Output-layer activation ``Z_out = f(H)`` (softmax too), with a zero
    bias; hidden activations through the fused bias pass when not softmax.
    IN/OUT: H (bias added in place), Z_out."""
    cdef Py_ssize_t B = H.shape[0], width = H.shape[1]
    cdef floating[::1] zero = np.zeros(width, dtype=np.asarray(H).dtype)
    cdef floating[:, ::1] H2 = np.array(H, copy=True)
    with nogil:
        _output_act(code, &H[0, 0], &zero[0], B, width, &Z_out[0, 0])
        if code != SOFTMAX:
            # the hidden-layer path must agree with the output-layer path
            _bias_act(code, &H2[0, 0], &zero[0], B, width)
    return np.asarray(H2)


def _derivative_shim(int code, const floating[:, ::1] Z, floating[:, ::1] D):
    """IN/OUT D: ``D *= f'(H)`` written with Z = f(H)."""
    with nogil:
        _derivative(code, &Z[0, 0], &D[0, 0], Z.shape[0] * Z.shape[1])


def _maxout_shim(const floating[:, ::1] H, int k):
    """Return (Z, arg) of maxout with k pieces (zero bias)."""
    cdef Py_ssize_t B = H.shape[0], units = H.shape[1] // k
    dtype = np.asarray(H).dtype
    cdef floating[::1] zero = np.zeros(H.shape[1], dtype=dtype)
    Z = np.empty((B, units), dtype=dtype)
    arg = np.empty((B, units), dtype=np.intc)
    cdef floating[:, ::1] Zv = Z
    cdef int[:, ::1] av = arg
    with nogil:
        _bias_maxout(&H[0, 0], &zero[0], B, units, k, &Zv[0, 0], &av[0, 0])
    return Z, arg


def _maxout_backward_shim(const floating[:, ::1] dZ, const int[:, ::1] arg,
                          int k):
    """Return D (B x units*k): dZ routed to the arg-max pieces."""
    cdef Py_ssize_t B = dZ.shape[0], units = dZ.shape[1]
    D = np.empty((B, units * k), dtype=np.asarray(dZ).dtype)
    cdef floating[:, ::1] Dv = D
    with nogil:
        _maxout_backward(&dZ[0, 0], &arg[0, 0], B, units, k, &Dv[0, 0])
    return D


def _debug_index_probe():
    """Index a memoryview out of bounds: IndexError in a FASTBP_DEBUG build
    (boundscheck on); undefined in a release build, so only call it when
    ``DEBUG`` is true."""
    if not DEBUG:
        raise RuntimeError("_debug_index_probe is only safe in a debug build.")
    cdef double[::1] a = np.zeros(3)
    cdef Py_ssize_t i = a.shape[0] + 2
    return a[i]


# ================================================================= wrappers

def _coerce_X(net, X):
    """Return (dense 2-D C-contiguous or dummy, data, indices, indptr, sparse)."""
    dtype = net.dtype
    if sp.issparse(X):
        if X.format != "csr":
            X = X.tocsr()
        data = np.ascontiguousarray(X.data, dtype=dtype)
        indices = np.ascontiguousarray(X.indices, dtype=np.intp)
        indptr = np.ascontiguousarray(X.indptr, dtype=np.intp)
        if X.shape[1] != net.layer_units[0]:
            raise ValueError(
                f"X has {X.shape[1]} features; the network expects "
                f"{net.layer_units[0]}.")
        return np.zeros((0, 0), dtype=dtype), data, indices, indptr, True, X.shape[0]
    X = np.ascontiguousarray(X, dtype=dtype)
    if X.ndim != 2 or X.shape[1] != net.layer_units[0]:
        raise ValueError(
            f"X has shape {X.shape}; the network expects "
            f"(n_samples, {net.layer_units[0]}).")
    return (X, np.zeros(0, dtype=dtype), np.zeros(0, dtype=np.intp),
            np.zeros(1, dtype=np.intp), False, X.shape[0])


def _coerce_params(net, params, what="params"):
    if (not isinstance(params, np.ndarray) or params.dtype != net.dtype
            or params.ndim != 1 or not params.flags.c_contiguous
            or params.shape[0] != net.n_params):
        raise ValueError(
            f"{what} must be a contiguous 1-D {net.dtype} array of length "
            f"{net.n_params}.")
    return params


def _coerce_params_ro(net, params):
    params = np.ascontiguousarray(params, dtype=net.dtype)
    if params.ndim != 1 or params.shape[0] != net.n_params:
        raise ValueError(f"params must have length {net.n_params}.")
    return params


def _coerce_Y(net, Y, n):
    Y = np.ascontiguousarray(Y, dtype=net.dtype)
    if Y.ndim != 2 or Y.shape != (n, net.layer_units[net.n_layers - 1]):
        raise ValueError(
            f"Y has shape {Y.shape}; expected {(n, net.layer_units[net.n_layers - 1])}.")
    return Y


def _coerce_sw(net, sample_weight, n):
    if sample_weight is None:
        return np.zeros(0, dtype=net.dtype), False
    sw = np.ascontiguousarray(sample_weight, dtype=net.dtype)
    if sw.shape != (n,):
        raise ValueError(
            f"sample_weight has shape {sw.shape}; expected {(n,)}.")
    return sw, True


def forward(net, params, X, logits=False):
    """Predict path: the output activation ``Z_L`` (or ``H_L`` when
    ``logits=True``), a new (n, n_outputs) array."""
    params = _coerce_params_ro(net, params)
    X, data, indices, indptr, sparse, n = _coerce_X(net, X)
    out = np.empty((n, net.layer_units[net.n_layers - 1]), dtype=net.dtype)
    if n == 0:
        return out
    block = min(n, _FORWARD_BLOCK)
    layout = _Layout(net, block, False)
    layout.block = block
    if net.dtype == np.float32:
        _forward_kernel["float"](net, layout, params, X, data, indices, indptr,
                               sparse, out, bool(logits))
    else:
        _forward_kernel["double"](net, layout, params, X, data, indices, indptr,
                                sparse, out, bool(logits))
    return out


def loss_grad(net, params, X, Y, sample_weight=None, alpha=0.0, grad_out=None):
    """Loss and flat gradient of one batch (all rows of X)."""
    params = _coerce_params_ro(net, params)
    X, data, indices, indptr, sparse, n = _coerce_X(net, X)
    if n == 0:
        raise ValueError("loss_grad needs at least one sample.")
    Y = _coerce_Y(net, Y, n)
    sw, has_sw = _coerce_sw(net, sample_weight, n)
    if grad_out is None:
        grad = np.empty(net.n_params, dtype=net.dtype)
    else:
        grad = _coerce_params(net, grad_out, "grad_out")
    layout = _Layout(net, n, False)
    if net.dtype == np.float32:
        loss = _loss_grad_kernel["float"](net, layout, params, X, data, indices,
                                        indptr, sparse, Y, sw, has_sw,
                                        float(alpha), grad)
    else:
        loss = _loss_grad_kernel["double"](net, layout, params, X, data, indices,
                                         indptr, sparse, Y, sw, has_sw,
                                         float(alpha), grad)
    return float(loss), grad


# ------------------------------------------------------------ BLAS threads
# Minibatch GEMMs are small. Measured on a 2-core EPYC (AVX2, OpenBLAS 0.3.30,
# sgemm pair H = X W and dW = X^T D, 2 threads vs 1, machine otherwise idle):
#     largest GEMM (multiply-adds)    65k-262k   524k        1M-50M
#     time with 2 threads / 1 thread  1.17-1.24  0.76-0.90   0.48-0.75
# and whenever the second core is busy (another process, a Python thread)
# a 2-thread GEMM waits for it: 2x-100x slower at every size. Rule: run the
# epoch on one BLAS thread when the largest GEMM of a minibatch (batch_size x
# fan_in x fan_out) is below BLAS_SINGLE_THREAD_BELOW multiply-adds; above it
# keep the user's setting (threadpoolctl / OPENBLAS_NUM_THREADS; limit it to 1
# on a shared machine). Workload W (784x256) keeps its threads from batch 2
# up. Decided once per train_epoch call, never per batch. Set the attribute to
# 0 to never limit.
BLAS_SINGLE_THREAD_BELOW = 2 ** 20

_controller = None


def _blas_threads(net, batch_size):
    """BLAS threads for an epoch: 1 for small minibatch GEMMs, else None
    (leave the user's setting)."""
    largest = max(fi * fo for fi, fo in zip(net.fan_in, net.fan_out))
    if batch_size * largest < BLAS_SINGLE_THREAD_BELOW:
        return 1
    return None


# BLAS's thread count is process-wide, so concurrent epochs (fits in threads,
# GridSearchCV(n_jobs=2) with joblib's threading backend) share one limit:
# it is set when the first epoch that needs it starts, and restored when the
# last running epoch ends. Two epochs running at once always use one BLAS
# thread each: each has its own core, and a 2-thread GEMM would wait for the
# busy one.
import threading as _threading

_epochs_lock = _threading.Lock()
_epochs_running = 0
_limiter = None


def _limit_blas_to_one():
    global _controller
    try:
        if _controller is None:
            from threadpoolctl import ThreadpoolController
            _controller = ThreadpoolController()
        return _controller.limit(limits=1, user_api="blas")
    except Exception:  # threadpoolctl missing or failing: not fatal
        return None


class _EpochThreads:
    """Context of one train_epoch call: one BLAS thread when ``single`` or
    when another epoch runs concurrently; the user's setting otherwise."""

    def __init__(self, single):
        self.single = single

    def __enter__(self):
        global _epochs_running, _limiter
        with _epochs_lock:
            _epochs_running += 1
            if _limiter is None and (self.single or _epochs_running > 1):
                _limiter = _limit_blas_to_one()
        return self

    def __exit__(self, *exc):
        global _epochs_running, _limiter
        with _epochs_lock:
            _epochs_running -= 1
            if _epochs_running == 0 and _limiter is not None:
                try:
                    _limiter.restore_original_limits()
                finally:
                    _limiter = None
        return False


def train_epoch(net, params, opt_state, X, Y, sample_weight, order, batch_size,
                hyper):
    """One pass over the rows ``order`` in minibatches of ``batch_size``;
    updates ``params`` and ``opt_state`` in place; returns the mean loss
    ``sum(batch_loss * batch_len) / len(order)``."""
    params = _coerce_params(net, params)
    X, data, indices, indptr, sparse, n_rows = _coerce_X(net, X)
    order = np.ascontiguousarray(order, dtype=np.intp)
    n = order.shape[0]
    if n == 0:
        return 0.0
    if order.min() < 0 or order.max() >= n_rows:
        raise ValueError("order holds row indices outside X.")
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    Y = _coerce_Y(net, Y, n_rows)
    sw, has_sw = _coerce_sw(net, sample_weight, n_rows)
    m = _coerce_params(net, opt_state.m, "opt_state.m")
    if opt_state.code == _ADAM:
        v = _coerce_params(net, opt_state.v, "opt_state.v")
    else:
        v = np.zeros(0, dtype=net.dtype)
    B = min(batch_size, n)
    layout = _Layout(net, B, not sparse)
    layout.grad = np.empty(net.n_params, dtype=net.dtype)
    t = np.array([opt_state.t], dtype=np.longlong)
    kernel = (_train_epoch_kernel["float"] if net.dtype == np.float32
              else _train_epoch_kernel["double"])
    try:
        with _EpochThreads(_blas_threads(net, batch_size) == 1):
            total = kernel(
                net, layout, params, m, v, t, X, data, indices, indptr, sparse,
                Y, sw, has_sw, order, batch_size, int(opt_state.code),
                float(opt_state.learning_rate),
                float(opt_state.learning_rate_init), float(hyper.alpha),
                float(hyper.momentum), bool(hyper.nesterov),
                float(hyper.beta_1), float(hyper.beta_2), float(hyper.epsilon))
    finally:
        opt_state.t = int(t[0])
    return total / n
