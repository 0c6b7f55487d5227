# cython: language_level=3
"""The compiled backend: forward, backward and whole training epochs in C.

Same contract and the same numbers as :mod:`fastbp._numpy_backend` (see
tests/test_parity.py); only the speed differs.
"""

# Design:
#
#   1. The public functions (``forward``, ``loss_grad``, ``train_epoch``, at
#      the end) are short drivers: ``fastbp._backend_input`` checks and
#      coerces their arguments (the same checks as the NumPy backend's), a
#      ``_Workspace`` sets up the scratch memory once per call, and the work
#      runs in *chunks* inside one ``fastbp._blas_threads`` session, which
#      chooses the BLAS thread count before each chunk. Between chunks the
#      GIL is held by Python code, so Ctrl-C raises KeyboardInterrupt there.
#   2. Chunk kernels (``_*_chunk``): typed, contiguity-declared memoryviews
#      turned into raw pointers; each runs units of work (minibatches, blocks
#      of rows) without the GIL from a start index until about
#      ``_CHUNK_SECONDS`` are spent, and returns where it stopped. The same
#      batches in the same order as one uninterrupted loop: same numbers.
#   3. One minibatch = gather rows -> ``_forward`` -> ``_loss_delta`` ->
#      ``_backward`` -> one fused optimizer pass (``_sgd_step`` /
#      ``_adam_step``) that also applies the L2 term and the 1/sum(weights)
#      scaling (``_l2_and_scale`` of loss_grad), so the flat gradient buffer is
#      read exactly once.
#   4. ``cdef ... noexcept nogil`` helpers on raw pointers: the row-major
#      ``_gemm`` (the only place that knows Fortran BLAS is column-major), the
#      CSR products for the first layer, fused bias+activation, fused
#      derivative x delta, maxout routing, the output layer with its loss.
#      Plain C (the clock, the vectorized optimizer loops) is in _kernels.h.
#
# Memory layout of every batch buffer is row-major (rows = samples), with the
# row stride equal to the layer's width; a partial last batch uses the first
# rows of the same buffers. The flat parameter buffer holds all W_l (C order)
# then all b_l; its layout comes from ``net`` as a (5, L) intp table.

import os

import numpy as np

from cython cimport floating
from cpython.exc cimport PyErr_CheckSignals
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from libc.math cimport (exp, expf, log, logf, log1p, log1pf, expm1, expm1f,
                        tanh, tanhf, sqrt, fabs, fabsf, pow, erf, erff)
from libc.string cimport memcpy, memset
from libc.limits cimport INT_MAX
from libc.stdint cimport uint64_t
from scipy.linalg.cython_blas cimport sgemm, dgemm, sdot, ddot

from . import _backend_input as _input
from . import activations as _act
from .solvers import SGD as _SGD, ADAM as _ADAM

name = "cython"

cdef extern from "_kernels.h":
    const int fastbp_debug_build
    ctypedef void (*fastbp_job_fn)(void*) noexcept nogil
    ctypedef struct fastbp_helper:
        int running
    enum: FASTBP_HAVE_HELPER
    int fastbp_helper_start(fastbp_helper* h) noexcept nogil
    void fastbp_helper_post(fastbp_helper* h, fastbp_job_fn fn,
                            void* arg) noexcept nogil
    void fastbp_helper_wait(fastbp_helper* h) noexcept nogil
    void fastbp_helper_stop(fastbp_helper* h) noexcept nogil
    long fastbp_helper_jobs_done() noexcept nogil
    double fastbp_now() noexcept nogil
    void fastbp_adam_f(float* p, const float* G, float* m, float* v,
                       Py_ssize_t n, float alpha, float inv_sw, float b1,
                       float one_b1, float b2, float one_b2, float neg_lr_t,
                       float eps, float decay) noexcept nogil
    void fastbp_adam_d(double* p, const double* G, double* m, double* v,
                       Py_ssize_t n, double alpha, double inv_sw, double b1,
                       double one_b1, double b2, double one_b2,
                       double neg_lr_t, double eps, double decay) noexcept nogil
    void fastbp_sgd_f(float* p, const float* G, float* vel, Py_ssize_t n,
                      float alpha, float inv_sw, float lr, float mu,
                      int nesterov, float decay) noexcept nogil
    void fastbp_sgd_d(double* p, const double* G, double* vel, Py_ssize_t n,
                      double alpha, double inv_sw, double lr, double mu,
                      int nesterov, double decay) noexcept nogil
    double fastbp_grad_sqnorm_f(const float* p, const float* G, Py_ssize_t n,
                                float alpha, float inv_sw) noexcept nogil
    double fastbp_grad_sqnorm_d(const double* p, const double* G,
                                Py_ssize_t n, double alpha,
                                double inv_sw) noexcept nogil
    enum: FASTBP_RNG_WORDS
    void fastbp_rng_seed(uint64_t* state, uint64_t seed) noexcept nogil
    void fastbp_dropout_f(const float* Z, float* Zm, float* M, Py_ssize_t n,
                          uint64_t threshold, float scale,
                          uint64_t* state) noexcept nogil
    void fastbp_dropout_d(const double* Z, double* Zm, double* M,
                          Py_ssize_t n, uint64_t threshold, double scale,
                          uint64_t* state) noexcept nogil
    void fastbp_vecmath_f(int which, const float* x, float* y,
                          Py_ssize_t n) noexcept nogil
    void fastbp_elu_f(float* h, Py_ssize_t n) noexcept nogil
    void fastbp_selu_f(float* h, Py_ssize_t n, float sc,
                       float sa) noexcept nogil
    void fastbp_gelu_f(float* h, float* g, Py_ssize_t n, float inv_sqrt2,
                       float inv_sqrt_2pi) noexcept nogil
    void fastbp_silu_f(float* h, float* g, Py_ssize_t n) noexcept nogil
    void fastbp_elu_derivative_f(const float* Z, float* D,
                                 Py_ssize_t n) noexcept nogil
    void fastbp_elu_derivative_d(const double* Z, double* D,
                                 Py_ssize_t n) noexcept nogil
    void fastbp_selu_derivative_f(const float* Z, float* D, Py_ssize_t n,
                                  float sa, float sc) noexcept nogil
    void fastbp_selu_derivative_d(const double* Z, double* D, Py_ssize_t n,
                                  double sa, double sc) noexcept nogil

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
    LEAKY_RELU = 8
    ELU = 9
    SELU = 10
    GELU = 11
    SILU = 12

cdef enum:
    SQUARED_ERROR = 0
    LOG_LOSS = 1
    POISSON = 2

cdef enum:
    SOLVER_SGD = 0
    SOLVER_ADAM = 1

assert (_act.IDENTITY, _act.LOGISTIC, _act.TANH, _act.RELU, _act.SOFTPLUS,
        _act.MAXOUT, _act.EXP, _act.SOFTMAX, _act.LEAKY_RELU, _act.ELU,
        _act.SELU, _act.GELU, _act.SILU) == tuple(range(13))
assert (_act.SQUARED_ERROR, _act.LOG_LOSS, _act.POISSON) == (0, 1, 2)
assert (_SGD, _ADAM) == (SOLVER_SGD, SOLVER_ADAM)

# SELU's constants and GELU's 1/sqrt(2), 1/sqrt(2 pi): activations.py's values
# (cast to the kernel's type where used, as NumPy casts them).
cdef double SELU_SCALE = _act.SELU_SCALE
cdef double SELU_SCALE_ALPHA = _act.SELU_SCALE_ALPHA
cdef double INV_SQRT2 = _act.INV_SQRT2
cdef double INV_SQRT_2PI = _act.INV_SQRT_2PI

# Seconds of work per chunk: a chunk kernel returns to Python (BLAS-thread
# policy, Ctrl-C) after the unit that crosses this budget.
cdef double _CHUNK_SECONDS = 0.02
# Rows per unit of work on the predict path and in loss_grad. (The predict
# path's blocks run as two shares of 512 rows where a chunk may get two
# threads: 512-row blocks, in shares of 256 rows, each packing W_1 for half
# as many rows, were 8-18% slower on one thread beside busy processes.)
_FORWARD_BLOCK = 1024
_LOSS_GRAD_BLOCK = 2048


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

cdef inline floating _erf(floating x) noexcept nogil:
    if floating is float:
        return erff(x)
    else:
        return erf(x)

cdef inline floating _gauss_cdf(floating x) noexcept nogil:
    # Phi(x) = (erf(x / sqrt(2)) + 1) / 2, in the kernel's type throughout
    cdef floating one = 1, half = 0.5
    return (_erf(x * <floating> INV_SQRT2) + one) * half

cdef inline floating _sigmoid(floating x) noexcept nogil:
    # 1 / (1 + e^-x), in the kernel's type (silu; e^-x -> inf gives 0)
    cdef floating one = 1
    return one / (one + _exp(-x))

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
    int out_act, loss, k      # k: maxout_pieces (of the maxout layers)
    bint canonical
    double slope              # negative_slope of leaky_relu layers
    Py_ssize_t n_params, n_coefs
    const Py_ssize_t* fan_in  # rows of W_l
    const Py_ssize_t* fan_out  # columns of W_l (units * k for maxout)
    const Py_ssize_t* units   # output units of layer l
    const Py_ssize_t* coef_off
    const Py_ssize_t* icpt_off
    const Py_ssize_t* acts    # activation code of hidden layer l (l < L-1)


cdef struct Dropout:
    # xoshiro256** lanes (_kernels.h), kept across chunks
    uint64_t state[FASTBP_RNG_WORDS]
    const uint64_t* threshold     # per hidden layer: floor(p * 2^32)
    const double* scale           # per hidden layer: 1 / (1 - p)


cdef struct Buffers:
    # Per-layer pointers into the scratch buffers (layer l = 0 .. L-1).
    void** Z         # Z[l]: activation output of hidden layer l (B x units)
    void** H         # H[l]: maxout's pre-activation (B x units*k), gelu's and
                     # silu's derivative f'(H) (B x units; workspaces for a
                     # backward pass only), or NULL
    int** arg        # arg[l]: maxout arg-max piece (B x units) or NULL
    void* H_out      # output pre-activation (B x n_out)
    void* Z_out      # output activation (B x n_out)
    void* D0         # deltas, ping-pong (B x max width)
    void* D1
    void* dZ         # dJ/dZ before maxout routing (B x max units)
    void* Xb         # gathered dense minibatch (B x n_features) or NULL
    # Dropout (layer l with a rate > 0; else NULL): Zm[l] = Z[l] * M[l], what
    # layer l passes on (to layer l+1 and to dJ/dW_{l+1}); M[l] the mask, 0
    # or 1/(1-p) (B x units). Z[l] stays unmasked: the derivatives are
    # written with the output (logistic: Z(1-Z)). ``drop``: the generator
    # _forward draws M with (training), or NULL: M as it is (a test shim).
    void** Zm
    void** M
    Dropout* drop
    # train_epoch's two-thread step (``_rows_part``): the delta of every
    # layer kept at once, Dl[l] (B x fan_out[l]; Dl[L-1] is D0), or NULL
    void** Dl


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


