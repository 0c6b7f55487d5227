"""Peak extra memory of ``fit`` beyond X itself (tracemalloc), on 100k x 784
float32, one epoch at batch 256: fastbp vs scikit-learn. Target: <= 25% of
X's size. X and y exist before tracing starts, so they are not counted;
anything the fit copies or allocates through NumPy/Python is."""

import numpy as np
import pytest
from bench_utils import RESULTS, backend_params, cached, require

from fastbp import _bench


@pytest.mark.quick
@pytest.mark.parametrize("backend", backend_params(("cython", "numpy", "sklearn")))
def test_fit_peak_memory(benchmark, backend, sizes):
    require(backend, memory=True)
    n = sizes["memory_rows"]
    X, y = cached(("memory", n), lambda: _bench.make_dense(n, 784, 10, np.float32, seed=3))
    # warm-up fit on a few rows: imports and caches are not the fit's memory
    _bench.time_fit(_bench.make_classifier(backend, (256,), batch_size=256), X[:512], y[:512])
    est = _bench.make_classifier(backend, (256,), batch_size=256, max_iter=1)
    box = []
    benchmark.pedantic(lambda: box.append(_bench.fit_peak_memory(est, X, y)),
                       rounds=1, iterations=1)
    peak, secs = box[-1]
    rec = dict(backend=backend, peak_bytes=int(peak), x_bytes=int(X.nbytes),
               fraction_of_X=peak / X.nbytes, seconds=secs)
    benchmark.extra_info.update(rec)
    RESULTS["memory"].append(rec)
