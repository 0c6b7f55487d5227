"""Width and depth: hidden (64,), (1024,), (256, 256, 256) on 784 dense
features, 10 classes, adam, batch 256: seconds per epoch."""

import numpy as np
import pytest
from bench_utils import backend_params, cached, dtype_params, quick_if, require, run_fit

from fastbp import _bench


@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("hidden", quick_if([(64,), (1024,), (256, 256, 256)], {(64,)},
                                            ids=["64", "1024", "256x3"]))
@pytest.mark.parametrize("backend", backend_params())
def test_width_depth(benchmark, backend, hidden, dtype, sizes):
    require(backend)
    n = sizes["shape_rows"]
    X, y = cached(("dense", n, dtype), lambda: _bench.make_dense(n, 784, 10, dtype))
    shapes = _bench.weight_shapes(784, hidden, 10)
    est = _bench.make_classifier(backend, hidden, batch_size=256, max_iter=1)
    run_fit(benchmark, est, X, y, epochs=1, flops=_bench.train_flops(n, shapes),
            topic="shapes", case="hidden " + "x".join(map(str, hidden)),
            backend=backend, dtype=np.dtype(dtype).name)
