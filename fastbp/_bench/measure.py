"""How the bench measures: wall time of a fit or a call, the peak memory of
a fit, cases fitted interleaved, two fits in two threads, the machine's GEMM peak and a case's GEMM
floor, and the environment the numbers were taken in."""

import contextlib
import gc
import math
import os
import platform
import threading
import time
import tracemalloc
import warnings

import numpy as np


# ---------------------------------------------------------------- timing
@contextlib.contextmanager
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def no_gc():
    """The cyclic garbage collector off while timing (as timeit does)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def time_fit(est, X, y):
    """Wall seconds of ``est.fit(X, y)`` (warnings silenced, no cyclic GC)."""
    with quiet(), no_gc():
        t = time.perf_counter()
        est.fit(X, y)
        return time.perf_counter() - t


def time_call(fn, *args):
    with quiet(), no_gc():
        t = time.perf_counter()
        out = fn(*args)
        return time.perf_counter() - t, out


def interleaved_fits(makers, X, y, rounds):
    """Fit every case of ``makers`` (``{key: make}``, ``make()`` a fresh
    estimator) once per round for ``rounds`` rounds, the order rotated each
    round so that no case always runs first or after the same neighbour; the
    cases share the drift of the machine. Returns ``{key: [seconds of each
    round]}`` and ``{key: the last estimator fitted}``."""
    keys = list(makers)
    seconds = {k: [] for k in keys}
    fitted = {}
    for i in range(rounds):
        shift = i % len(keys)
        for k in keys[shift:] + keys[:shift]:
            est = makers[k]()
            seconds[k].append(time_fit(est, X, y))
            fitted[k] = est
    return seconds, fitted


def fit_peak_memory(est, X, y):
    """Peak bytes traced by tracemalloc during ``est.fit(X, y)`` beyond what
    was allocated before it (X and y included, so not counted), and the
    fit's seconds."""
    was = tracemalloc.is_tracing()
    if not was:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    with quiet():
        t = time.perf_counter()
        est.fit(X, y)
        dt = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1] - base
    if not was:
        tracemalloc.stop()
    return peak, dt


def _no_blas_setting():
    """No BLAS thread setting of our own: the threading targets are for a user
    who sets none, so each library's thread policy decides."""
    return contextlib.nullcontext()


def _one_blas_thread():
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


def two_fits_threads(make, X, y):
    """(serial seconds, serial seconds on one BLAS thread, threaded seconds)
    of two fits. The serial and threaded runs have no BLAS thread setting
    (each library's own thread policy decides). The one-thread serial run
    comes between them: it is the yardstick of the threads' own parallelism,
    and it lets OpenBLAS's threads, left spinning by the serial run's last
    multi-thread products, go idle (~0.15 s) before the threads start."""
    with quiet():
        a, b = make(), make()
        a.fit(X[:64], y[:64])  # warm-up imports and caches
        with _no_blas_setting():
            t = time.perf_counter()
            a.fit(X, y)
            b.fit(X, y)
            serial = time.perf_counter() - t
        with _one_blas_thread():
            t = time.perf_counter()
            make().fit(X, y)
            make().fit(X, y)
            serial_1t = time.perf_counter() - t
        errors = []

        def run(est):
            try:
                est.fit(X, y)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(est,)) for est in (make(), make())]
        with _no_blas_setting():
            t = time.perf_counter()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            threaded = time.perf_counter() - t
        if errors:
            raise errors[0]
    return serial, serial_1t, threaded


def gridsearch_threads(make, X, y, param_grid, cv=2):
    """(n_jobs=1 seconds, n_jobs=1 seconds on one BLAS thread, n_jobs=2
    threading seconds) of a GridSearchCV, in that order; no BLAS thread
    setting but in the second (see :func:`two_fits_threads`)."""
    from joblib import parallel_config
    from sklearn.model_selection import GridSearchCV

    out = []
    with quiet():
        for n_jobs, limit in ((1, _no_blas_setting), (1, _one_blas_thread),
                              (2, _no_blas_setting)):
            gs = GridSearchCV(make(), param_grid, cv=cv, n_jobs=n_jobs, refit=False)
            with parallel_config(backend="threading"), limit():
                t = time.perf_counter()
                gs.fit(X, y)
                out.append(time.perf_counter() - t)
    return tuple(out)


def fitted_exponent(ns, ts):
    """Least-squares slope of log(t) on log(n)."""
    ns, ts = np.log(np.asarray(ns, float)), np.log(np.asarray(ts, float))
    if len(ns) < 2:
        return float("nan")
    return float(np.polyfit(ns, ts, 1)[0])


# ------------------------------------------------------------------ GEMM
def _scipy_gemm(dtype):
    from scipy.linalg import blas

    return blas.sgemm if np.dtype(dtype) == np.float32 else blas.dgemm


