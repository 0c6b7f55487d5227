"""A busy machine: workload W (784 dense, 256 relu, 10 classes, adam, float32)
at batch 32 / 256 / 1024, fitted idle and then while as many busy-looping
processes as cores run beside it (oversubscribed: a laptop with a browser
open, a shared server, a CI box). The timed round is the busy fit; the idle
fit of the same estimator is recorded beside it so the summary shows the
busy/idle ratio and the speed-ups in the busy run.

Targets (reported by the terminal summary): fastbp <= 2.5x its own idle
time, and >= 3x / 3x / 1.5x scikit-learn at batch 32 / 256 / 1024 in the
same busy run.
"""

import numpy as np
import pytest
from bench_utils import RESULTS, backend_params, cached, quick_if, require, timed, warm_up

from fastbp import _bench


@pytest.mark.parametrize("batch_size", quick_if([32, 256, 1024], {32}))
@pytest.mark.parametrize("backend", backend_params(("cython", "sklearn", "torch")))
def test_busy_oversubscribed(benchmark, backend, batch_size, sizes):
    require(backend)
    n = sizes["w_rows"]
    X, y = cached(("W", n, np.float32), lambda: _bench.make_dense(n, 784, 10, np.float32))

    def make():
        return _bench.make_classifier(backend, _bench.W_HIDDEN, batch_size=batch_size,
                                      max_iter=1)

    warm_up(make(), X, y)
    idle = _bench.time_fit(make(), X, y)
    n_busy = _bench.n_cores()
    with _bench.BusyLoad(n_busy):
        busy = timed(benchmark, make().fit, X, y)
    rec = dict(case=f"W batch={batch_size}", backend=backend, batch_size=batch_size,
               busy_procs=n_busy, idle_seconds=idle, seconds=busy, busy_over_idle=busy / idle)
    benchmark.extra_info.update(rec)
    RESULTS["busy"].append(rec)