cdef class _Workspace:
    """The set-up shared by every kernel call: the network's shape as a
    ``Spec`` and scratch memory for batches of up to ``rows`` rows with its
    per-layer pointers as ``Buffers``. Made once per backend call (never per
    batch); per-layer pointer arrays are sized by the network, so any depth
    works.

    ``gather``: room for a dense minibatch gathered from X (train_epoch);
    ``grad``: a gradient buffer (train_epoch; loss_grad writes the caller's);
    ``backward``: the calls run backward passes (not the predict path), so
    gelu/silu layers keep their derivative.
    ``dropout``: one rate per hidden layer (train_epoch), or None; the masks
    are drawn once :meth:`_seed_dropout` has seeded the generator.
    """

    cdef Spec spec
    cdef Buffers buf
    cdef readonly Py_ssize_t rows
    cdef void* G                  # gradient buffer or NULL
    cdef void** layer_ptrs        # Z[l] then H[l], l = 0 .. L-1
    cdef int** arg_ptrs           # arg[l]
    cdef object table, scratch, args, grad   # owners of the memory above
    cdef void** drop_ptrs         # Zm[l] then M[l] (dropout), l = 0 .. L-1
    cdef Dropout drop
    cdef object drop_table        # owner of drop.threshold, drop.scale
    cdef fastbp_helper helper     # train_epoch's second thread (one chunk)
    cdef void** delta_ptrs        # Dl[l], l = 0 .. L-1 (gather workspaces)
    cdef Buffers view             # buf from a row on (_shift_rows)
    cdef Buffers undrawn          # buf with no generator (_draw_masks)
    cdef void** view_ptrs         # its per-layer pointers: Z, H, Dl, Zm, M
    cdef int** view_args          # its arg[l]

    def __cinit__(self, net, Py_ssize_t rows, bint gather, bint grad,
                  bint backward=True, dropout=None):
        cdef Py_ssize_t L = net.n_layers - 1, l
        cdef Py_ssize_t itemsize = net.dtype.itemsize
        cdef const Py_ssize_t[:, ::1] table
        cdef char[::1] raw
        cdef int[::1] args
        cdef char* base
        cdef Py_ssize_t arg_off = 0
        maxouts = [a == "maxout" for a in net.activations]
        keep = [m or (backward and k)
                for m, k in zip(maxouts, net.keeps_pre_activation)]
        maxout = any(maxouts)
        units = net.layer_units[1:]
        fan_out = net.fan_out
        # BLAS takes 32-bit sizes: every GEMM dimension, and n of the dot
        # over a whole weight matrix.
        largest = max(fi * fo for fi, fo in net.coef_shapes)
        if max(rows, largest, net.layer_units[0]) > INT_MAX:
            raise ValueError(
                "Layer or batch too large for the compiled backend's 32-bit "
                "BLAS sizes; use backend='numpy' or smaller batches.")
        self.rows = rows
        self.table = np.ascontiguousarray(
            [net.fan_in, fan_out, units, net.coef_offsets,
             net.intercept_offsets,
             list(net.activation_codes) + [net.out_activation_code]],
            dtype=np.intp)
        table = self.table
        self.spec.L = L
        self.spec.slope = net.negative_slope
        self.spec.out_act = net.out_activation_code
        self.spec.loss = net.loss_code
        self.spec.k = net.maxout_pieces if maxout else 1
        self.spec.canonical = net.canonical_output
        self.spec.n_params = net.n_params
        self.spec.n_coefs = net.n_coefs
        self.spec.fan_in = &table[0, 0]
        self.spec.fan_out = &table[1, 0]
        self.spec.units = &table[2, 0]
        self.spec.coef_off = &table[3, 0]
        self.spec.icpt_off = &table[4, 0]
        self.spec.acts = &table[5, 0]

        # Element offsets of every buffer in one scratch block, each starting
        # on an 8-element boundary (from the base).
        sizes = []          # (buffer, elements)
        for l in range(L - 1):
            sizes.append((("Z", l), rows * units[l]))
            if keep[l]:
                sizes.append((("H", l), rows * fan_out[l]))
        n_out = units[L - 1]
        width = max(list(fan_out) + list(units))
        sizes += [("H_out", rows * n_out), ("Z_out", rows * n_out),
                  ("D0", rows * width), ("D1", rows * width)]
        if maxout:
            sizes.append(("dZ", rows * max(units)))
        if gather:
            sizes.append(("Xb", rows * net.layer_units[0]))
        if backward:
            # the two-thread step's deltas (Dl[L-1] is D0)
            for l in range(L - 1):
                sizes.append((("Dl", l), rows * fan_out[l]))
        rates = [0.0] * (L - 1) if dropout is None else list(dropout)
        if len(rates) != L - 1:
            raise ValueError(f"dropout must have {L - 1} rates; got {rates}.")
        for l in range(L - 1):
            if rates[l] > 0:
                sizes += [(("Zm", l), rows * units[l]),
                          (("M", l), rows * units[l])]
        offsets = {}        # in bytes
        total = 0
        for key, size in sizes:
            offsets[key] = total * itemsize
            total += -(-size // 8) * 8 + 8
        self.scratch = np.empty(total, dtype=net.dtype)
        self.args = np.empty(
            max(rows * sum(u for u, m in zip(units[:L - 1], maxouts) if m), 1),
            dtype=np.intc)
        raw = self.scratch.view(np.uint8)
        args = self.args
        base = &raw[0]

        self.layer_ptrs = <void**> PyMem_Calloc(2 * L, sizeof(void*))
        self.arg_ptrs = <int**> PyMem_Calloc(L, sizeof(int*))
        self.drop_ptrs = <void**> PyMem_Calloc(2 * L, sizeof(void*))
        self.delta_ptrs = <void**> PyMem_Calloc(L, sizeof(void*))
        self.view_ptrs = <void**> PyMem_Calloc(5 * L, sizeof(void*))
        self.view_args = <int**> PyMem_Calloc(L, sizeof(int*))
        if (self.layer_ptrs == NULL or self.arg_ptrs == NULL
                or self.drop_ptrs == NULL or self.delta_ptrs == NULL
                or self.view_ptrs == NULL or self.view_args == NULL):
            raise MemoryError()
        for l in range(L - 1):
            self.layer_ptrs[l] = base + <Py_ssize_t> offsets["Z", l]
            if keep[l]:
                self.layer_ptrs[L + l] = base + <Py_ssize_t> offsets["H", l]
            if maxouts[l]:
                self.arg_ptrs[l] = &args[arg_off]
                arg_off += rows * units[l]
        self.buf.Z = self.layer_ptrs
        self.buf.H = self.layer_ptrs + L
        self.buf.arg = self.arg_ptrs
        self.buf.H_out = base + <Py_ssize_t> offsets["H_out"]
        self.buf.Z_out = base + <Py_ssize_t> offsets["Z_out"]
        self.buf.D0 = base + <Py_ssize_t> offsets["D0"]
        self.buf.D1 = base + <Py_ssize_t> offsets["D1"]
        self.buf.dZ = base + <Py_ssize_t> offsets["dZ"] if maxout else NULL
        self.buf.Xb = base + <Py_ssize_t> offsets["Xb"] if gather else NULL
        # Dropout: drop when the 32-bit draw < floor(p * 2^32) (exact: p is
        # a double, the product a power-of-two scaling of it).
        self.drop_table = np.zeros((2, max(L - 1, 1)), dtype=np.float64)
        thresholds = self.drop_table[0].view(np.uint64)
        for l in range(L - 1):
            if rates[l] > 0:
                self.drop_ptrs[l] = base + <Py_ssize_t> offsets["Zm", l]
                self.drop_ptrs[L + l] = base + <Py_ssize_t> offsets["M", l]
                thresholds[l] = int(rates[l] * 2.0**32)
                self.drop_table[1, l] = 1.0 / (1.0 - rates[l])
        self.buf.Zm = self.drop_ptrs
        self.buf.M = self.drop_ptrs + L
        self.buf.drop = NULL
        self.buf.Dl = NULL
        if backward:
            for l in range(L - 1):
                self.delta_ptrs[l] = base + <Py_ssize_t> offsets["Dl", l]
            self.delta_ptrs[L - 1] = self.buf.D0
            self.buf.Dl = self.delta_ptrs

        self.G = NULL
        if grad:
            self.grad = np.empty(net.n_params, dtype=net.dtype)
            raw = self.grad.view(np.uint8)
            self.G = &raw[0]

    def _seed_dropout(self, seed):
        """Seed the generator of the dropout masks (``seed`` in [0, 2**64));
        from then on _forward draws a new mask for each batch."""
        cdef double[:, ::1] table = self.drop_table
        fastbp_rng_seed(&self.drop.state[0], <uint64_t> int(seed))
        self.drop.threshold = <const uint64_t*> &table[0, 0]
        self.drop.scale = &table[1, 0]
        self.buf.drop = &self.drop

    def __dealloc__(self):
        fastbp_helper_stop(&self.helper)   # (stopped by its chunk already)
        PyMem_Free(self.layer_ptrs)
        PyMem_Free(self.arg_ptrs)
        PyMem_Free(self.drop_ptrs)
        PyMem_Free(self.delta_ptrs)
        PyMem_Free(self.view_ptrs)
        PyMem_Free(self.view_args)


cdef inline const floating* _ptr1(const floating[::1] a) noexcept:
    return &a[0] if a.shape[0] > 0 else NULL


cdef inline void _set_input(Input* inp, bint sparse,
                            const floating[::1] X_data,
                            const Py_ssize_t[::1] X_indices,
                            const Py_ssize_t[::1] X_indptr) noexcept:
    """The CSR part of ``inp`` (dense rows are set per unit of work)."""
    inp.sparse = sparse
    inp.dense = NULL
    inp.data = <const void*> _ptr1(X_data)
    inp.indices = &X_indices[0] if X_indices.shape[0] > 0 else NULL
    inp.indptr = &X_indptr[0]
    inp.rows = NULL
    inp.row0 = 0


cdef inline void _input_at(Input* inp, const void* X, Py_ssize_t row,
                           Py_ssize_t row_bytes) noexcept nogil:
    """``inp`` from row ``row`` of the input on (CSR: ``row0``; dense:
    also the rows' start in X, rows of ``row_bytes``)."""
    inp.row0 = row
    if not inp.sparse:
        inp.dense = <const void*> (<const char*> X + row * row_bytes)


# ======================================================= elementwise kernels

cdef void _bias_act(int code, floating* H, const floating* b,
                    Py_ssize_t B, Py_ssize_t width,
                    floating slope) noexcept nogil:
    """Hidden layer, in place: ``H = f(H + b)`` (NumPy: ``H += b; f(H)``),
    row by row so the second pass reads the row from L1."""
    cdef Py_ssize_t r, j
    cdef floating* h
    for r in range(B):
        h = H + r * width
        for j in range(width):
            h[j] += b[j]
        _act_flat(code, h, width, slope)


cdef void _bias_act_grad(int code, floating* H, const floating* b,
                         Py_ssize_t B, Py_ssize_t width,
                         floating* G) noexcept nogil:
    """gelu/silu layer of a backward pass, in place: ``H = f(H + b)`` and
    ``G = f'(H + b)``, the derivative the backward pass multiplies by,
    evaluated here where the pre-activation is at hand (and gelu's erf,
    silu's sigmoid already computed), row by row (the row is in L1). The
    operation order of activations.gelu/silu and *_derivative_at."""
    cdef Py_ssize_t r, j
    cdef floating* h
    cdef floating* g
    cdef floating x, p, e
    cdef floating c2 = <floating> INV_SQRT_2PI, neg_half = -0.5, one = 1
    for r in range(B):
        h = H + r * width
        g = G + r * width
        for j in range(width):
            h[j] += b[j]
        if floating is float:
            # the same operations, vectorized exp/erf/sigmoid (_kernels.h)
            if code == GELU:
                fastbp_gelu_f(h, g, width, <float> INV_SQRT2, c2)
            else:
                fastbp_silu_f(h, g, width)
        elif code == GELU:
            for j in range(width):
                x = h[j]
                p = _gauss_cdf(x)                      # Phi(h)
                e = _exp((x * x) * neg_half)           # sqrt(2 pi) phi(h)
                h[j] = x * p                           # h Phi(h)
                g[j] = e * c2 * x + p                  # Phi(h) + h phi(h)
        else:  # SILU
            for j in range(width):
                x = h[j]
                p = _sigmoid(x)
                h[j] = x * p
                g[j] = ((one - p) * x + one) * p       # s (1 + h (1 - s))


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
                      Py_ssize_t n, floating slope) noexcept nogil:
    """``D *= f'(H)`` written with the output Z, in place over n elements
    (the operation order of activations.*_derivative). Not gelu/silu: see
    ``_derivative_h``."""
    cdef Py_ssize_t i
    cdef floating sa = <floating> SELU_SCALE_ALPHA, sc = <floating> SELU_SCALE
    cdef floating zero = 0
    # 1, computed (slope is finite): the compiler cannot fold D * one into D,
    # so the leaky_relu loop stays a select and a multiply, and vectorizes
    cdef floating one = slope * 0 + 1
    if code == RELU:
        for i in range(n):
            # a select, not a conditional store: it vectorizes (NaN Z keeps
            # D, as -0 and +0 zero it, as NumPy's delta[Z <= 0] = 0)
            D[i] = zero if Z[i] <= 0 else D[i]
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
    elif code == LEAKY_RELU:
        for i in range(n):
            D[i] = D[i] * (slope if Z[i] <= 0 else one)
    elif code == ELU:
        # e^h = Z + 1 for h <= 0, else 1: D * (min(Z, 0) + 1), in C with a
        # bit-operation select, which vectorizes (a ?: here did not)
        if floating is float:
            fastbp_elu_derivative_f(Z, D, n)
        else:
            fastbp_elu_derivative_d(Z, D, n)
    elif code == SELU:
        # scale * alpha * e^h = Z + scale * alpha for h <= 0, else scale
        if floating is float:
            fastbp_selu_derivative_f(Z, D, n, sa, sc)
        else:
            fastbp_selu_derivative_d(Z, D, n, sa, sc)
    # IDENTITY: nothing


cdef void _times(floating* D, const floating* G, Py_ssize_t n) noexcept nogil:
    """``D *= G`` over n elements (gelu/silu: G = f'(H), kept by the
    forward pass)."""
    cdef Py_ssize_t i
    for i in range(n):
        D[i] = D[i] * G[i]


