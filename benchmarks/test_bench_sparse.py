"""Sparse CSR input: 20k rows x 50k features, 0.5% density, 128 relu, adam,
batch 256: seconds per epoch (first-layer FLOPs counted on the non-zeros)."""

import numpy as np
import pytest
from bench_utils import backend_params, cached, dtype_params, require, run_fit

from fastbp import _bench


@pytest.mark.quick
@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("backend", backend_params())
def test_sparse_csr(benchmark, backend, dtype, sizes):
    require(backend, sparse_input=True)
    n, m, d = sizes["sparse_rows"], sizes["sparse_features"], sizes["sparse_density"]
    X, y = cached(("sparse", n, m, d, dtype), lambda: _bench.make_sparse(n, m, d, dtype=dtype))
    shapes = _bench.weight_shapes(m, (128,), 10)
    est = _bench.make_classifier(backend, (128,), batch_size=256, max_iter=1)
    run_fit(benchmark, est, X, y, epochs=1, flops=_bench.train_flops(n, shapes, nnz=X.nnz),
            topic="sparse", case=f"CSR {n}x{m} d={d}", backend=backend,
            dtype=np.dtype(dtype).name)
