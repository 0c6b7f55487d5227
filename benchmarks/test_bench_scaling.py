"""Scaling in n: 1k, 10k, 100k rows (100 features, 64 relu, adam, batch 256).
Cost should grow linearly; the terminal summary prints the fitted exponent
of seconds per epoch against n for each backend and dtype."""

import numpy as np
import pytest
from bench_utils import (SIZES, backend_params, cached, dtype_params, quick_if, require,
                         run_fit)

from fastbp import _bench

# Index into sizes["scaling_rows"] (full: 1k/10k/100k; quick: smaller).
POINTS = list(range(len(SIZES["full"]["scaling_rows"])))


@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("point", quick_if(POINTS, set(POINTS), ids=["small", "medium", "large"]))
@pytest.mark.parametrize("backend", backend_params())
def test_scaling_n(benchmark, backend, point, dtype, sizes):
    require(backend)
    n = sizes["scaling_rows"][point]
    m, hidden = sizes["scaling_features"], sizes["scaling_hidden"]
    n_max = max(sizes["scaling_rows"])
    X, y = cached(("scaling", n_max, m, dtype),
                  lambda: _bench.make_dense(n_max, m, 10, dtype, seed=5))
    X, y = X[:n], y[:n]
    shapes = _bench.weight_shapes(m, hidden, 10)
    est = _bench.make_classifier(backend, hidden, batch_size=256, max_iter=1)
    run_fit(benchmark, est, X, y, epochs=1, flops=_bench.train_flops(n, shapes),
            topic="scaling", case=f"n={n}", n=n, backend=backend,
            dtype=np.dtype(dtype).name)