cdef void _colsum(const floating* D, Py_ssize_t B, Py_ssize_t width,
                  bint accumulate, floating* out) noexcept nogil:
    """``out (+)= D.sum(axis=0)`` row after row, as NumPy reduces axis 0."""
    cdef Py_ssize_t r, j
    cdef const floating* d
    if not accumulate:
        memcpy(out, D, width * sizeof(floating))
    else:
        for j in range(width):
            out[j] += D[j]
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
                         Py_ssize_t fi, Py_ssize_t fo, bint accumulate,
                         floating* G) noexcept nogil:
    """``G (+)= X_csr[rows]^T @ D`` (fi x fo) without densifying X."""
    cdef Py_ssize_t b, p, j, r
    cdef floating a
    cdef const floating* data = <const floating*> inp.data
    cdef const floating* d
    cdef floating* g
    if not accumulate:
        memset(G, 0, fi * fo * sizeof(floating))
    for b in range(B):
        r = _row(inp.rows, inp.row0, b)
        d = D + b * fo
        for p in range(inp.indptr[r], inp.indptr[r + 1]):
            a = data[p]
            g = G + inp.indices[p] * fo
            for j in range(fo):
                g[j] += a * d[j]


cdef void _csr_T_times_D_rows(const Input* inp, Py_ssize_t B,
                              const floating* D, Py_ssize_t fo, Py_ssize_t lo,
                              Py_ssize_t hi, bint accumulate,
                              floating* G) noexcept nogil:
    """Rows lo..hi of ``G (+)= X_csr[rows]^T @ D`` (G: fi x fo): the
    two-thread step's half of a sparse first layer's gradient. Each row of
    G sums over the batch in the order of ``_csr_T_times_D``."""
    cdef Py_ssize_t b, p, j, r, c
    cdef floating a
    cdef const floating* data = <const floating*> inp.data
    cdef const floating* d
    cdef floating* g
    if not accumulate:
        memset(G + lo * fo, 0, (hi - lo) * fo * sizeof(floating))
    for b in range(B):
        r = _row(inp.rows, inp.row0, b)
        d = D + b * fo
        for p in range(inp.indptr[r], inp.indptr[r + 1]):
            c = inp.indices[p]
            if c < lo or c >= hi:
                continue
            a = data[p]
            g = G + c * fo
            for j in range(fo):
                g[j] += a * d[j]


# ==================================================================== dropout

cdef inline const void* _passed_on(const Buffers* buf,
                                   Py_ssize_t l) noexcept nogil:
    """What hidden layer l passes on: Z[l], or Zm[l] with dropout."""
    return buf.Zm[l] if buf.Zm[l] != NULL else buf.Z[l]


cdef void _dropout_forward(const Buffers* buf, Py_ssize_t l, Py_ssize_t n,
                           const floating* Z) noexcept nogil:
    """Hidden layer l's dropout over its n outputs Z: draw the mask M[l]
    (training; one pass, _kernels.h) and write Zm[l] = Z * M[l]; without a
    generator (a test shim), only Zm[l] = Z * M[l] with M[l] as given."""
    cdef floating* Zm = <floating*> buf.Zm[l]
    cdef floating* M = <floating*> buf.M[l]
    cdef Dropout* d = buf.drop
    cdef Py_ssize_t i
    if d == NULL:
        for i in range(n):
            Zm[i] = Z[i] * M[i]
    elif floating is float:
        fastbp_dropout_f(Z, Zm, M, n, d.threshold[l], <float> d.scale[l],
                         &d.state[0])
    else:
        fastbp_dropout_d(Z, Zm, M, n, d.threshold[l], d.scale[l],
                         &d.state[0])


cdef inline void _mask_multiply(floating* D, const floating* M,
                                Py_ssize_t n) noexcept nogil:
    """``D *= M`` over n elements (dJ/dZ of a layer with dropout)."""
    cdef Py_ssize_t i
    for i in range(n):
        D[i] = D[i] * M[i]


# ============================================================ forward/backward

cdef struct FirstLayerJob:
    # A share of the first layer's blocked work for train_epoch's helper
    # thread (float32 only): column blocks lo .. hi of the forward product,
    # or row blocks lo .. hi of dJ/dW_1 with their optimizer pass.
    const Spec* s
    const OptStep* o
    const float* X
    const float* W
    float* H
    const float* D
    float* p
    float* G
    float* m
    float* v
    float alpha
    Py_ssize_t B, block, lo, hi


