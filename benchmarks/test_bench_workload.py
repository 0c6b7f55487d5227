"""Workload W of DESIGN.md (20k x 784 dense, 256 relu, 10 classes, adam) at
batch sizes 32, 256 and 1024: seconds per epoch.

Targets (reported by the terminal summary): >= 5x / 2.5x / 2x scikit-learn at
batch 32 / 256 / 1024, and >= 75% of the measured GEMM peak at batch >= 256.
"""

import numpy as np
import pytest
from bench_utils import backend_params, cached, dtype_params, quick_if, require, run_fit

from fastbp import _bench


@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("batch_size", quick_if([32, 256, 1024], {32, 256, 1024}))
@pytest.mark.parametrize("backend", backend_params())
def test_workload_w(benchmark, backend, batch_size, dtype, sizes, gemm_peak):
    require(backend)
    n = sizes["w_rows"]
    X, y = cached(("W", n, dtype), lambda: _bench.make_dense(n, 784, 10, dtype))
    shapes = _bench.weight_shapes(784, _bench.W_HIDDEN, 10)
    est = _bench.make_classifier(backend, _bench.W_HIDDEN, batch_size=batch_size,
                                 max_iter=sizes["w_epochs"])
    name = np.dtype(dtype).name
    rec = run_fit(benchmark, est, X, y, epochs=sizes["w_epochs"],
                  flops=_bench.train_flops(n, shapes), topic="workload",
                  case=f"W batch={batch_size}", backend=backend, dtype=name,
                  batch_size=batch_size)
    rec["pct_peak"] = 100 * rec["gflops"] / gemm_peak[name]
    benchmark.extra_info["pct_gemm_peak"] = rec["pct_peak"]
