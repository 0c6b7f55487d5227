"""The training controls on workload W at batch 256, compiled backend:
defaults, AdamW (``weight_decay=1e-2``), clipping (``max_grad_norm=1.0``),
both, each activation other than relu and ``dropout=0.2``, seconds per epoch.

Targets (docs/performance.md; reported by the terminal summary as the
overhead over the defaults' epoch): AdamW <= 3%, clipping <= 5%, each
activation <= 10%, dropout <= 15%. A setting this build cannot fit is
skipped. Here each
case is its own benchmark, one after the other; ``python -m fastbp bench``
interleaves them round by round, which is the number to quote.
"""

import pytest
from bench_utils import cached, require, run_fit

from fastbp import _bench
from fastbp._bench.cases import CONTROLS, CONTROLS_BATCH


@pytest.mark.parametrize("control, label, params", [
    pytest.param(key, label, params, id=key,
                 marks=[pytest.mark.quick] if key == "both" else [])
    for key, label, params in CONTROLS])
def test_training_controls(benchmark, control, label, params, sizes, gemm_peak):
    require("cython")
    why = _bench.control_skip_reason(params)
    if why is not None:
        pytest.skip(why)
    n = sizes["w_rows"]
    X, y = cached(("W", n, "float32"), lambda: _bench.make_dense(n, 784, 10))
    shapes = _bench.weight_shapes(784, _bench.W_HIDDEN, 10)
    est = _bench.make_classifier("cython", _bench.W_HIDDEN, batch_size=CONTROLS_BATCH,
                                 max_iter=sizes["w_epochs"], **params)
    # each setting's own code path warmed up (run_fit warms one per backend)
    _bench.time_fit(_bench.make_classifier("cython", _bench.W_HIDDEN, batch_size=CONTROLS_BATCH,
                                           max_iter=1, **params), X[:512], y[:512])
    rec = run_fit(benchmark, est, X, y, epochs=sizes["w_epochs"],
                  flops=_bench.train_flops(n, shapes), topic="controls",
                  case=f"W batch={CONTROLS_BATCH}", backend="cython", control=control,
                  setting=label)
    rec["pct_peak"] = 100 * rec["gflops"] / gemm_peak["float32"]
    benchmark.extra_info["pct_gemm_peak"] = rec["pct_peak"]
    for key, value in params.items():
        assert est.get_params()[key] == value  # the case ran with its own settings
