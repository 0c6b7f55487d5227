"""Helpers shared by the benchmark modules (sizes, parametrizations, the
timed fit and the session registry the terminal summary reads)."""

import os
import time
from collections import defaultdict

import numpy as np
import pytest

from fastbp import _bench

BACKENDS = ("cython", "numpy", "sklearn", "torch")
DTYPES = (np.float32, np.float64)

# Data sizes: full suite / quick subset.
SIZES = {
    "full": dict(
        w_rows=20_000, w_epochs=1,
        shape_rows=5_000,
        scaling_rows=(1_000, 10_000, 100_000), scaling_features=100, scaling_hidden=(64,),
        sparse_rows=20_000, sparse_features=50_000, sparse_density=0.005,
        act_rows=5_000, solver_rows=5_000, lbfgs_iter=5,
        predict_rows=100_000, memory_rows=100_000,
        thread_rows=10_000, grid_rows=4_000,
        gemm=1536,
    ),
    "quick": dict(
        w_rows=1_024, w_epochs=1,
        shape_rows=512,
        scaling_rows=(500, 2_000, 8_000), scaling_features=100, scaling_hidden=(64,),
        sparse_rows=1_000, sparse_features=5_000, sparse_density=0.005,
        act_rows=512, solver_rows=512, lbfgs_iter=3,
        predict_rows=10_000, memory_rows=2_000,
        thread_rows=1_000, grid_rows=400,
        gemm=512,
    ),
}

# Session registry: topic -> list of dicts (filled by the tests).
RESULTS = defaultdict(list)


QUICK = {"quick": False}  # set by conftest.py for the session


def backend_params(backends=BACKENDS):
    return [pytest.param(b, id=b) for b in backends]


def dtype_params():
    """float32 may be in the quick subset, float64 is only in the full suite."""
    return [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]


def quick_if(values, quick, ids=None):
    """Parameters; those in ``quick`` also carry the ``quick`` mark."""
    ids = ids or [str(v) for v in values]
    return [pytest.param(v, id=i, marks=[pytest.mark.quick] if v in quick else [])
            for v, i in zip(values, ids)]


def require(backend, **case):
    if QUICK["quick"] and backend == "torch":
        pytest.skip("torch runs in the full suite only")
    reason = _bench.skip_reason(backend, **case)
    if reason:
        if backend == "cython" and os.environ.get("FASTBP_REQUIRE_CYTHON") == "1":
            pytest.fail(f"FASTBP_REQUIRE_CYTHON=1 but {reason}")
        pytest.skip(reason)


_DATA_CACHE = {}


def cached(key, make):
    """Data sets shared between tests (the big ones take seconds to make)."""
    if key not in _DATA_CACHE:
        if len(_DATA_CACHE) > 3:  # keep memory bounded
            _DATA_CACHE.pop(next(iter(_DATA_CACHE)))
        _DATA_CACHE[key] = make()
    return _DATA_CACHE[key]


def run_fit(benchmark, est, X, y, *, epochs, flops=None, topic, **info):
    """Time one ``est.fit(X, y)`` (one round), warm up on a few rows first,
    record seconds per epoch, samples/s and GFLOP/s."""
    warm_up(est, X, y)
    secs = timed(benchmark, est.fit, X, y)
    n_iter = getattr(est, "n_iter_", epochs) or epochs
    per = secs / n_iter
    rec = dict(info, seconds=secs, s_per_epoch=per, samples_per_s=X.shape[0] / per)
    if flops is not None:
        rec["gflops"] = flops * n_iter / secs / 1e9
    benchmark.extra_info.update({k: (float(v) if isinstance(v, (np.floating, float)) else v)
                                 for k, v in rec.items() if not isinstance(v, tuple)})
    RESULTS[topic].append(rec)
    return rec


_WARM = set()


def warm_up(est, X, y):
    """One small fit per (estimator type, backend, dtype, sparse) and session:
    imports and first-call costs stay out of the timings."""
    key = (type(est).__name__, getattr(est, "backend", None), X.dtype.name,
           type(X).__name__)
    if key in _WARM:
        return
    _WARM.add(key)
    n = min(X.shape[0], 256)
    _bench.time_fit(_clone(est), X[:n], y[:n])


def timed(benchmark, fn, *args):
    """Run ``fn(*args)`` once under the benchmark fixture; its wall seconds."""
    box = []

    def target():
        t = time.perf_counter()
        out = fn(*args)
        box.append(time.perf_counter() - t)
        return out

    with _bench.quiet(), _bench.no_gc():
        benchmark.pedantic(target, rounds=1, iterations=1, warmup_rounds=0)
    return box[-1]


def _clone(est):
    inner = getattr(est, "est", None)
    if inner is not None:  # _bench._OneThread
        return type(est)(_clone(inner))
    try:
        from sklearn.base import clone

        return clone(est)
    except Exception:
        return type(est)(**{k: v for k, v in vars(est).items() if not k.endswith("_")})


