"""predict / predict_proba throughput on 100k rows (784 dense features,
256 relu, 10 classes; model fitted for one epoch on 2k rows).
Target (docs/performance.md): <= 1.15x the predict's GEMM floor, which
``python -m fastbp bench`` reports; here the throughput beside
scikit-learn's."""

import numpy as np
import pytest
from bench_utils import (RESULTS, backend_params, cached, dtype_params, quick_if, require,
                         timed)

from fastbp import _bench


@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("method", quick_if(["predict", "predict_proba"], {"predict_proba"}))
@pytest.mark.parametrize("backend", backend_params())
def test_predict_throughput(benchmark, backend, method, dtype, sizes):
    require(backend)
    n = sizes["predict_rows"]
    X, y = cached(("predict", n, dtype), lambda: _bench.make_dense(n, 784, 10, dtype, seed=2))
    est = _bench.make_classifier(backend, (256,), batch_size=256, max_iter=1)
    _bench.time_fit(est, X[:2000], y[:2000])
    fn = getattr(est, method)
    _bench.time_call(fn, X[:256])  # warm-up
    secs = timed(benchmark, fn, X)
    shapes = _bench.weight_shapes(784, (256,), 10)
    rec = dict(method=method, backend=backend, dtype=np.dtype(dtype).name, seconds=secs,
               samples_per_s=n / secs, gflops=_bench.predict_flops(n, shapes) / secs / 1e9)
    benchmark.extra_info.update(rec)
    RESULTS["predict"].append(rec)
