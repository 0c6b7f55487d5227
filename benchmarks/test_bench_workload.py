"""Workload W (20k x 784 dense, 256 relu, 10 classes, adam) at batch sizes
32, 256 and 1024: seconds per epoch, beside the case's GEMM floor (the same
minibatch products alone, back to back).

Targets (docs/performance.md; reported by the terminal summary): batch 32
<= 1.3x its GEMM floor and >= 5x scikit-learn; batch >= 256 <= 1.15x its
floor; faster than PyTorch at every batch size.
"""

import numpy as np
import pytest
from bench_utils import backend_params, cached, dtype_params, quick_if, require, run_fit

from fastbp import _bench

_FLOORS = {}


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
    key = (n, batch_size, name)
    if key not in _FLOORS:  # one floor per case, shared by the backends
        _FLOORS[key] = _bench.gemm_floor(dtype, _bench.train_gemms(n, batch_size, shapes))
    floor = _FLOORS[key]
    rec["floor_s"] = floor["seconds"]
    rec["x_floor"] = rec["s_per_epoch"] / floor["seconds"]
    benchmark.extra_info["x_gemm_floor"] = rec["x_floor"]
