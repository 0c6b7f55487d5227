"""Threading: two fits in two Python threads vs one after the other, and
GridSearchCV(n_jobs=2) with joblib's threading backend vs n_jobs=1, with no
BLAS thread setting (the thread policy decides); each also against the
serial run on one BLAS thread. Target: >= 1.6x over the serial run. 784
dense features, 256 relu, 10 classes, adam, batch 256, one epoch per fit."""

import numpy as np
import pytest
from bench_utils import RESULTS, backend_params, cached, require

from fastbp import _bench


def _make(backend):
    return lambda: _bench.make_classifier(backend, (256,), batch_size=256, max_iter=1)


@pytest.mark.quick
@pytest.mark.parametrize("backend", backend_params(("cython", "numpy", "sklearn")))
def test_two_fits_two_threads(benchmark, backend, sizes):
    require(backend)
    n = sizes["thread_rows"]
    X, y = cached(("threads", n), lambda: _bench.make_dense(n, 784, 10, np.float32, seed=4))
    box = []
    benchmark.pedantic(lambda: box.append(_bench.two_fits_threads(_make(backend), X, y)),
                       rounds=1, iterations=1)
    serial, serial_1t, parallel = box[-1]
    rec = dict(kind="two_fits", backend=backend, serial_s=serial, serial_1t_s=serial_1t,
               parallel_s=parallel, speedup=serial / parallel,
               speedup_vs_1t=serial_1t / parallel)
    benchmark.extra_info.update(rec)
    RESULTS["threading"].append(rec)


@pytest.mark.parametrize("backend", backend_params(("cython", "numpy", "sklearn")))
def test_gridsearch_threading(benchmark, backend, sizes):
    require(backend)
    n = sizes["grid_rows"]
    X, y = cached(("grid", n), lambda: _bench.make_dense(n, 784, 10, np.float32, seed=6))
    box = []
    benchmark.pedantic(
        lambda: box.append(_bench.gridsearch_threads(_make(backend), X, y,
                                                     {"alpha": [1e-4, 1e-3]})),
        rounds=1, iterations=1)
    one, one_1t, two = box[-1]
    rec = dict(kind="gridsearch", backend=backend, serial_s=one, serial_1t_s=one_1t,
               parallel_s=two, speedup=one / two, speedup_vs_1t=one_1t / two)
    benchmark.extra_info.update(rec)
    RESULTS["threading"].append(rec)
