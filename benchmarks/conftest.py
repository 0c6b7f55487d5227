"""pytest-benchmark suite: fastbp (cython, numpy) vs scikit-learn (and torch).

    pytest benchmarks/ --benchmark-only            # full suite, ~15 min on 2 cores
    pytest benchmarks/ --benchmark-only --quick    # quick subset, < 1 min
    pytest benchmarks/ --benchmark-only -m quick   # the same

Every case runs one timed round (``benchmark.pedantic``): the workloads are
seconds long and the machine is shared, so compare the ratios of one run, not
absolute times. Each case stores what it measured in ``benchmark.extra_info``
(seconds per epoch, samples/s, GFLOP/s, ...) and in a session registry; the
terminal summary prints the ratios against the targets of DESIGN.md (the
suite reports, it never fails on a timing).

Quick mode (``--quick`` or a ``-m`` expression naming ``quick``) keeps only
the cases marked ``quick`` (float32, one or a few cases per topic, no torch)
and shrinks every data set; CI runs it so the suite cannot rot.
"""

from collections import defaultdict

import numpy as np
import pytest

from bench_utils import DTYPES, RESULTS, SIZES  # noqa: F401

from fastbp import _bench


def pytest_addoption(parser):
    parser.addoption("--quick", action="store_true", default=False,
                     help="fastbp benchmarks: run only the quick subset on small data")


def _quick(config):
    return bool(config.getoption("--quick")) or "quick" in (config.getoption("markexpr") or "")


def _in_quick_subset(item):
    """Marked ``quick`` and not a float64 case."""
    if item.get_closest_marker("quick") is None:
        return False
    params = getattr(getattr(item, "callspec", None), "params", {})
    return params.get("dtype", np.float32) is not np.float64 and params.get("backend") != "torch"


