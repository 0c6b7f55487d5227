"""Each hidden activation (relu, tanh, logistic, softplus, maxout k=2) at
batch 256: 784 dense features, 256 units, 10 classes, adam. scikit-learn has
no softplus or maxout (skipped)."""

import numpy as np
import pytest
from bench_utils import backend_params, cached, dtype_params, quick_if, require, run_fit

from fastbp import _bench


@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("activation", quick_if(["relu", "tanh", "logistic", "softplus", "maxout"],
                                                {"relu", "maxout"}))
@pytest.mark.parametrize("backend", backend_params())
def test_activation(benchmark, backend, activation, dtype, sizes):
    require(backend, activation=activation)
    n = sizes["act_rows"]
    X, y = cached(("dense", n, dtype), lambda: _bench.make_dense(n, 784, 10, dtype))
    shapes = _bench.weight_shapes(784, (256,), 10, activation=activation, maxout_pieces=2)
    est = _bench.make_classifier(backend, (256,), activation=activation, batch_size=256,
                                 max_iter=1, maxout_pieces=2)
    run_fit(benchmark, est, X, y, epochs=1, flops=_bench.train_flops(n, shapes),
            topic="activations", case=activation, backend=backend,
            dtype=np.dtype(dtype).name)