cdef inline Py_ssize_t _helper_split(Py_ssize_t n, Py_ssize_t block) noexcept nogil:
    """Where the calling thread's blocks end and the helper's begin: after
    the first half of the blocks of ``block`` (a block boundary, so both
    threads run exactly the blocks one thread would)."""
    cdef Py_ssize_t blocks = (n + block - 1) // block
    return min(n, ((blocks + 1) // 2) * block)


cdef inline Py_ssize_t _dW1_split(Py_ssize_t fan_in, Py_ssize_t block) noexcept nogil:
    """The two-thread step's rows of dJ/dW_1: the calling thread's end at
    the returned row, the helper's begin there. By blocks of ``block`` rows,
    the helper taking the odd one: the calling thread also forms and steps
    every other layer's gradient (at batch 32 on workload W, 12 of the 25
    blocks here made the epoch 5% faster than 13, same numbers)."""
    return min(fan_in, ((fan_in + block - 1) // block // 2) * block)


cdef void _first_layer_cols(const Spec* s, const floating* X, Py_ssize_t B,
                            const floating* W, floating* H,
                            Py_ssize_t split_cols, Py_ssize_t lo,
                            Py_ssize_t hi) noexcept nogil:
    """H[:, j0:j0+w] = X @ W_1[:, j0:j0+w] for the blocks of ``split_cols``
    columns from ``lo`` (a block boundary) up to ``hi``."""
    cdef Py_ssize_t fi = s.fan_in[0], fo = s.fan_out[0], j0 = lo, w
    while j0 < hi:
        w = min(split_cols, hi - j0)
        _gemm(False, False, <int> B, <int> w, <int> fi, <floating> 1, X,
              <int> fi, W + j0, <int> fo, <floating> 0, H + j0, <int> fo)
        j0 += w


cdef void _forward_cols_job(void* arg) noexcept nogil:
    cdef FirstLayerJob* j = <FirstLayerJob*> arg
    _first_layer_cols(j.s, j.X, j.B, j.W, j.H, j.block, j.lo, j.hi)


cdef void _forward(const Spec* s, const floating* params, const Input* inp,
                   Py_ssize_t B, const Buffers* buf,
                   Py_ssize_t split_cols,
                   fastbp_helper* helper=NULL) noexcept nogil:
    """Forward pass of B rows keeping every layer: hidden outputs in Z[l],
    maxout arg-max in arg[l], the output layer in H_out (pre-activation) and
    Z_out. ``split_cols`` > 0: the first layer's product (dense input) as
    blocks of that many columns (``_split_cols``); ``helper`` (float32, a
    started helper thread, or NULL): the second half of those blocks runs
    on it."""
    cdef FirstLayerJob job
    cdef Py_ssize_t mid
    cdef Py_ssize_t l, fi, fo
    cdef const floating* W
    cdef const floating* b
    cdef const floating* Z_prev
    cdef floating* H
    cdef int code = 0
    cdef floating slope = <floating> s.slope
    for l in range(s.L):
        W = params + s.coef_off[l]
        b = params + s.icpt_off[l]
        fi = s.fan_in[l]
        fo = s.fan_out[l]
        if l == s.L - 1:
            H = <floating*> buf.H_out
        else:
            code = <int> s.acts[l]
            if code == MAXOUT:       # H (units * k columns) apart from Z
                H = <floating*> buf.H[l]
            else:
                H = <floating*> buf.Z[l]
        if l == 0:
            if inp.sparse:
                _csr_times_W(inp, B, W, fo, H)              # H = X @ W_1
            elif split_cols > 0:
                # H[:, j0:j0+w] = X @ W_1[:, j0:j0+w], block by block
                mid = fo
                if floating is float:
                    if helper != NULL:
                        mid = _helper_split(fo, split_cols)
                        job.s = s
                        job.X = <const float*> inp.dense
                        job.B = B
                        job.W = W
                        job.H = H
                        job.block = split_cols
                        job.lo = mid
                        job.hi = fo
                        fastbp_helper_post(helper, _forward_cols_job, &job)
                _first_layer_cols(s, <const floating*> inp.dense, B, W, H,
                                  split_cols, 0, mid)
                if floating is float:
                    if helper != NULL:
                        fastbp_helper_wait(helper)
            else:
                # H = X @ W_1
                _gemm(False, False, <int> B, <int> fo, <int> fi, <floating> 1,
                      <const floating*> inp.dense, <int> fi, W, <int> fo,
                      <floating> 0, H, <int> fo)
        else:
            Z_prev = <const floating*> _passed_on(buf, l - 1)
            # H = Z_{l-1} @ W_l
            _gemm(False, False, <int> B, <int> fo, <int> fi, <floating> 1,
                  Z_prev, <int> fi, W, <int> fo, <floating> 0, H, <int> fo)
        if l < s.L - 1:
            if code == MAXOUT:
                _bias_maxout(H, b, B, s.units[l], s.k, <floating*> buf.Z[l],
                             buf.arg[l])
            elif buf.H[l] != NULL:   # gelu, silu: keep f'(H) for backward
                _bias_act_grad(code, H, b, B, fo, <floating*> buf.H[l])
            else:
                _bias_act(code, H, b, B, fo, slope)
            if buf.M[l] != NULL:
                _dropout_forward(buf, l, B * s.units[l], <floating*> buf.Z[l])
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
        _act_flat(code, Z, n, 0)


cdef void _act_flat(int code, floating* h, Py_ssize_t n,
                    floating slope) noexcept nogil:
    """``h = f(h)`` in place over n contiguous elements (not maxout/softmax);
    ``slope``: leaky_relu's negative slope."""
    cdef Py_ssize_t j
    cdef floating x, pos
    cdef floating sa = <floating> SELU_SCALE_ALPHA, sc = <floating> SELU_SCALE
    # 1, computed (slope is finite), as in _derivative: a select and a
    # multiply, which vectorize
    cdef floating one = slope * 0 + 1
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
    elif code == LEAKY_RELU:
        for j in range(n):
            x = h[j]
            h[j] = x * (slope if x < 0 else one)    # NaN stays
    elif floating is float and code == ELU:
        fastbp_elu_f(h, n)                         # vectorized (_kernels.h)
    elif floating is float and code == SELU:
        fastbp_selu_f(h, n, sc, sa)
    elif floating is float and code == GELU:
        fastbp_gelu_f(h, NULL, n, <float> INV_SQRT2, <float> INV_SQRT_2PI)
    elif floating is float and code == SILU:
        fastbp_silu_f(h, NULL, n)
    elif code == ELU:
        for j in range(n):
            x = h[j]
            h[j] = x if x > 0 else _expm1(x)       # expm1 only of x <= 0
    elif code == SELU:
        for j in range(n):
            x = h[j]
            h[j] = x * sc if x > 0 else _expm1(x) * sa
    elif code == GELU:
        for j in range(n):
            x = h[j]
            h[j] = x * _gauss_cdf(x)               # x Phi(x), erf form
    elif code == SILU:
        for j in range(n):
            x = h[j]
            h[j] = x * _sigmoid(x)                 # exp -> inf: sigmoid 0


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
            _derivative(s.out_act, z, d, width, 0)
        if sw != NULL:
            w = sw[r]
            for j in range(width):
                d[j] = d[j] * w
            total += <double> row_loss * <double> w
        else:
            total += row_loss
    return total


cdef const floating* _backward(const Spec* s, const floating* params,
                               const Input* inp, Py_ssize_t B,
                               const Buffers* buf, bint accumulate,
                               bint skip_dW1, floating* G) noexcept nogil:
    """Unnormalised gradients into G (layout of params), layer L down to 1,
    starting from the output delta D_L in D0 (``accumulate``: add to G)::

        dJ/dW_l = Z_{l-1}^T . D_l        (Z_0 = X)
        dJ/db_l = sum over rows of D_l
        D_{l-1} = D_l . W_l^T  (*) f'(Z_{l-1})   (maxout: routed to the
                                                  arg-max pieces instead;
                                                  gelu/silu: f'(H_{l-1}))

    With dropout on layer l-1, Z_{l-1} in dJ/dW_l is the masked Zm[l-1] and
    D_l . W_l^T is multiplied by the mask M[l-1] before f' (written with the
    unmasked Z[l-1]): the exact gradient of the masked network.

    ``skip_dW1``: leave dJ/dW_1 (first layer, dense input) to the caller,
    which forms it in row blocks fused with the optimizer (``_dW1_step``).
    Returns D_1, the first layer's delta (B x fan_out[0]).
    """
    cdef Py_ssize_t l, fi, fo
    cdef const floating* Z_prev
    cdef floating* D = <floating*> buf.D0
    cdef floating* D_next = <floating*> buf.D1
    cdef floating* tmp
    cdef floating* GW
    cdef floating beta = 1 if accumulate else 0
    for l in range(s.L - 1, -1, -1):
        fi = s.fan_in[l]
        fo = s.fan_out[l]
        GW = G + s.coef_off[l]
        # dJ/dW_l = Z_{l-1}^T . D_l
        if l == 0 and inp.sparse:
            _csr_T_times_D(inp, B, D, fi, fo, accumulate, GW)
        elif l == 0 and skip_dW1:
            pass
        else:
            Z_prev = <const floating*> (inp.dense if l == 0
                                        else _passed_on(buf, l - 1))
            _gemm(True, False, <int> fi, <int> fo, <int> B, <floating> 1,
                  Z_prev, <int> fi, D, <int> fo, beta, GW, <int> fo)
        # dJ/db_l = sum(D_l)
        _colsum(D, B, fo, accumulate, G + s.icpt_off[l])
        if l == 0:
            break
        _propagate(s, params, l, B, buf, D, D_next)
        tmp = D
        D = D_next
        D_next = tmp
    return D


cdef void _propagate(const Spec* s, const floating* params, Py_ssize_t l,
                     Py_ssize_t B, const Buffers* buf, const floating* D,
                     floating* D_next) noexcept nogil:
    """One layer of the backward pass: the delta of layer l-1 from layer
    l's, ``D_next = D . W_l^T (*) f'(Z_{l-1})`` (gelu/silu: f'(H_{l-1});
    maxout: routed to the arg-max pieces through dZ; dropout: times the
    mask first). B rows."""
    cdef const floating* W = params + s.coef_off[l]
    cdef Py_ssize_t fi = s.fan_in[l], fo = s.fan_out[l]
    cdef int code = <int> s.acts[l - 1]
    if code == MAXOUT:
        # dJ/dZ_{l-1} = D_l . W_l^T, routed to the arg-max pieces
        _gemm(False, True, <int> B, <int> fi, <int> fo, <floating> 1,
              D, <int> fo, W, <int> fo, <floating> 0,
              <floating*> buf.dZ, <int> fi)
        if buf.M[l - 1] != NULL:
            _mask_multiply(<floating*> buf.dZ,
                           <const floating*> buf.M[l - 1], B * fi)
        _maxout_backward(<const floating*> buf.dZ, buf.arg[l - 1], B,
                         s.units[l - 1], s.k, D_next)
    else:
        # D_{l-1} = D_l . W_l^T (*) f'(Z_{l-1})  (gelu, silu: f'(H_{l-1}))
        _gemm(False, True, <int> B, <int> fi, <int> fo, <floating> 1,
              D, <int> fo, W, <int> fo, <floating> 0, D_next, <int> fi)
        if buf.M[l - 1] != NULL:
            _mask_multiply(D_next, <const floating*> buf.M[l - 1], B * fi)
        if code == GELU or code == SILU:
            _times(D_next, <const floating*> buf.H[l - 1], B * fi)
        else:
            _derivative(code, <const floating*> buf.Z[l - 1], D_next,
                        B * fi, <floating> s.slope)


cdef double _l2(const Spec* s, const floating* params) noexcept nogil:
    """``sum_l ||W_l||^2`` (per layer with BLAS dot, as the NumPy backend)."""
    cdef Py_ssize_t l
    cdef double values = 0
    for l in range(s.L):
        values += _sqnorm(params + s.coef_off[l],
                          <int> (s.fan_in[l] * s.fan_out[l]))
    return values


cdef double _l2_half(const Spec* s, const floating* params,
                     bint second) noexcept nogil:
    """One of the two halves of the penalty train_epoch adds to each
    minibatch's loss (``_l2_half(0) + _l2_half(1)`` is ``sum_l ||W_l||^2``):
    the first ``fan_in // 2`` rows of W_1 and every other layer, or the rest
    of W_1. The two-thread step forms one half on each thread, in share 1;
    every other path makes the same two calls, so the loss is the same
    whichever path and threads a minibatch takes."""
    cdef Py_ssize_t l, fo = s.fan_out[0], r = s.fan_in[0] // 2
    cdef double values = 0
    if second:
        return _sqnorm(params + s.coef_off[0] + r * fo,
                       <int> ((s.fan_in[0] - r) * fo))
    values = _sqnorm(params + s.coef_off[0], <int> (r * fo))
    for l in range(1, s.L):
        values += _sqnorm(params + s.coef_off[l],
                          <int> (s.fan_in[l] * s.fan_out[l]))
    return values


cdef double _l2_and_scale(const Spec* s, const floating* params, double alpha,
                          double sw_sum, floating* G) noexcept nogil:
    """The L2 term and the 1/sum(s) normalisation, in place on G::

        dJ/dW = (Z^T . D + alpha W) / sum(s),   dJ/db = sum(D) / sum(s)

    Returns the penalty ``alpha / 2 * sum_l ||W_l||^2 / sum(s)``. (An epoch
    does the same inside its optimizer pass, reading G once.)"""
    cdef Py_ssize_t i
    cdef floating alpha_f = <floating> alpha, sw_sum_f = <floating> sw_sum
    for i in range(s.n_coefs):
        G[i] = (G[i] + alpha_f * params[i]) / sw_sum_f
    for i in range(s.n_coefs, s.n_params):
        G[i] = G[i] / sw_sum_f
    return (0.5 * alpha) * _l2(s, params) / sw_sum


# ================================================================ optimizers
# The passes themselves are C loops in _kernels.h (vectorized, with an AVX2
# clone where GCC can build one); these pick the float or double one.

cdef inline void _sgd_step(floating* p, const floating* G, floating* vel,
                           Py_ssize_t n, floating alpha, floating inv_sw,
                           floating lr, floating mu,
                           bint nesterov, floating decay) noexcept nogil:
    if floating is float:
        fastbp_sgd_f(p, G, vel, n, alpha, inv_sw, lr, mu, nesterov, decay)
    else:
        fastbp_sgd_d(p, G, vel, n, alpha, inv_sw, lr, mu, nesterov, decay)


cdef inline void _adam_step(floating* p, const floating* G, floating* m,
                            floating* v, Py_ssize_t n, floating alpha,
                            floating inv_sw, floating b1, floating one_b1,
                            floating b2, floating one_b2, floating neg_lr_t,
                            floating eps, floating decay) noexcept nogil:
    if floating is float:
        fastbp_adam_f(p, G, m, v, n, alpha, inv_sw, b1, one_b1, b2, one_b2,
                      neg_lr_t, eps, decay)
    else:
        fastbp_adam_d(p, G, m, v, n, alpha, inv_sw, b1, one_b1, b2, one_b2,
                      neg_lr_t, eps, decay)


cdef inline double _grad_sqnorm(const floating* p, const floating* G,
                                Py_ssize_t n, floating alpha,
                                floating inv_sw) noexcept nogil:
    if floating is float:
        return fastbp_grad_sqnorm_f(p, G, n, alpha, inv_sw)
    else:
        return fastbp_grad_sqnorm_d(p, G, n, alpha, inv_sw)


cdef struct OptStep:
    # One minibatch's optimizer step (the floating values as doubles; each
    # is cast back to the kernel's type exactly as _train_chunk computed it).
    int solver
    bint nesterov
    double inv_sw, lr, mu, b1, one_b1, b2, one_b2, neg_lr_t, eps
    double decay        # weights' decoupled decay factor, 1 - lr * weight_decay


cdef void _opt_range(const OptStep* o, floating* p, const floating* G,
                     floating* m, floating* v, Py_ssize_t a, Py_ssize_t b,
                     floating alpha, bint weights) noexcept nogil:
    """The optimizer pass over elements ``a .. b-1`` of the flat buffers
    (each element's update is independent: any split, same numbers).
    ``weights``: the range holds weights (decoupled decay applies), not
    biases."""
    cdef floating decay = <floating> o.decay if weights else 1
    if b <= a:
        return
    if o.solver == SOLVER_SGD:
        _sgd_step(p + a, G + a, m + a, b - a, alpha, <floating> o.inv_sw,
                  <floating> o.lr, <floating> o.mu, o.nesterov, decay)
    else:
        _adam_step(p + a, G + a, m + a, v + a, b - a, alpha,
                   <floating> o.inv_sw, <floating> o.b1, <floating> o.one_b1,
                   <floating> o.b2, <floating> o.one_b2,
                   <floating> o.neg_lr_t, <floating> o.eps, decay)


# Small batches: OpenBLAS (Skylake-X and later kernels) multiplies a GEMM of
# at most about 100^3 multiply-adds straight from its operands, without
# packing them first. At batch 32 the minibatch GEMMs are several times that,
# and their packing (all of W_1 for H = X W_1, every batch) costs as much as
# the multiply-adds. Split into blocks under this size, they take the direct
# kernel (on 784 inputs and 256 units: the forward product in blocks up to
# batch 64, dJ/dW_1 up to batch 128). Where the BLAS has no such kernel,
# splitting would only add calls and packing: 0 (never).
# -1: not decided yet (train_epoch asks the BLAS once, _decide_small_gemm).
cdef Py_ssize_t _SMALL_GEMM = -1
_DIRECT_SMALL_GEMM = 1000000
# OpenBLAS core types (threadpoolctl's "architecture") with direct small
# GEMM kernels.
_DIRECT_SMALL_ARCHS = frozenset({"SkylakeX", "Cooperlake", "SapphireRapids"})


def _has_direct_small_kernels():
    """True when SciPy's BLAS (the one the kernels call) is OpenBLAS on a
    core type with direct small-GEMM kernels (decided by the library, not by
    timing, so the same machine always takes the same path and gives the
    same numbers). SciPy's wheels load it from ``scipy.libs``; when no BLAS
    comes from there (SciPy built against a system BLAS), every BLAS loaded
    must qualify."""
    try:
        from threadpoolctl import threadpool_info

        libs = [d for d in threadpool_info() if d.get("user_api") == "blas"]
    except Exception:  # threadpoolctl missing or failing: keep one GEMM
        return False
    scipy_libs = [d for d in libs if os.path.basename(os.path.dirname(
        str(d.get("filepath", "")))) == "scipy.libs"]
    libs = scipy_libs or libs
    return bool(libs) and all(
        d.get("internal_api") == "openblas"
        and d.get("architecture") in _DIRECT_SMALL_ARCHS for d in libs)


def _decide_small_gemm():
    """Set _SMALL_GEMM from the BLAS, once per process (train_epoch)."""
    global _SMALL_GEMM
    if _SMALL_GEMM < 0:
        _SMALL_GEMM = _DIRECT_SMALL_GEMM if _has_direct_small_kernels() else 0


# Bytes of dJ/dW_1 per block of the fused first-layer step (0: no fusion).
cdef Py_ssize_t _FUSE_BYTES = 32768


cdef Py_ssize_t _split_cols(const Spec* s, Py_ssize_t B) noexcept nogil:
    """Columns per block of the first layer's forward product
    (``_forward``): a multiple of 16 with ``B * cols * fan_in`` within
    _SMALL_GEMM; 0 (one product) when no such block is narrower than the
    layer. The blocks sum in another order than one call: the result may
    differ in the last bits (the NumPy backend's tolerance)."""
    cdef Py_ssize_t cols
    if _SMALL_GEMM <= 0:
        return 0
    cols = _SMALL_GEMM // (B * s.fan_in[0]) // 16 * 16
    if cols < 16 or cols >= s.fan_out[0]:
        return 0
    return cols


cdef Py_ssize_t _fuse_rows(const Spec* s, Py_ssize_t B,
                           Py_ssize_t itemsize) noexcept nogil:
    """Rows of W_1 per block of the fused first-layer step (``_dW1_step``):
    _FUSE_BYTES of gradient, within _SMALL_GEMM; 0 (no fusion) below 16
    rows, where the calls would cost more than the cache saves."""
    cdef Py_ssize_t fo = s.fan_out[0]
    cdef Py_ssize_t rows = _FUSE_BYTES // (fo * itemsize)
    if _SMALL_GEMM <= 0:
        return 0
    if B * fo * rows > _SMALL_GEMM:
        rows = _SMALL_GEMM // (B * fo)
    return rows if rows >= 16 else 0


cdef void _dW1_step(const Spec* s, const OptStep* o, const floating* X,
                    Py_ssize_t B, const floating* D, floating* p, floating* G,
                    floating* m, floating* v, floating alpha,
                    Py_ssize_t block_rows, Py_ssize_t lo,
                    Py_ssize_t hi) noexcept nogil:
    """``dJ/dW_1 = X^T . D_1`` in blocks of ``block_rows`` rows of W_1 (rows
    ``lo``, a block boundary, up to ``hi``), each followed at once by the
    optimizer pass over the same rows, while the block is still in cache
    (the whole W_1 with its gradient and moments is larger than L2 on common
    CPUs). Each element of the gradient is the same dot product over the
    batch as in one GEMM call."""
    cdef Py_ssize_t fo = s.fan_out[0], r0 = lo, r
    cdef Py_ssize_t fi = s.fan_in[0]
    cdef Py_ssize_t base = s.coef_off[0]
    while r0 < hi:
        r = min(block_rows, hi - r0)
        _gemm(True, False, <int> r, <int> fo, <int> B, <floating> 1, X + r0,
              <int> fi, D, <int> fo, <floating> 0, G + base + r0 * fo,
              <int> fo)
        _opt_range(o, p, G, m, v, base + r0 * fo, base + (r0 + r) * fo, alpha,
                   True)
        r0 += r


cdef void _dW1_rows_job(void* arg) noexcept nogil:
    cdef FirstLayerJob* j = <FirstLayerJob*> arg
    _dW1_step(j.s, j.o, j.X, j.B, j.D, j.p, j.G, j.m, j.v, j.alpha, j.block,
              j.lo, j.hi)


# ------------------------------------------------- the two-thread step
# train_epoch and loss_grad, at batches of 32 rows or more: each minibatch
# in two shares that two threads can run at once, every product on one BLAS
# thread, so that one thread running both shares makes the very same calls
# (the same numbers, whichever thread count a chunk is given):
#   1. rows 0..h and h..B: gather (dense; CSR rows are read in place),
#      forward, loss, every layer's delta
#      (``_rows_part``; the rows' loss sums are added in that order; with
#      dropout, the whole minibatch's masks are drawn first, _draw_masks),
#      and one half each of the L2 penalty (``_l2_half``);
#   2. rows 0..mid and mid..fan_in of dJ/dW_1 with their optimizer pass
#      (mid by ``_dW1_split``: the helper takes the odd block)
#      (``_dW1_range``; CSR: ``_csr_T_times_D_rows``, each thread reading
#      the whole batch for its rows of the gradient); the other layers'
#      gradients, the biases and their
#      optimizer pass on the calling thread (``_layer_grads``).

cdef enum:
    SPLIT_MIN_ROWS = 16     # rows of each share, at least
    SPLIT_ALIGN = 8         # shares start on a multiple of 8 rows


cdef void _shift_rows(const Spec* s, const Buffers* buf, Py_ssize_t r0,
                      Py_ssize_t itemsize, Py_ssize_t n_features,
                      Buffers* out, void** ptrs, int** args) noexcept nogil:
    """``out``: the buffers of ``buf`` from row r0 on (the pointer arrays in
    ``ptrs``, 5 L of them, and ``args``, L), with no dropout generator (the
    masks are drawn beforehand: ``_draw_masks``). Row r of the view is row
    r0 + r of every buffer, so work on the view's rows touches none of rows
    0..r0."""
    cdef Py_ssize_t L = s.L, l, width = s.units[L - 1], mu = 0
    for l in range(L - 1):
        mu = max(mu, s.units[l])
        ptrs[l] = (<char*> buf.Z[l] + r0 * s.units[l] * itemsize
                   if buf.Z[l] != NULL else NULL)
        ptrs[L + l] = (<char*> buf.H[l] + r0 * s.fan_out[l] * itemsize
                       if buf.H[l] != NULL else NULL)
        args[l] = buf.arg[l] + r0 * s.units[l] if buf.arg[l] != NULL else NULL
        ptrs[3 * L + l] = (<char*> buf.Zm[l] + r0 * s.units[l] * itemsize
                           if buf.Zm[l] != NULL else NULL)
        ptrs[4 * L + l] = (<char*> buf.M[l] + r0 * s.units[l] * itemsize
                           if buf.M[l] != NULL else NULL)
    for l in range(L):
        ptrs[2 * L + l] = (<char*> buf.Dl[l] + r0 * s.fan_out[l] * itemsize
                           if buf.Dl != NULL else NULL)
    out.Z = ptrs
    out.H = ptrs + L
    out.Dl = ptrs + 2 * L
    out.arg = args
    out.H_out = <char*> buf.H_out + r0 * width * itemsize
    out.Z_out = <char*> buf.Z_out + r0 * width * itemsize
    out.D0 = ptrs[2 * L + L - 1]
    out.D1 = NULL
    # maxout's dJ/dZ (B x fan_in rows of at most mu columns)
    out.dZ = <char*> buf.dZ + r0 * mu * itemsize if buf.dZ != NULL else NULL
    out.Xb = (<char*> buf.Xb + r0 * n_features * itemsize
              if buf.Xb != NULL else NULL)
    out.Zm = ptrs + 3 * L
    out.M = ptrs + 4 * L
    out.drop = NULL


cdef void _draw_masks(const Spec* s, const Buffers* buf, Py_ssize_t B,
                      const floating* params) noexcept nogil:
    """Dropout in the two-thread step: every hidden layer's mask for the
    whole minibatch, layer after layer, from buf.drop, as _forward draws
    them in one pass (the same masks, whichever thread applies them).
    ``params``: only its type."""
    cdef Dropout* d = buf.drop
    cdef Py_ssize_t l
    if d == NULL:
        return
    for l in range(s.L - 1):
        if buf.M[l] == NULL:
            continue
        if floating is float:
            fastbp_dropout_f(NULL, NULL, <float*> buf.M[l], B * s.units[l],
                             d.threshold[l], <float> d.scale[l], &d.state[0])
        else:
            fastbp_dropout_d(NULL, NULL, <double*> buf.M[l], B * s.units[l],
                             d.threshold[l], d.scale[l], &d.state[0])


cdef double _rows_part(const Spec* s, const floating* params,
                       const floating* X, const Input* csr,
                       const Py_ssize_t* rows, Py_ssize_t row0, Py_ssize_t n,
                       Py_ssize_t n_features, const Buffers* buf,
                       const floating* Y, const floating* sw) noexcept nogil:
    """Share 1 of the two-thread step, for the n rows ``rows`` of X
    (gathered into buf.Xb), or rows row0 .. row0 + n when ``rows`` is NULL
    (read in place; loss_grad), into the buffers ``buf``, a view from the
    share's first row, with no dropout generator (the masks are drawn):
    forward, loss and output delta (returns the weighted loss sum), and the
    delta of every layer into buf.Dl. ``csr`` (or NULL: X is dense): X is
    that CSR matrix, whose rows are read in place."""
    cdef Input inp
    cdef Py_ssize_t i, l
    if csr != NULL:
        inp = csr[0]
        inp.rows = rows
        inp.row0 = row0
    else:
        if rows != NULL:
            for i in range(n):
                memcpy((<floating*> buf.Xb) + i * n_features,
                       X + rows[i] * n_features,
                       n_features * sizeof(floating))
            inp.dense = buf.Xb
        else:
            inp.dense = X + row0 * n_features
        inp.sparse = False
        inp.data = NULL
        inp.indices = NULL
        inp.indptr = NULL
        inp.rows = NULL
        inp.row0 = 0
    _forward(s, params, &inp, n, buf,
             _split_cols(s, n) if floating is float else 0, NULL)
    cdef double loss = _loss_delta(s, buf, Y, sw, rows, row0, n)  # into Dl[L-1]
    for l in range(s.L - 1, 0, -1):
        _propagate(s, params, l, n, buf, <const floating*> buf.Dl[l],
                   <floating*> buf.Dl[l - 1])
    return loss


cdef void _rows_forward(const Spec* s, const floating* params,
                        const floating* X, const Input* csr, Py_ssize_t row0,
                        Py_ssize_t n, Py_ssize_t n_features,
                        const Buffers* buf, bint logits,
                        floating* out) noexcept nogil:
    """The predict path's share of a block: rows row0 .. row0 + n of X
    (dense, or the CSR matrix ``csr``), read in place, forward into the
    buffers ``buf`` (a view from the share's first row), and their outputs
    (H_L with ``logits``, else Z_L) into ``out`` (the share's rows)."""
    cdef Input inp
    cdef Py_ssize_t n_out = s.units[s.L - 1]
    if csr != NULL:
        inp = csr[0]
        inp.rows = NULL
        inp.row0 = row0
    else:
        inp.sparse = False
        inp.dense = X + row0 * n_features
        inp.data = NULL
        inp.indices = NULL
        inp.indptr = NULL
        inp.rows = NULL
        inp.row0 = 0
    _forward(s, params, &inp, n, buf, 0, NULL)
    memcpy(out, buf.H_out if logits else buf.Z_out,
           n * n_out * sizeof(floating))


cdef void _layer_grads(const Spec* s, const Buffers* buf, Py_ssize_t B,
                       bint accumulate, floating* G) noexcept nogil:
    """The gradients the calling thread forms in share 2: dJ/dW_l for every
    layer but the first, and every bias (from the deltas in buf.Dl; into G,
    or added to it with ``accumulate``)."""
    cdef Py_ssize_t l, fi, fo
    cdef const floating* D
    for l in range(s.L - 1, -1, -1):
        fi = s.fan_in[l]
        fo = s.fan_out[l]
        D = <const floating*> buf.Dl[l]
        if l > 0:
            _gemm(True, False, <int> fi, <int> fo, <int> B, <floating> 1,
                  <const floating*> _passed_on(buf, l - 1), <int> fi, D,
                  <int> fo, <floating> (1 if accumulate else 0),
                  G + s.coef_off[l], <int> fo)
        _colsum(D, B, fo, accumulate, G + s.icpt_off[l])


cdef void _dW1_range(const Spec* s, const OptStep* o, const floating* X,
                     Py_ssize_t B, const floating* D, floating* p,
                     floating* G, floating* m, floating* v, floating alpha,
                     Py_ssize_t block_rows, Py_ssize_t lo, Py_ssize_t hi,
                     bint step, bint accumulate,
                     const Input* csr=NULL) noexcept nogil:
    """Rows lo..hi of dJ/dW_1 = X^T . D_1 (added to G with ``accumulate``)
    and, with ``step``, their optimizer pass: in the fused blocks of
    ``block_rows`` rows (``_dW1_step``) when there are, else one product and
    one pass. ``csr``: X is the batch's rows of that CSR matrix (X unused)."""
    cdef Py_ssize_t fo = s.fan_out[0], fi = s.fan_in[0]
    cdef Py_ssize_t base = s.coef_off[0]
    if hi <= lo:
        return
    if csr != NULL:
        _csr_T_times_D_rows(csr, B, D, fo, lo, hi, accumulate, G + base)
    elif block_rows > 0 and step:
        _dW1_step(s, o, X, B, D, p, G, m, v, alpha, block_rows, lo, hi)
        return
    else:
        _gemm(True, False, <int> (hi - lo), <int> fo, <int> B, <floating> 1,
              X + lo, <int> fi, D, <int> fo,
              <floating> (1 if accumulate else 0), G + base + lo * fo,
              <int> fo)
    if step:
        _opt_range(o, p, G, m, v, base + lo * fo, base + hi * fo, alpha, True)


cdef struct SplitJob:
    # The helper thread's half of one share of the two-thread step (float
    # or double buffers, as ``is_double``).
    bint is_double
    bint forward_part     # the predict path's rows (``_rows_forward``)
    void* out             # (its output rows)
    bint logits
    bint rows_part        # share 1 (else share 2's dJ/dW_1 rows)
    bint step_only        # (share 2 after clipping: the pass over its rows)
    const Spec* s
    const OptStep* o
    const Buffers* buf
    const void* X         # the training set (share 1)
    const Py_ssize_t* rows
    const void* Y
    const void* sw
    const void* Xb        # the gathered minibatch (share 2)
    const Input* csr      # X as CSR (or NULL: dense)
    const void* D
    void* p
    void* G
    void* m
    void* v
    double alpha
    Py_ssize_t row0, n, n_features, B, block, lo, hi
    bint step, accumulate
    double loss
    bint penalty          # share 1 also forms _l2_half(p, 1) into l2
    double l2


cdef void _split_job(void* arg) noexcept nogil:
    cdef SplitJob* j = <SplitJob*> arg
    cdef Py_ssize_t base = j.s.coef_off[0], fo = j.s.fan_out[0]
    if j.forward_part:
        if j.is_double:
            _rows_forward(j.s, <const double*> j.p, <const double*> j.X,
                          j.csr, j.row0, j.n, j.n_features, j.buf, j.logits,
                          <double*> j.out)
        else:
            _rows_forward(j.s, <const float*> j.p, <const float*> j.X,
                          j.csr, j.row0, j.n, j.n_features, j.buf, j.logits,
                          <float*> j.out)
    elif j.step_only:
        if j.is_double:
            _opt_range(j.o, <double*> j.p, <const double*> j.G,
                       <double*> j.m, <double*> j.v, base + j.lo * fo,
                       base + j.hi * fo, <double> j.alpha, True)
        else:
            _opt_range(j.o, <float*> j.p, <const float*> j.G, <float*> j.m,
                       <float*> j.v, base + j.lo * fo, base + j.hi * fo,
                       <float> j.alpha, True)
    elif j.rows_part:
        if j.is_double:
            j.loss = _rows_part(j.s, <const double*> j.p,
                                <const double*> j.X, j.csr, j.rows, j.row0,
                                j.n,
                                j.n_features, j.buf, <const double*> j.Y,
                                <const double*> j.sw)
        else:
            j.loss = _rows_part(j.s, <const float*> j.p, <const float*> j.X,
                                j.csr, j.rows, j.row0, j.n, j.n_features,
                                j.buf,
                                <const float*> j.Y, <const float*> j.sw)
        if j.penalty:
            j.l2 = (_l2_half(j.s, <const double*> j.p, True) if j.is_double
                    else _l2_half(j.s, <const float*> j.p, True))
    elif j.is_double:
        _dW1_range(j.s, j.o, <const double*> j.Xb, j.B, <const double*> j.D,
                   <double*> j.p, <double*> j.G, <double*> j.m,
                   <double*> j.v, <double> j.alpha, j.block, j.lo, j.hi,
                   j.step, j.accumulate, j.csr)
    else:
        _dW1_range(j.s, j.o, <const float*> j.Xb, j.B, <const float*> j.D,
                   <float*> j.p, <float*> j.G, <float*> j.m, <float*> j.v,
                   <float> j.alpha, j.block, j.lo, j.hi, j.step,
                   j.accumulate, j.csr)


cdef inline void _share_post(fastbp_helper* hp, SplitJob* job) noexcept nogil:
    """Hand ``job`` (the second share) to the helper thread ``hp``, if any."""
    if hp != NULL:
        fastbp_helper_post(hp, _split_job, job)


cdef inline void _share_join(fastbp_helper* hp, SplitJob* job) noexcept nogil:
    """Wait for ``job`` on the helper thread, or run it here when there is
    none: the same calls either way, so the same numbers."""
    if hp != NULL:
        fastbp_helper_wait(hp)
    else:
        _split_job(job)


cdef void _two_step_update(const Spec* s, OptStep* o, SplitJob* job,
                           fastbp_helper* hp, const Buffers* buf,
                           Py_ssize_t B, floating* p, floating* G,
                           floating* m, floating* v, floating alpha,
                           Py_ssize_t block_rows, int solver, long long* t,
                           double lr, double beta_1, double beta_2,
                           double max_grad_norm,
                           double sw_sum) noexcept nogil:
    """Share 2 of the two-thread step: the gradients and the optimizer
    step of one minibatch whose deltas are in buf.Dl (rows mid..fan_in of
    dJ/dW_1 on the helper thread ``hp``, or after the rest when NULL), as
    _train_chunk's one-thread path updates (clipping: the whole gradient
    first, then its norm, then the step)."""
    cdef Py_ssize_t fi0 = s.fan_in[0], n_coefs = s.n_coefs
    cdef Py_ssize_t n_params = s.n_params
    cdef Py_ssize_t w1_end = s.coef_off[0] + fi0 * s.fan_out[0]
    cdef floating inv_sw_f = <floating> (1.0 / sw_sum), zero = 0
    cdef bint step = max_grad_norm <= 0
    cdef Py_ssize_t mid
    cdef double norm
    o.inv_sw = inv_sw_f
    if solver == SOLVER_ADAM:
        t[0] += 1
        o.neg_lr_t = -(lr * sqrt(1 - pow(beta_2, <double> t[0]))
                       / (1 - pow(beta_1, <double> t[0])))
    mid = _dW1_split(fi0, block_rows if block_rows > 0 else SPLIT_ALIGN)
    job.rows_part = False
    job.Xb = buf.Xb
    job.D = buf.Dl[0]
    job.B = B
    job.block = block_rows
    job.lo = mid
    job.hi = fi0
    job.step = step
    job.step_only = False
    job.accumulate = False
    _share_post(hp, job)
    _layer_grads(s, buf, B, False, G)
    if step:
        _opt_range(o, p, G, m, v, w1_end, n_coefs, alpha, True)
        _opt_range(o, p, G, m, v, n_coefs, n_params, zero, False)
    _dW1_range(s, o, <const floating*> buf.Xb, B,
               <const floating*> buf.Dl[0], p, G, m, v, alpha, block_rows, 0,
               mid, step, False, job.csr)
    _share_join(hp, job)
    if not step:
        # clipping: scale the whole gradient to max_grad_norm when its
        # global L2 norm exceeds it (folded into inv_sw)
        norm = sqrt(_grad_sqnorm(<const floating*> p, <const floating*> G,
                                 n_coefs, alpha, inv_sw_f)
                    + _grad_sqnorm(<const floating*> p + n_coefs,
                                   <const floating*> G + n_coefs,
                                   n_params - n_coefs, zero, inv_sw_f))
        if norm > max_grad_norm:
            o.inv_sw = <floating> (inv_sw_f * (max_grad_norm / norm))
        # the pass, W_1's rows mid .. fan_in there (each element's update is
        # independent: the same numbers)
        job.step_only = True
        _share_post(hp, job)
        _opt_range(o, p, G, m, v, 0, s.coef_off[0] + mid * s.fan_out[0],
                   alpha, True)
        _opt_range(o, p, G, m, v, w1_end, n_coefs, alpha, True)
        _opt_range(o, p, G, m, v, n_coefs, n_params, zero, False)
        _share_join(hp, job)
        job.step_only = False


# ============================================================ chunk kernels
# Each runs units of work from ``start`` without the GIL until the unit that
# crosses _CHUNK_SECONDS, and returns where it stopped.

def _forward_chunk(_Workspace ws, const floating[::1] params,
                   const floating[:, ::1] X, const floating[::1] X_data,
                   const Py_ssize_t[::1] X_indices,
                   const Py_ssize_t[::1] X_indptr, bint sparse,
                   floating[:, ::1] out, bint logits, Py_ssize_t start,
                   bint helper=False, bint split=False):
    """OUT: rows ``start ..`` of ``out`` = Z_L (or H_L), a block of
    ``ws.rows`` rows at a time. Returns the next row to do. ``split`` (the
    same in every chunk of a call): blocks of 32 rows or more in two shares
    of rows, every product on one BLAS thread (the second share on a helper
    thread when ``helper``, else after the first: the same numbers)."""
    cdef Input inp
    cdef Py_ssize_t n = out.shape[0], n_out = out.shape[1], B, h
    cdef Py_ssize_t block = ws.rows, n_features = X.shape[1]
    cdef const floating* src
    cdef const floating* p = &params[0]
    cdef const floating* Xp = NULL if sparse else &X[0, 0]
    cdef fastbp_helper* hp = NULL
    cdef SplitJob job
    cdef double t0
    _set_input(&inp, sparse, X_data, X_indices, X_indptr)
    if helper and split and FASTBP_HAVE_HELPER \
            and fastbp_helper_start(&ws.helper) == 0:
        hp = &ws.helper
    job.is_double = floating is double
    job.forward_part = True
    job.penalty = False
    job.s = &ws.spec
    job.p = <void*> p
    job.X = Xp
    job.csr = &inp if sparse else NULL
    job.buf = &ws.view
    job.n_features = n_features
    job.logits = logits
    with nogil:
        t0 = fastbp_now()
        while start < n:
            B = min(block, n - start)
            if split and B >= 2 * SPLIT_MIN_ROWS:
                h = _helper_split(B, SPLIT_ALIGN)
                _shift_rows(&ws.spec, &ws.buf, h, sizeof(floating),
                            n_features, &ws.view, ws.view_ptrs, ws.view_args)
                job.row0 = start + h
                job.n = B - h
                job.out = &out[start + h, 0]
                _share_post(hp, &job)
                _rows_forward(&ws.spec, p, Xp, job.csr, start, h, n_features,
                              &ws.buf, logits, &out[start, 0])
                _share_join(hp, &job)
            else:
                _input_at(&inp, Xp, start, n_features * sizeof(floating))
                _forward(&ws.spec, p, &inp, B, &ws.buf, 0)
                src = <const floating*> (ws.buf.H_out if logits
                                         else ws.buf.Z_out)
                memcpy(&out[start, 0], src, B * n_out * sizeof(floating))
            start += B
            if fastbp_now() - t0 > _CHUNK_SECONDS:
                break
    if hp != NULL:
        fastbp_helper_stop(hp)
    return start


def _loss_grad_chunk(_Workspace ws, const floating[::1] params,
                     const floating[:, ::1] X, const floating[::1] X_data,
                     const Py_ssize_t[::1] X_indices,
                     const Py_ssize_t[::1] X_indptr, bint sparse,
                     const floating[:, ::1] Y, const floating[::1] sw,
                     bint has_sw, floating[::1] grad, double total,
                     Py_ssize_t start, bint helper=False, bint split=False):
    """Blocks of ``ws.rows`` rows from row ``start``: adds their unnormalised
    gradient to ``grad`` (overwrites it when ``start == 0``) and their
    ``s_i loss_i`` to ``total``. Returns ``(next row, total)``. ``split``
    (the same in every chunk of a call): blocks of 32 rows or
    more run as the two-thread step without its optimizer pass (rows h..B
    and dJ/dW_1's rows mid..fan_in on a helper thread when ``helper``, else
    after the rest: the same products either way)."""
    cdef Input inp
    cdef Py_ssize_t n = Y.shape[0], B, block = ws.rows, h
    cdef Py_ssize_t n_features = X.shape[1], fi0 = ws.spec.fan_in[0]
    cdef const floating* swp = _ptr1(sw) if has_sw else NULL
    cdef const floating* p = &params[0]
    cdef const floating* Xp = NULL if sparse else &X[0, 0]
    cdef floating* G = &grad[0]
    cdef fastbp_helper* hp = NULL
    cdef SplitJob job
    cdef double t0, part
    _set_input(&inp, sparse, X_data, X_indices, X_indptr)
    if helper and split and FASTBP_HAVE_HELPER \
            and fastbp_helper_start(&ws.helper) == 0:
        hp = &ws.helper
    job.is_double = floating is double
    job.s = &ws.spec
    job.X = Xp
    job.Y = &Y[0, 0]
    job.sw = swp
    job.o = NULL                  # (no optimizer pass: step is False)
    job.penalty = False           # (loss_grad adds it at the end)
    job.forward_part = False
    job.step_only = False
    job.p = <void*> p
    job.G = G
    job.m = NULL
    job.v = NULL
    job.alpha = 0
    job.rows = NULL
    job.csr = &inp if sparse else NULL
    job.n_features = n_features
    job.step = False
    with nogil:
        t0 = fastbp_now()
        while start < n:
            B = min(block, n - start)
            if split and B >= 2 * SPLIT_MIN_ROWS:
                # rows start .. start+h here, the rest on the helper
                h = _helper_split(B, SPLIT_ALIGN)
                _shift_rows(&ws.spec, &ws.buf, h, sizeof(floating),
                            n_features, &ws.view, ws.view_ptrs, ws.view_args)
                job.rows_part = True
                job.buf = &ws.view
                job.row0 = start + h
                job.n = B - h
                _share_post(hp, &job)
                part = _rows_part(&ws.spec, p, Xp, job.csr, NULL, start, h,
                                  n_features, &ws.buf, &Y[0, 0], swp)
                _share_join(hp, &job)
                total += part + job.loss
                # dJ/dW_1's rows mid .. fan_in there, the rest here
                job.rows_part = False
                job.Xb = NULL if sparse else Xp + start * n_features
                inp.rows = NULL           # (CSR: the block's rows)
                inp.row0 = start
                job.D = ws.buf.Dl[0]
                job.B = B
                job.block = 0
                job.lo = _dW1_split(fi0, SPLIT_ALIGN)
                job.hi = fi0
                job.accumulate = start > 0
                _share_post(hp, &job)
                _layer_grads(&ws.spec, &ws.buf, B, start > 0, G)
                _dW1_range(&ws.spec, NULL, <const floating*> job.Xb, B,
                           <const floating*> ws.buf.Dl[0], NULL, G, NULL,
                           NULL, 0, 0, 0, job.lo, False, start > 0, job.csr)
                _share_join(hp, &job)
            else:
                _input_at(&inp, Xp, start, n_features * sizeof(floating))
                _forward(&ws.spec, p, &inp, B, &ws.buf, 0)
                total += _loss_delta(&ws.spec, &ws.buf, &Y[0, 0], swp, NULL,
                                     start, B)
                _backward(&ws.spec, p, &inp, B, &ws.buf, start > 0, False, G)
            start += B
            if fastbp_now() - t0 > _CHUNK_SECONDS:
                break
    if hp != NULL:
        fastbp_helper_stop(hp)
    return start, total


def _loss_grad_finish(_Workspace ws, const floating[::1] params,
                      const floating[::1] sw, bint has_sw, Py_ssize_t n,
                      double loss_sum, double alpha, floating[::1] grad):
    """After the last block: ``_l2_and_scale`` on ``grad``; returns the
    loss ``sum_i s_i loss_i / sum(s) + penalty``."""
    cdef Py_ssize_t i
    cdef double sw_sum
    with nogil:
        if has_sw:
            sw_sum = 0
            for i in range(n):
                sw_sum += sw[i]
        else:
            sw_sum = n
        loss_sum = loss_sum / sw_sum
        loss_sum += _l2_and_scale(&ws.spec, &params[0], alpha, sw_sum,
                                  &grad[0])
    return loss_sum


def _train_chunk(_Workspace ws, floating[::1] params,
                 floating[::1] m, floating[::1] v, long long[::1] t_inout,
                 const floating[:, ::1] X, const floating[::1] X_data,
                 const Py_ssize_t[::1] X_indices,
                 const Py_ssize_t[::1] X_indptr, bint sparse,
                 const floating[:, ::1] Y, const floating[::1] sw,
                 bint has_sw, const Py_ssize_t[::1] order,
                 Py_ssize_t batch_size, int solver, double lr,
                 double lr_init, double alpha, double momentum,
                 bint nesterov, double beta_1, double beta_2,
                 double epsilon, double weight_decay, double max_grad_norm,
                 double accumulated, Py_ssize_t batch, bint helper=False,
                 bint split=False):
    """Minibatches ``batch, batch + 1, ..`` of the epoch ``order``.
    IN/OUT: params, m, v, t_inout[0] (Adam's step count). Adds
    ``batch_loss * batch_len`` of each batch to ``accumulated``; returns
    ``(next batch, accumulated)``. ``lr`` is the scheduled rate (Adam's
    base rate too); the weights decay by ``1 - lr * weight_decay`` per
    batch (decoupled); ``max_grad_norm > 0`` clips each batch's gradient
    to that global L2 norm. ``helper``: a second core is free for this
    chunk (the thread policy gave it two threads or more): the float32
    blocked first layer (small batches) then shares its blocks with a helper
    thread, started here and joined before returning. ``split`` (the same
    in every chunk of a fit, whatever their threads): minibatches of 32 rows
    or more run as the two-thread step (``_rows_part``), on the helper thread too when
    ``helper``."""
    cdef Input inp
    cdef SplitJob sjob
    cdef bint two
    cdef Py_ssize_t h
    cdef fastbp_helper* hp = NULL
    cdef FirstLayerJob djob
    cdef Py_ssize_t rmid
    cdef floating* p = &params[0]
    cdef floating* G = <floating*> ws.G
    cdef floating* mp = &m[0]
    cdef floating* vp = &v[0] if v.shape[0] > 0 else NULL
    cdef const floating* Xp = NULL
    cdef const floating* Yp = &Y[0, 0]
    cdef const floating* swp = _ptr1(sw) if has_sw else NULL
    cdef const Py_ssize_t* rows
    cdef Py_ssize_t n = order.shape[0]
    cdef Py_ssize_t n_features = X.shape[1]
    cdef Py_ssize_t n_batches = (n + batch_size - 1) // batch_size
    cdef Py_ssize_t start, B, i
    cdef long long t = t_inout[0]
    cdef double loss, sw_sum, t0, l2 = 0
    cdef floating alpha_f = <floating> alpha, zero = 0
    cdef floating inv_sw_f
    cdef double norm
    cdef Py_ssize_t n_coefs = ws.spec.n_coefs, n_params = ws.spec.n_params
    cdef Py_ssize_t w1_end = ws.spec.coef_off[0] + (ws.spec.fan_in[0]
                                                    * ws.spec.fan_out[0])
    cdef Py_ssize_t block_rows = 0, split_cols = 0
    cdef bint fuse, blocked
    cdef const floating* D1
    cdef OptStep o
    # The blocked first layer (_split_cols, _fuse_rows): dense float32 only
    # (in float64 the blocks made batch 32-64 epochs 6-12% slower).
    if floating is float:
        blocked = not sparse
    else:
        blocked = False
    o.solver = solver
    o.nesterov = nesterov
    o.lr = lr
    o.mu = momentum
    o.b1 = beta_1
    o.one_b1 = 1 - beta_1
    o.b2 = beta_2
    o.one_b2 = 1 - beta_2
    o.eps = epsilon
    o.neg_lr_t = 0
    o.decay = 1 - lr * weight_decay
    _set_input(&inp, sparse, X_data, X_indices, X_indptr)
    inp.dense = ws.buf.Xb
    if not sparse:
        Xp = &X[0, 0]
    # Only for the two-thread step or where the forward product is split
    # (train_epoch also runs BLAS on one thread meanwhile, so OpenBLAS's
    # threads never compete with the helper for the core).
    if (helper and FASTBP_HAVE_HELPER
            and (split or (blocked
                           and _split_cols(&ws.spec, min(batch_size, n)) > 0))
            and fastbp_helper_start(&ws.helper) == 0):
        hp = &ws.helper
    ws.undrawn = ws.buf
    ws.undrawn.drop = NULL
    sjob.csr = &inp if sparse else NULL
    sjob.is_double = floating is double
    sjob.forward_part = False
    sjob.step_only = False
    sjob.s = &ws.spec
    sjob.o = &o
    sjob.X = Xp
    sjob.Y = Yp
    sjob.sw = swp
    sjob.p = p
    sjob.G = G
    sjob.m = mp
    sjob.v = vp
    sjob.alpha = alpha_f
    sjob.n_features = n_features
    sjob.penalty = alpha != 0
    with nogil:
        t0 = fastbp_now()
        while batch < n_batches:
            start = batch * batch_size
            B = min(batch_size, n - start)
            rows = &order[start]
            # the first layer's products in blocks (the last batch may be
            # smaller)
            if blocked:
                block_rows = _fuse_rows(&ws.spec, B, sizeof(floating))
                split_cols = _split_cols(&ws.spec, B)
            two = split and B >= 2 * SPLIT_MIN_ROWS
            # Retrieve the minibatch: gather dense rows (CSR rows are read in
            # place through `rows`; the two-thread step gathers its shares).
            if two:
                inp.rows = rows           # (CSR: share 2 reads the batch)
            elif not sparse:
                for i in range(B):
                    memcpy((<floating*> ws.buf.Xb) + i * n_features,
                           Xp + rows[i] * n_features,
                           n_features * sizeof(floating))
            else:
                inp.rows = rows
            # (clipping needs the whole gradient before any step: no fusion)
            fuse = block_rows > 0 and max_grad_norm <= 0
            # Forward, loss and output delta, backward.
            if two:
                # share 1: rows h..B on the helper thread (or after rows 0..h)
                h = _helper_split(B, SPLIT_ALIGN)
                _draw_masks(&ws.spec, &ws.buf, B, <const floating*> p)
                _shift_rows(&ws.spec, &ws.buf, h, sizeof(floating),
                            n_features, &ws.view, ws.view_ptrs, ws.view_args)
                sjob.rows_part = True
                sjob.buf = &ws.view
                sjob.rows = rows + h
                sjob.row0 = 0
                sjob.n = B - h
                _share_post(hp, &sjob)
                loss = _rows_part(&ws.spec, <const floating*> p, Xp,
                                  sjob.csr, rows, 0, h, n_features,
                                  &ws.undrawn, Yp, swp)
                if alpha != 0:      # (the other half: sjob.l2)
                    l2 = _l2_half(&ws.spec, <const floating*> p, False)
                _share_join(hp, &sjob)
                loss = loss + sjob.loss
                if alpha != 0:
                    l2 = l2 + sjob.l2
            else:
                _forward(&ws.spec, <const floating*> p, &inp, B, &ws.buf,
                         split_cols, hp if split_cols > 0 else NULL)
                loss = _loss_delta(&ws.spec, &ws.buf, Yp, swp, rows, 0, B)
                if alpha != 0:
                    l2 = (_l2_half(&ws.spec, <const floating*> p, False)
                          + _l2_half(&ws.spec, <const floating*> p, True))
            if swp != NULL:
                sw_sum = 0
                for i in range(B):
                    sw_sum += swp[rows[i]]
            else:
                sw_sum = B
            loss = loss / sw_sum
            if alpha != 0:
                loss += (0.5 * alpha) * l2 / sw_sum
            accumulated += loss * B
            if two:
                _two_step_update(&ws.spec, &o, &sjob, hp, &ws.buf, B, p, G,
                                 mp, vp, alpha_f, block_rows, solver, &t,
                                 lr, beta_1, beta_2, max_grad_norm, sw_sum)
                batch += 1
                if fastbp_now() - t0 > _CHUNK_SECONDS:
                    break
                continue
            D1 = _backward(&ws.spec, <const floating*> p, &inp, B, &ws.buf,
                           False, fuse, G)
            # Update params; the gradient is _l2_and_scale's, formed on the
            # fly: weights (G + alpha W) / sum(s), biases G / sum(s).
            inv_sw_f = <floating> (1.0 / sw_sum)
            o.inv_sw = inv_sw_f
            if max_grad_norm > 0:
                # Clipping: scale the whole gradient to max_grad_norm when
                # its global L2 norm exceeds it (folded into inv_sw).
                norm = sqrt(_grad_sqnorm(<const floating*> p,
                                         <const floating*> G, n_coefs,
                                         alpha_f, inv_sw_f)
                            + _grad_sqnorm(<const floating*> p + n_coefs,
                                           <const floating*> G + n_coefs,
                                           n_params - n_coefs, zero, inv_sw_f))
                if norm > max_grad_norm:
                    o.inv_sw = <floating> (inv_sw_f * (max_grad_norm / norm))
            if solver == SOLVER_ADAM:
                t += 1
                o.neg_lr_t = -(lr * sqrt(1 - pow(beta_2, <double> t))
                               / (1 - pow(beta_1, <double> t)))
            if fuse:
                # every parameter but W_1, then W_1 block by block (the
                # second half of the blocks on the helper thread, if any)
                rmid = ws.spec.fan_in[0]
                if floating is float:
                    if hp != NULL:
                        rmid = _helper_split(ws.spec.fan_in[0], block_rows)
                        djob.s = &ws.spec
                        djob.o = &o
                        djob.X = <const float*> ws.buf.Xb
                        djob.B = B
                        djob.D = D1
                        djob.p = p
                        djob.G = G
                        djob.m = mp
                        djob.v = vp
                        djob.alpha = alpha_f
                        djob.block = block_rows
                        djob.lo = rmid
                        djob.hi = ws.spec.fan_in[0]
                        fastbp_helper_post(hp, _dW1_rows_job, &djob)
                _opt_range(&o, p, G, mp, vp, w1_end, n_coefs, alpha_f, True)
                _opt_range(&o, p, G, mp, vp, n_coefs, n_params, zero, False)
                _dW1_step(&ws.spec, &o, <const floating*> ws.buf.Xb, B, D1,
                          p, G, mp, vp, alpha_f, block_rows, 0, rmid)
                if floating is float:
                    if hp != NULL:
                        fastbp_helper_wait(hp)
            else:
                _opt_range(&o, p, G, mp, vp, 0, n_coefs, alpha_f, True)
                _opt_range(&o, p, G, mp, vp, n_coefs, n_params, zero, False)
            batch += 1
            if fastbp_now() - t0 > _CHUNK_SECONDS:
                break
    if hp != NULL:
        fastbp_helper_stop(hp)
    t_inout[0] = t
    return batch, accumulated


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


def _activation_shim(int code, floating[:, ::1] H, floating[:, ::1] Z_out,
                     double slope=0.01):
    """Output-layer activation ``Z_out = f(H)`` (softmax too), with a zero
    bias; hidden activations through the fused bias pass when not softmax
    (``slope``: leaky_relu's; the output path has none, give 0 there).
    IN/OUT: H (bias added in place), Z_out. Returns the hidden path's f(H)."""
    cdef Py_ssize_t B = H.shape[0], width = H.shape[1]
    cdef floating[::1] zero = np.zeros(width, dtype=np.asarray(H).dtype)
    cdef floating[:, ::1] H2 = np.array(H, copy=True)
    with nogil:
        _output_act(code, &H[0, 0], &zero[0], B, width, &Z_out[0, 0])
        if code != SOFTMAX:
            # the hidden-layer path must agree with the output-layer path
            _bias_act(code, &H2[0, 0], &zero[0], B, width, <floating> slope)
    return np.asarray(H2)


def _activation_grad_shim(int code, const floating[:, ::1] H):
    """The hidden path of gelu/silu layers in a backward pass: returns
    ``(f(H), f'(H))`` from ``_bias_act_grad`` with a zero bias."""
    cdef Py_ssize_t B = H.shape[0], width = H.shape[1]
    dtype = np.asarray(H).dtype
    cdef floating[::1] zero = np.zeros(width, dtype=dtype)
    Z = np.array(H, copy=True)
    G = np.empty_like(Z)
    cdef floating[:, ::1] Zv = Z
    cdef floating[:, ::1] Gv = G
    with nogil:
        _bias_act_grad(code, &Zv[0, 0], &zero[0], B, width, &Gv[0, 0])
    return Z, G


def _derivative_shim(int code, const floating[:, ::1] Z, floating[:, ::1] D,
                     double slope=0.01):
    """IN/OUT D: ``D *= f'(H)`` written with Z = f(H)."""
    with nogil:
        _derivative(code, &Z[0, 0], &D[0, 0], Z.shape[0] * Z.shape[1],
                    <floating> slope)



def _vecmath_shim(int which, const float[::1] x):
    """The vectorized float32 functions of _kernels.h over x: ``which`` 0
    exp, 1 expm1, 2 erf, 3 sigmoid (tests/test_vecmath.py)."""
    if not 0 <= which <= 3:
        raise ValueError(f"which must be 0, 1, 2 or 3, got {which}.")
    y = np.empty(x.shape[0], dtype=np.float32)
    cdef float[::1] yv = y
    if x.shape[0] > 0:
        with nogil:
            fastbp_vecmath_f(which, &x[0], &yv[0], x.shape[0])
    return y


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


def _chunk_seconds_shim(double seconds):
    """Set the time budget of a chunk (0: one unit of work per chunk);
    returns the previous one."""
    global _CHUNK_SECONDS
    previous = _CHUNK_SECONDS
    _CHUNK_SECONDS = seconds
    return previous


def _fuse_bytes_shim(Py_ssize_t n_bytes):
    """Set the block size (bytes of dJ/dW_1) of the first layer's gradient
    fused with the optimizer pass in train_epoch (0: one GEMM for the whole
    gradient, then the optimizer pass); returns the previous one."""
    global _FUSE_BYTES
    if n_bytes < 0:
        raise ValueError("n_bytes must be >= 0.")
    previous = _FUSE_BYTES
    _FUSE_BYTES = n_bytes
    return previous


def _helper_applies(_Workspace ws, dtype, bint sparse, Py_ssize_t B):
    """Whether train_epoch's chunks given two threads run the helper thread
    (``_train_chunk``'s ``helper``): float32 dense input, a build with
    threads, and a first layer whose forward product is split in blocks at
    batch ``B``."""
    return bool(FASTBP_HAVE_HELPER and not sparse and np.dtype(dtype) == np.float32
                and _SMALL_GEMM > 0 and _split_cols(&ws.spec, B) > 0)


def _split_applies(_Workspace ws, bint sparse, Py_ssize_t B):
    """Whether train_epoch, loss_grad or forward may run the two-thread
    step (``split``) at batch ``B``: a build with threads, shares of
    SPLIT_MIN_ROWS rows or more. (Where a chunk may get
    two threads, it then runs in every chunk, whatever their threads: the
    numbers do not depend on them.)"""
    return bool(FASTBP_HAVE_HELPER and B >= 2 * SPLIT_MIN_ROWS)


def _helper_jobs_shim():
    """(Jobs run by train_epoch's helper threads so far, whether this build
    has helper threads at all)."""
    return fastbp_helper_jobs_done(), bool(FASTBP_HAVE_HELPER)


def _small_gemm_shim(Py_ssize_t madds):
    """Set the size (multiply-adds) under which train_epoch splits the first
    layer's GEMMs into blocks (``_split_cols``, ``_fuse_rows``; 0: never;
    -1: ask the BLAS again); returns the previous one."""
    global _SMALL_GEMM
    if madds < -1:
        raise ValueError("madds must be >= -1.")
    previous = _SMALL_GEMM
    _SMALL_GEMM = madds
    return previous


def _dropout_batch(_Workspace ws, const floating[::1] params,
                   const floating[:, ::1] X, const floating[:, ::1] Y,
                   floating[::1] grad, double alpha):
    """One batch (all rows of dense X) through the training path's
    _forward -> _loss_delta -> _backward with the workspace's dropout, then
    _l2_and_scale. OUT: grad. Returns the loss."""
    cdef Input inp
    cdef Py_ssize_t n = X.shape[0]
    cdef double loss
    inp.sparse = False
    inp.dense = <const void*> &X[0, 0]
    inp.data = NULL
    inp.indices = NULL
    inp.indptr = NULL
    inp.rows = NULL
    inp.row0 = 0
    with nogil:
        _forward(&ws.spec, &params[0], &inp, n, &ws.buf, 0)
        loss = _loss_delta(&ws.spec, &ws.buf, &Y[0, 0], NULL, NULL, 0, n)
        _backward(&ws.spec, &params[0], &inp, n, &ws.buf, False, False,
                  &grad[0])
        loss = loss / n + _l2_and_scale(&ws.spec, &params[0], alpha, n,
                                        &grad[0])
    return loss


cdef object _copy_from(const void* src, shape, dtype):
    """A new array of ``shape`` holding the memory at ``src``."""
    out = np.empty(shape, dtype=dtype)
    cdef unsigned char[::1] raw = out.reshape(-1).view(np.uint8)
    if raw.shape[0] > 0:
        memcpy(&raw[0], src, raw.shape[0])
    return out


cdef void _copy_into(void* dst, arr):
    cdef const unsigned char[::1] raw = (
        np.ascontiguousarray(arr).reshape(-1).view(np.uint8))
    if raw.shape[0] > 0:
        memcpy(dst, &raw[0], raw.shape[0])


def _dropout_batch_shim(net, params, X, Y, rates, seed=None, masks=None,
                        double alpha=0.0, int batches=1):
    """One training batch with dropout ``rates`` (one per hidden layer):
    masks drawn by the compiled generator from ``seed``, or the given
    ``masks`` (one (n, units) array or None per hidden layer, entries 0 or
    1/(1-p)). ``batches``: run the batch that many times on one workspace
    (one generator); the result is the last run's. Returns a dict: ``loss``,
    ``grad`` (flat, normalised), ``masks`` (M per hidden layer, None where the
    rate is 0), ``Z`` (the unmasked hidden outputs) and ``Zm`` (what each
    layer passed on)."""
    params = _input.params_in(net, params)
    X = np.ascontiguousarray(X, dtype=net.dtype)
    n = X.shape[0]
    Y = _input.Y_in(net, Y, n)
    cdef Py_ssize_t L = net.n_layers - 1, l
    cdef _Workspace ws = _Workspace(net, n, False, True, dropout=rates)
    units = list(net.layer_units)[1:L]
    if masks is None:
        ws._seed_dropout(seed)
    else:
        for l in range(L - 1):
            if ws.buf.M[l] != NULL:
                M = np.asarray(masks[l], dtype=net.dtype)
                if M.shape != (n, units[l]):
                    raise ValueError(f"masks[{l}] must have shape {(n, units[l])}.")
                _copy_into(ws.buf.M[l], M)
    grad = np.empty(net.n_params, dtype=net.dtype)
    for _ in range(batches):
        loss = _dispatch(_dropout_batch, net)(ws, params, X, Y, grad, alpha)
    out = {"loss": float(loss), "grad": grad, "masks": [], "Z": [], "Zm": []}
    for l in range(L - 1):
        shape = (n, units[l])
        out["Z"].append(_copy_from(ws.buf.Z[l], shape, net.dtype))
        has = ws.buf.M[l] != NULL
        out["masks"].append(_copy_from(ws.buf.M[l], shape, net.dtype)
                            if has else None)
        out["Zm"].append(_copy_from(ws.buf.Zm[l], shape, net.dtype)
                         if has else out["Z"][l])
    return out


def _debug_index_probe():
    """Index a memoryview out of bounds: IndexError in a FASTBP_DEBUG build
    (boundscheck on); undefined in a release build, so only call it when
    ``DEBUG`` is true."""
    if not DEBUG:
        raise RuntimeError("_debug_index_probe is only safe in a debug build.")
    cdef double[::1] a = np.zeros(3)
    cdef Py_ssize_t i = a.shape[0] + 2
    return a[i]


# ================================================================= drivers
# The backend contract (see fastbp.backends). Each call: coerce the
# arguments, one _Workspace, chunks in one BLAS-thread session; Ctrl-C is
# checked between chunks (KeyboardInterrupt).

def _dispatch(kernel, net):
    return kernel["float"] if net.dtype == np.float32 else kernel["double"]


def forward(net, params, X, logits=False):
    """Predict path: the output activation ``Z_L`` (or ``H_L`` when
    ``logits=True``), a new (n, n_outputs) array."""
    params = _input.params_in(net, params)
    x = _input.kernel_X(net, X)
    n = x.n_rows
    out = np.empty((n, _input.n_outputs(net)), dtype=net.dtype)
    if n == 0:
        return out
    block = min(n, _FORWARD_BLOCK)
    ws = _Workspace(net, block, False, False, False)
    kernel = _dispatch(_forward_chunk, net)
    split_ok = _split_applies(ws, x.sparse, block)
    start = 0
    with _input.session(net, "forward", block) as session:
        # as train_epoch: two shares of rows where a chunk may get two
        # threads, so the outputs never depend on the threads picked
        split = split_ok and session.most_threads() >= 2
        if split:
            session.runs_own_threads()
        while start < n:
            threads = session.begin()
            use_helper = split and threads is not None and threads >= 2
            if use_helper:
                session.limit_blas(1)
            new = kernel(ws, params, x.dense, x.data, x.indices, x.indptr,
                         x.sparse, out, bool(logits), start, use_helper, split)
            session.end(-(-(new - start) // block))
            start = new
            PyErr_CheckSignals()
    return out


def loss_grad(net, params, X, Y, sample_weight=None, alpha=0.0, grad_out=None):
    """Loss and flat gradient of one batch (all rows of X), accumulated over
    blocks of rows."""
    params = _input.params_in(net, params)
    x = _input.kernel_X(net, X)
    n = x.n_rows
    if n == 0:
        raise ValueError("loss_grad needs at least one sample.")
    Y = _input.Y_in(net, Y, n)
    sw, has_sw = _input.kernel_sample_weight(
        net, _input.sample_weight_in(net, sample_weight, n))
    if grad_out is None:
        grad = np.empty(net.n_params, dtype=net.dtype)
    else:
        grad = _input.params_inout(net, grad_out, "grad_out")
    block = min(n, _LOSS_GRAD_BLOCK)
    ws = _Workspace(net, block, False, False)
    kernel = _dispatch(_loss_grad_chunk, net)
    split_ok = _split_applies(ws, x.sparse, block)
    start = 0
    loss_sum = 0.0
    with _input.session(net, "loss_grad", block) as session:
        # as train_epoch: the two-thread step where a chunk may get two
        # threads, so the numbers never depend on the threads picked
        split = split_ok and session.most_threads() >= 2
        if split:
            session.runs_own_threads()
        while start < n:
            threads = session.begin()
            use_helper = split and threads is not None and threads >= 2
            if use_helper:
                session.limit_blas(1)
            new, loss_sum = kernel(ws, params, x.dense, x.data, x.indices,
                                   x.indptr, x.sparse, Y, sw, has_sw, grad,
                                   loss_sum, start, use_helper, split)
            session.end(-(-(new - start) // block))
            start = new
            PyErr_CheckSignals()
    loss = _dispatch(_loss_grad_finish, net)(
        ws, params, sw, has_sw, n, loss_sum, float(alpha), grad)
    return float(loss), grad


def train_epoch(net, params, opt_state, X, Y, sample_weight, order, batch_size,
                hyper):
    """One pass over the rows ``order`` in minibatches of ``batch_size``;
    updates ``params`` and ``opt_state`` in place; returns the mean loss
    ``sum(batch_loss * batch_len) / len(order)``. With dropout
    (``hyper.dropout``) the workspace's generator, seeded with
    ``hyper.dropout_seed``, draws each batch's masks inside the loop."""
    params = _input.params_inout(net, params)
    m, v = _input.opt_buffers(net, opt_state)
    x = _input.kernel_X(net, X)
    order = _input.order_in(order, x.n_rows)
    batch_size = _input.batch_size_in(batch_size)
    n = order.shape[0]
    Y = _input.Y_in(net, Y, x.n_rows)
    sw, has_sw = _input.kernel_sample_weight(
        net, _input.sample_weight_in(net, sample_weight, x.n_rows))
    dropout = _input.dropout_in(net, hyper)
    if n == 0:
        return 0.0
    B = min(batch_size, n)
    n_batches = -(-n // batch_size)
    ws = _Workspace(net, B, not x.sparse, True,
                    dropout=None if dropout is None else dropout.rates)
    if dropout is not None:
        ws._seed_dropout(dropout.seed)
    _decide_small_gemm()
    kernel = _dispatch(_train_chunk, net)
    helper_ok = _helper_applies(ws, net.dtype, x.sparse, B)
    split_ok = _split_applies(ws, x.sparse, B)
    t = np.array([opt_state.t], dtype=np.longlong)
    args = (ws, params, m, v, t, x.dense, x.data, x.indices, x.indptr,
            x.sparse, Y, sw, has_sw, order, batch_size, int(opt_state.code),
            float(opt_state.step_rate()), float(opt_state.learning_rate_init),
            float(hyper.alpha), float(hyper.momentum), bool(hyper.nesterov),
            float(hyper.beta_1), float(hyper.beta_2), float(hyper.epsilon),
            float(hyper.weight_decay), float(hyper.max_grad_norm or 0.0))
    batch = 0
    total = 0.0
    try:
        with _input.session(net, "train_epoch", B) as session:
            # the two-thread step where a chunk may get two threads (then in
            # every chunk, so the numbers never depend on the threads)
            split = split_ok and session.most_threads() >= 2
            if split or helper_ok:
                session.runs_own_threads()
            while batch < n_batches:
                threads = session.begin()
                use_helper = ((helper_ok or split) and threads is not None
                              and threads >= 2)
                if use_helper:
                    # two threads of our own: OpenBLAS's stay out of their way
                    session.limit_blas(1)
                new, total = kernel(*args, total, batch, use_helper, split)
                session.end(new - batch)
                batch = new
                PyErr_CheckSignals()
    finally:
        opt_state.t = int(t[0])
    return total / n