def pytest_collection_modifyitems(config, items):
    if not _quick(config):
        return
    keep, drop = [], []
    for item in items:
        (keep if _in_quick_subset(item) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_configure(config):
    import bench_utils

    bench_utils.QUICK["quick"] = _quick(config)
    config.addinivalue_line("markers", "quick: the quick benchmark subset")
    config.addinivalue_line("markers", "slow: longer tests")


@pytest.fixture(scope="session")
def sizes(request):
    return SIZES["quick" if _quick(request.config) else "full"]


@pytest.fixture(scope="session")
def gemm_peak(sizes):
    """GEMM GFLOP/s of this machine per dtype name, measured once per session."""
    peak = {np.dtype(dt).name: _bench.gemm_peak(dt, sizes["gemm"], 3)["gflops"]
            for dt in DTYPES}
    RESULTS["gemm_peak"].append(peak)
    return peak


# ------------------------------------------------------------ the report
def _ratio(a, b):
    return a / b if a and b else float("nan")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section("fastbp benchmark report (targets are reported, not enforced)")
    peak = RESULTS.get("gemm_peak")
    peak = peak[0] if peak else {}
    if peak:
        tr.write_line("GEMM peak: " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in peak.items()))
    tr.write_line(_bench.FLOP_NOTE)

    def by(topic, **match):
        return [r for r in RESULTS.get(topic, []) if all(r.get(k) == v for k, v in match.items())]

    w = RESULTS.get("workload", [])
    if w:
        tr.write_line("")
        tr.write_line("Workload W (s/epoch; speed-up vs scikit-learn, target; % GEMM peak):")
        for dtype in ("float32", "float64"):
            for bs in _bench.W_BATCHES:
                sk = by("workload", backend="sklearn", dtype=dtype, batch_size=bs)
                nu = by("workload", backend="numpy", dtype=dtype, batch_size=bs)
                for r in by("workload", dtype=dtype, batch_size=bs):
                    vs_sk = _ratio(sk[0]["s_per_epoch"], r["s_per_epoch"]) if sk else float("nan")
                    vs_np = _ratio(nu[0]["s_per_epoch"], r["s_per_epoch"]) if nu else float("nan")
                    pk = peak.get(dtype)
                    pct = 100 * r.get("gflops", 0) / pk if pk else float("nan")
                    tr.write_line(
                        f"  {dtype} batch {bs:>4}  {r['backend']:<8} {r['s_per_epoch']:8.4f} s"
                        f"  vs sklearn {vs_sk:5.2f}x (target {_bench.TARGET_SPEEDUP[bs]:g}x)"
                        f"  vs numpy {vs_np:5.2f}x  {pct:5.1f}% of peak"
                        + ("  (target 75%)" if bs >= 256 else ""))
    sc = RESULTS.get("scaling", [])
    if sc:
        tr.write_line("")
        tr.write_line("Scaling in n (fitted exponent of s/epoch vs rows; 1 = linear):")
        groups = defaultdict(list)
        for r in sc:
            groups[(r["backend"], r["dtype"])].append((r["n"], r["s_per_epoch"]))
        for (b, dt), pts in sorted(groups.items()):
            pts.sort()
            k = _bench.fitted_exponent([p[0] for p in pts], [p[1] for p in pts])
            tr.write_line(f"  {b:<8} {dt}: exponent {k:.3f} over n = "
                          + ", ".join(f"{n:,}" for n, _ in pts))
    pr = RESULTS.get("predict", [])
    if pr:
        tr.write_line("")
        tr.write_line("Predict throughput (samples/s; target >= 2x scikit-learn):")
        for r in pr:
            sk = by("predict", backend="sklearn", dtype=r["dtype"], method=r["method"])
            vs = _ratio(sk[0]["seconds"], r["seconds"]) if sk else float("nan")
            tr.write_line(f"  {r['method']:<13} {r['dtype']} {r['backend']:<8} "
                          f"{r['samples_per_s']:>12,.0f}/s  vs sklearn {vs:5.2f}x")
    mem = RESULTS.get("memory", [])
    if mem:
        tr.write_line("")
        tr.write_line("Peak extra memory of fit beyond X (tracemalloc; target <= 25% of X):")
        for r in mem:
            tr.write_line(f"  {r['backend']:<8} {r['peak_bytes'] / 2**20:8.1f} MiB = "
                          f"{100 * r['fraction_of_X']:5.1f}% of X ({r['x_bytes'] / 2**20:.0f} MiB)")
    th = RESULTS.get("threading", [])
    if th:
        tr.write_line("")
        tr.write_line("Threading, BLAS at 1 thread (target >= 1.6x):")
        for r in th:
            tr.write_line(f"  {r['kind']:<10} {r['backend']:<8} serial {r['serial_s']:.3f} s, "
                          f"parallel {r['parallel_s']:.3f} s: {r['speedup']:.2f}x")
    for topic in ("shapes", "sparse", "activations", "solvers"):
        rows = RESULTS.get(topic, [])
        if not rows:
            continue
        tr.write_line("")
        tr.write_line(f"{topic} (s/epoch or s/iteration; vs scikit-learn / numpy backend):")
        for r in rows:
            key = {k: r[k] for k in ("case", "dtype")}
            sk = by(topic, backend="sklearn", **key)
            nu = by(topic, backend="numpy", **key)
            vs_sk = _ratio(sk[0]["s_per_epoch"], r["s_per_epoch"]) if sk else float("nan")
            vs_np = _ratio(nu[0]["s_per_epoch"], r["s_per_epoch"]) if nu else float("nan")
            g = r.get("gflops")
            tr.write_line(f"  {r['case']:<28} {r['dtype']} {r['backend']:<8} "
                          f"{r['s_per_epoch']:8.4f} s  {'' if g is None else f'{g:6.1f} GFLOP/s'}"
                          f"  vs sklearn {vs_sk:5.2f}x  vs numpy {vs_np:5.2f}x")
