"""How many BLAS threads fastbp's kernels run on.

Both backends drive their work in *chunks* (a few minibatches of an epoch,
a block of rows on the predict path, one L-BFGS ``loss_grad`` call) and ask
this module, around every chunk, which BLAS thread count to use::

    with blas_session(key, largest_gemm) as session:
        while work remains:
            session.begin()              # sets the thread count for this chunk
            units = run_one_chunk()      # kernel, without the GIL
            session.end(units)           # how many units (batches, rows) it did

``key`` is a hashable description of the GEMM shapes (what the work is), so
what was learned about one shape is kept for the next call with the same
shape; ``largest_gemm`` is the multiply-adds of the largest GEMM of one unit.

The user's setting (threadpoolctl, ``OPENBLAS_NUM_THREADS``) is the upper
bound, and it is what the process has again when the last session ends.

This first policy is the size rule: one BLAS thread when the largest GEMM is
below ``BLAS_SINGLE_THREAD_BELOW`` multiply-adds or when several sessions run
at once (each has its own core then), the user's setting otherwise.
"""

import threading

# Minibatch GEMMs are small. Measured on a 2-core EPYC (AVX2, OpenBLAS 0.3.30,
# sgemm pair H = X W and dW = X^T D, 2 threads vs 1, machine otherwise idle):
#     largest GEMM (multiply-adds)    65k-262k   524k        1M-50M
#     time with 2 threads / 1 thread  1.17-1.24  0.76-0.90   0.48-0.75
BLAS_SINGLE_THREAD_BELOW = 2 ** 20

_lock = threading.Lock()
_running = 0          # sessions running now, in any thread
_limiter = None       # threadpoolctl limiter while BLAS is held at one thread
_controller = None


def _limit_blas_to_one():
    global _controller
    try:
        if _controller is None:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
        return _controller.limit(limits=1, user_api="blas")
    except Exception:  # threadpoolctl missing or failing: not fatal
        return None


class _Session:
    def __init__(self, key, largest_gemm):
        self.key = key
        self.single = largest_gemm < BLAS_SINGLE_THREAD_BELOW

    def __enter__(self):
        global _running, _limiter
        with _lock:
            _running += 1
            if _limiter is None and (self.single or _running > 1):
                _limiter = _limit_blas_to_one()
        return self

    def begin(self):
        """Before a chunk: set the BLAS thread count for it."""

    def end(self, units):
        """After a chunk of ``units`` units of work."""

    def __exit__(self, *exc):
        global _running, _limiter
        with _lock:
            _running -= 1
            if _running == 0 and _limiter is not None:
                try:
                    _limiter.restore_original_limits()
                finally:
                    _limiter = None
        return False


def blas_session(key, largest_gemm):
    """Context manager for one kernel call made of chunks (see the module
    docstring)."""
    return _Session(key, largest_gemm)