def _gemm_best(dtype, size, repeats):
    rng = np.random.default_rng(1)
    A = rng.random((size, size)).astype(dtype)
    B = rng.random((size, size)).astype(dtype)
    C = np.empty((size, size), dtype=dtype)
    gemm = _scipy_gemm(dtype)
    Af, Bf = np.asfortranarray(A), np.asfortranarray(B)
    flops = 2.0 * size**3
    best = {"numpy": math.inf, "scipy": math.inf}
    np.matmul(A, B, out=C)
    gemm(1.0, Af, Bf)
    for _ in range(repeats):
        t = time.perf_counter()
        np.matmul(A, B, out=C)
        best["numpy"] = min(best["numpy"], time.perf_counter() - t)
        t = time.perf_counter()
        gemm(1.0, Af, Bf)
        best["scipy"] = min(best["scipy"], time.perf_counter() - t)
    return {k: flops / v / 1e9 for k, v in best.items()}


def gemm_peak(dtype, size=1024, repeats=5):
    """The machine's measured GEMM throughput for ``dtype``: the best GFLOP/s
    of a ``size``-cubed product over NumPy's matmul and SciPy's BLAS (the
    compiled backend links SciPy's), with one BLAS thread and with the
    current thread count (on a busy machine one thread can be faster)."""
    from threadpoolctl import threadpool_limits

    out = {"size": size}
    with threadpool_limits(limits=1, user_api="blas"):
        g1 = _gemm_best(dtype, size, repeats)
    gn = _gemm_best(dtype, size, repeats)
    out.update({"numpy_1t_gflops": g1["numpy"], "scipy_1t_gflops": g1["scipy"],
                "numpy_gflops": gn["numpy"], "scipy_gflops": gn["scipy"]})
    out["gflops"] = max(v for k, v in out.items() if k.endswith("gflops"))
    return out


def _call_overhead(gemm, dtype, calls=2000):
    """Seconds one call of SciPy's GEMM wrapper costs beyond the product
    itself (a 1 x 1 product into a given output, best of three loops)."""
    a = np.ones((1, 1), dtype=dtype, order="F")
    c = np.empty((1, 1), dtype=dtype, order="F")
    best = math.inf
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(calls):
            gemm(1.0, a, a, 0.0, c, overwrite_c=1)
        best = min(best, time.perf_counter() - t)
    return best / calls


def _floor_once(dtype, gemms, repeats):
    """Best seconds of running ``gemms`` (see ``cases.train_gemms``) back to
    back through SciPy's BLAS, operands and outputs allocated beforehand."""
    gemm = _scipy_gemm(dtype)
    rng = np.random.default_rng(3)
    ops = {}
    for _, _, products in gemms:
        for m, k, n in products:
            if (m, k, n) not in ops:
                ops[(m, k, n)] = (
                    np.asfortranarray(rng.random((m, k)).astype(dtype)),
                    np.asfortranarray(rng.random((k, n)).astype(dtype)),
                    np.empty((m, n), dtype=dtype, order="F"))
    plan = [(count, [ops[p] for p in products]) for _, count, products in gemms]
    for _, operands in plan:  # warm-up: first-call costs, page faults
        for a, b, c in operands:
            gemm(1.0, a, b, 0.0, c, overwrite_c=1)
    best = math.inf
    for _ in range(repeats):
        with no_gc():
            t = time.perf_counter()
            for count, operands in plan:
                for _ in range(count):
                    for a, b, c in operands:
                        gemm(1.0, a, b, 0.0, c, overwrite_c=1)
            best = min(best, time.perf_counter() - t)
    n_calls = sum(count * len(products) for _, count, products in gemms)
    return best, n_calls


def gemm_floor(dtype, gemms, repeats=3):
    """The GEMM floor of a case: seconds its matrix products take alone, back
    to back, through SciPy's BLAS (the BLAS the compiled kernels call), with
    the BLAS threads as they are now and with one thread.

    SciPy's Python wrapper costs a few microseconds per call that the
    compiled kernels don't pay; that cost, measured on 1 x 1 products, is
    subtracted (``overhead_s`` says how much). ``seconds`` is the smaller of
    the two thread settings' floors: the fit may run its products with
    either."""
    from threadpoolctl import threadpool_limits

    gemm = _scipy_gemm(dtype)
    out = {}
    for key, limits in (("threads", None), ("1t", 1)):
        limiter = (threadpool_limits(limits=limits, user_api="blas") if limits
                   else contextlib.nullcontext())
        with limiter:
            raw, n_calls = _floor_once(dtype, gemms, repeats)
            overhead = _call_overhead(gemm, dtype) * n_calls
        out[f"raw_s_{key}"] = raw
        out[f"overhead_s_{key}"] = overhead
        # never below half the raw time: the overhead is an estimate
        out[f"seconds_{key}"] = max(raw - overhead, raw / 2)
    out["calls"] = n_calls
    out["seconds"] = min(out["seconds_threads"], out["seconds_1t"])
    return out


# ------------------------------------------------------------ environment
def blas_summary():
    """[(library, version, threads, path)] of the BLAS/OpenMP pools."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [
        {
            "user_api": d.get("user_api"),
            "internal_api": d.get("internal_api"),
            "version": d.get("version"),
            "num_threads": d.get("num_threads"),
            "architecture": d.get("architecture"),
            "threading_layer": d.get("threading_layer"),
            "filepath": os.path.basename(d.get("filepath", "")),
        }
        for d in threadpool_info()
    ]


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [f for f in ("avx512f", "avx2", "fma", "avx") if f in flags]
    except OSError:
        pass
    return []


def load_average():
    """The 1, 5 and 15 minute load averages (as ``uptime`` prints them), or
    None where the platform has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None
