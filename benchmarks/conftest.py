"""pytest-benchmark suite: fastbp (cython, numpy) vs scikit-learn (and torch).

    pytest benchmarks/ --benchmark-only            # full suite
    pytest benchmarks/ --benchmark-only --quick    # quick subset
    pytest benchmarks/ --benchmark-only -m quick   # the same

Every case runs one timed round (``benchmark.pedantic``): the workloads are
seconds long and the machine is shared, so compare the ratios of one run, not
absolute times. Each case stores what it measured in ``benchmark.extra_info``
(seconds per epoch, samples/s, GFLOP/s, ...) and in a session registry; the
terminal summary prints the ratios in the tables of ``python -m fastbp
bench`` (``fastbp._bench.report``), against the targets of
docs/performance.md (the suite reports, it never fails on a timing).

Quick mode (``--quick`` or a ``-m`` expression naming ``quick``) keeps only
the cases marked ``quick`` (float32, one or a few cases per topic, no torch)
and shrinks every data set; CI runs it so the suite cannot rot.
"""

from collections import defaultdict

import numpy as np
import pytest
from bench_utils import DTYPES, RESULTS, SIZES  # noqa: F401

from fastbp import _bench
from fastbp._bench import report


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
def _with_ratios(rows, key, same):
    """Copies of ``rows`` with speed-ups vs scikit-learn, the NumPy backend
    and PyTorch among the rows that agree on the ``same`` fields."""
    out = []
    for r in rows:
        peers = {x["backend"]: x[key] for x in rows if all(x.get(f) == r.get(f) for f in same)}
        out.append(dict(r, vs_sklearn=report.ratio(peers.get("sklearn"), r[key]),
                        vs_numpy=report.ratio(peers.get("numpy"), r[key]),
                        vs_torch=report.ratio(peers.get("torch"), r[key])))
    return out


VS = [("vs sklearn", "vs_sklearn", ".2f"), ("vs numpy", "vs_numpy", ".2f"),
      ("vs torch", "vs_torch", ".2f")]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section("fastbp benchmark report (targets are reported, not enforced)")

    def section(title, rows, columns, n_left=2):
        if rows:
            tr.write_line("")
            tr.write_line(title)
            for line in report.render_table(rows, columns, n_left=n_left).splitlines():
                tr.write_line(line)

    load = _bench.load_average()
    if load:
        tr.write_line("Load average at the end (1, 5, 15 min): "
                      + ", ".join(f"{v:.2f}" for v in load))
    peak = RESULTS.get("gemm_peak")
    peak = peak[0] if peak else {}
    if peak:
        tr.write_line("GEMM peak: " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in peak.items()))
    tr.write_line(_bench.FLOP_NOTE)

    w = RESULTS.get("workload", [])
    section("Workload W (targets: batch 32 <= 1.3x floor and >= 5x scikit-learn; "
            "batch >= 256 <= 1.15x floor; faster than torch):",
            sorted(_with_ratios(w, "s_per_epoch", ("dtype", "batch_size")),
                   key=lambda r: (r["dtype"], r["batch_size"])),
            [("case", "case", None), ("dtype", "dtype", None), ("backend", "backend", None),
             ("s/epoch", "s_per_epoch", ".4f"), ("% GEMM peak", "pct_peak", ".1f"),
             ("GEMM floor s", "floor_s", ".4f"), ("x floor", "x_floor", ".2f"), *VS], n_left=3)
    ctl = RESULTS.get("controls", [])
    base = {r["case"]: r["s_per_epoch"] for r in ctl if r["control"] == "defaults"}
    section("Training controls, compiled backend (targets: AdamW <= 3%, clipping <= 5%, "
            "each activation <= 10%, dropout=0.2 <= 15% over the defaults; one after the "
            "other here, interleaved in `python -m "
            "fastbp bench`):",
            [dict(r, target_pct=report.TARGET_CONTROL_OVERHEAD.get(r["control"]),
                  overhead_pct=(100 * (r["s_per_epoch"] / base[r["case"]] - 1)
                                if r["case"] in base else None)) for r in ctl],
            [("case", "case", None), ("setting", "setting", None),
             ("s/epoch", "s_per_epoch", ".4f"), ("overhead %", "overhead_pct", "+.1f"),
             ("target %", "target_pct", "g"), ("% GEMM peak", "pct_peak", ".1f")])
    busy = RESULTS.get("busy", [])
    section("Busy machine, as many busy-looping processes as cores (targets: fastbp <= 2.5x "
            "its idle time; >= 3x / 3x / 1.5x scikit-learn at batch 32 / 256 / 1024):",
            _with_ratios(busy, "seconds", ("batch_size",)),
            [("case", "case", None), ("backend", "backend", None),
             ("busy procs", "busy_procs", "d"), ("idle s", "idle_seconds", ".4f"),
             ("busy s", "seconds", ".4f"), ("busy/idle", "busy_over_idle", ".2f"),
             ("vs sklearn (busy)", "vs_sklearn", ".2f"),
             ("vs torch (busy)", "vs_torch", ".2f")])
    sc = RESULTS.get("scaling", [])
    if sc:
        groups = defaultdict(list)
        for r in sc:
            groups[(r["backend"], r["dtype"])].append((r["n"], r["s_per_epoch"]))
        rows = []
        for (b, dt), pts in sorted(groups.items()):
            pts.sort()
            rows.append({"backend": b, "dtype": dt,
                         "exponent": _bench.fitted_exponent([p[0] for p in pts],
                                                            [p[1] for p in pts]),
                         "n": ", ".join(f"{n:,}" for n, _ in pts)})
        section("Scaling in n (fitted exponent of s/epoch vs rows; 1 = linear):", rows,
                [("backend", "backend", None), ("dtype", "dtype", None),
                 ("exponent", "exponent", ".3f"), ("over n", "n", None)])
    section("Predict throughput:",
            _with_ratios(RESULTS.get("predict", []), "seconds", ("dtype", "method")),
            [("method", "method", None), ("dtype", "dtype", None), ("backend", "backend", None),
             ("samples/s", "samples_per_s", ",.0f"), *VS], n_left=3)
    section("Peak extra memory of fit beyond X (tracemalloc; target <= 25% of X):",
            [dict(r, peak_mib=r["peak_bytes"] / 2**20, x_mib=r["x_bytes"] / 2**20,
                  pct=100 * r["fraction_of_X"]) for r in RESULTS.get("memory", [])],
            [("backend", "backend", None), ("peak MiB", "peak_mib", ".1f"),
             ("X MiB", "x_mib", ".0f"), ("% of X", "pct", ".1f")], n_left=1)
    section("Threading, no BLAS thread setting (target >= 1.6x over serial):",
            RESULTS.get("threading", []),
            [("kind", "kind", None), ("backend", "backend", None),
             ("serial s", "serial_s", ".3f"), ("parallel s", "parallel_s", ".3f"),
             ("speed-up", "speedup", ".2f"), ("serial 1 BLAS thread s", "serial_1t_s", ".3f"),
             ("speed-up over it", "speedup_vs_1t", ".2f")])
    for topic in ("shapes", "sparse", "activations", "solvers"):
        section(f"{topic} (s/epoch or s/iteration):",
                _with_ratios(RESULTS.get(topic, []), "s_per_epoch", ("case", "dtype")),
                [("case", "case", None), ("dtype", "dtype", None), ("backend", "backend", None),
                 ("s/epoch", "s_per_epoch", ".4f"), ("GFLOP/s", "gflops", ".1f"), *VS],
                n_left=3)
