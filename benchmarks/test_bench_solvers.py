"""Each solver: sgd with Nesterov momentum and adam at batch 256 (seconds per
epoch), lbfgs on the full batch (seconds per iteration; FLOPs counted as one
forward + backward per iteration, a lower bound when the line search needs
more evaluations). 784 dense features, 256 relu, 10 classes."""

import numpy as np
import pytest
from bench_utils import backend_params, cached, dtype_params, quick_if, require, run_fit

from fastbp import _bench


@pytest.mark.parametrize("dtype", dtype_params())
@pytest.mark.parametrize("solver", quick_if(["sgd", "adam", "lbfgs"], {"sgd", "lbfgs"}))
@pytest.mark.parametrize("backend", backend_params())
def test_solver(benchmark, backend, solver, dtype, sizes):
    require(backend, solver=solver)
    n = sizes["solver_rows"]
    X, y = cached(("dense", n, dtype), lambda: _bench.make_dense(n, 784, 10, dtype))
    shapes = _bench.weight_shapes(784, (256,), 10)
    epochs = sizes["lbfgs_iter"] if solver == "lbfgs" else 1
    est = _bench.make_classifier(backend, (256,), solver=solver, batch_size=256,
                                 max_iter=epochs, momentum=0.9, nesterovs_momentum=True,
                                 learning_rate_init=1e-3)
    run_fit(benchmark, est, X, y, epochs=epochs, flops=_bench.train_flops(n, shapes),
            topic="solvers", case="sgd+nesterov" if solver == "sgd" else solver,
            backend=backend, dtype=np.dtype(dtype).name)
