"""``python -m fastbp bench``: the command, and the order of its phases.

Phases, in one process: the GEMM peak; workload W at each batch size on an
idle machine, each case beside its GEMM floor; predict throughput; the cost
of the training controls (AdamW, gradient clipping) and network options
(activations other than relu, dropout) at batch 256; the same
training (and predict) cases while busy-looping processes run; the peak
memory of fit; two fits in two threads and GridSearchCV. The GEMM peak is
measured again between phases: a run whose peaks disagree judges nothing.
"""

import argparse
import contextlib
import datetime
import gc
import json
import os
import platform
import sys
import time

import numpy as np

from . import report as rep
from .busy import BusyLoad, n_cores
from .cases import (BACKEND_LABELS, BACKEND_ORDER, CONFIGS, CONTROLS, CONTROLS_BATCH, FLOP_NOTE,
                    W_CLASSES, control_skip_reason, make_classifier, make_dense, n_outputs_for, predict_flops,
                    predict_gemms, skip_reason, torch_available, train_flops, train_gemms,
                    weight_shapes)
from .measure import (blas_summary, cpu_flags, cpu_model, fit_peak_memory, gemm_floor, gemm_peak,
                      gridsearch_threads, interleaved_fits, load_average, time_call, time_fit,
                      two_fits_threads)
from .torch_ref import torch_version


class _Run:
    """The state of one run: configuration, data shapes, report, log."""

    def __init__(self, cfg, backends, dtype, busy, log):
        self.cfg, self.backends, self.dtype, self.busy, self.log = cfg, backends, dtype, busy, log
        self.shapes = weight_shapes(cfg["features"], cfg["hidden"], n_outputs_for(W_CLASSES))
        self.case = "W {}x{}-{}-{} {}".format(
            cfg["rows"], cfg["features"], "-".join(map(str, cfg["hidden"])), W_CLASSES,
            dtype.name)
        self.report = {"meta": {}, "gemm": {}, "flop_note": FLOP_NOTE, "results": [],
                       "busy": [], "predict": [], "controls": [], "memory": [], "threading": [],
                       "targets": [], "reliable": True, "unreliable_reasons": []}
        self.fitted = {}  # backend -> estimator fitted for the predict cases

    # ---- GEMM peak, sampled between phases
    def peak(self, where, dtypes=None):
        for dt in dtypes or (self.dtype,):
            name = np.dtype(dt).name
            g = gemm_peak(dt, self.cfg["gemm"], self.cfg["gemm_repeats"])
            entry = self.report["gemm"].setdefault(name, dict(g, samples=[], where=[]))
            entry["samples"].append(g["gflops"])
            entry["where"].append(where)
            entry["gflops"] = max(entry["samples"])
            self.log(f"# GEMM peak {name} ({where}): {g['gflops']:.1f} GFLOP/s (current threads: "
                     f"numpy {g['numpy_gflops']:.1f}, scipy {g['scipy_gflops']:.1f}; 1 thread: "
                     f"numpy {g['numpy_1t_gflops']:.1f}, scipy {g['scipy_1t_gflops']:.1f})")

    # ---- training
    def _fit_case(self, b, bs, epochs, X, y):
        n_warm = min(2 * bs, X.shape[0])  # imports, first-call costs, page faults
        time_fit(make_classifier(b, self.cfg["hidden"], batch_size=bs, max_iter=1),
                 X[:n_warm], y[:n_warm])
        est = make_classifier(b, self.cfg["hidden"], batch_size=bs, max_iter=epochs)
        return time_fit(est, X, y) / epochs

    def _floor(self, gemms):
        return gemm_floor(self.dtype, gemms, repeats=2 if self.cfg["epochs"] < 2 else 3)

    def train_idle(self, X, y):
        rows = self.cfg["rows"]
        flops = train_flops(rows, self.shapes)
        for bs in self.cfg["batches"]:
            floor = self._floor(train_gemms(rows, bs, self.shapes))
            self.log(f"# {self.case} batch={bs}: GEMM floor {floor['seconds']:.4f} s/epoch")
            for b in self.backends:
                spe = self._fit_case(b, bs, self.cfg["epochs"], X, y)
                r = {"case": f"{self.case} batch={bs}", "kind": "train",
                     "backend": BACKEND_LABELS[b], "backend_key": b, "batch_size": bs,
                     "dtype": self.dtype.name, "n_samples": rows, "epochs": self.cfg["epochs"],
                     "seconds": spe * self.cfg["epochs"], "s_per_epoch": spe,
                     "samples_per_s": rows / spe, "gflops": flops / spe / 1e9,
                     "floor": floor, "floor_s": _floor_for(b, floor),
                     "x_floor": spe / _floor_for(b, floor)}
                self.report["results"].append(r)
                self.log(f"#   {r['case']:<40} {r['backend']:<30} {spe:9.4f} s/epoch")
            self.peak(f"after batch {bs}")
        _compare(self.report["results"], "s_per_epoch", ("batch_size",))

    def predict_idle(self, Xp, yp):
        n = self.cfg["predict_rows"]
        floor = self._floor(predict_gemms(n, self.shapes))
        self.log(f"# predict / predict_proba on {n} rows: GEMM floor {floor['seconds']:.4f} s")
        for b in self.backends:
            est = make_classifier(b, self.cfg["hidden"], batch_size=256, max_iter=1)
            time_fit(est, Xp[:min(2_000, n)], yp[:min(2_000, n)])
            self.fitted[b] = est
            for method in ("predict", "predict_proba"):
                fn = getattr(est, method)
                time_call(fn, Xp[:256])  # warm-up
                secs = min(time_call(fn, Xp)[0] for _ in range(2))
                self.report["predict"].append(self._predict_row(b, method, secs, floor))
        _compare(self.report["predict"], "seconds", ("method",))

    def _predict_row(self, b, method, secs, floor):
        n = self.cfg["predict_rows"]
        return {"case": f"{method} {n} rows", "kind": "predict", "backend": BACKEND_LABELS[b],
                "backend_key": b, "method": method, "seconds": secs,
                "samples_per_s": n / secs,
                "gflops": predict_flops(n, self.shapes) / secs / 1e9,
                "floor": floor, "floor_s": _floor_for(b, floor),
                "x_floor": secs / _floor_for(b, floor)}

    # ---- the training controls
    def controls(self, X, y):
        """Workload W at batch 256 on the compiled backend with the defaults
        and each row of ``CONTROLS`` (AdamW, clipping, both, the activations
        other than relu, dropout), interleaved round by round; each overhead
        is the median over the rounds of the case's time over the defaults'
        time in the same round. A row this build cannot fit (e.g. an
        activation it lacks) is reported as skipped, with the reason."""
        b, bs, epochs = "cython", CONTROLS_BATCH, self.cfg["controls_epochs"]
        if b not in self.backends:
            self.log(f"# training controls: skipped ({BACKEND_LABELS[b]} not in this run)")
            return
        rounds = self.cfg["controls_rounds"]
        skipped = {key: why for key, _, params in CONTROLS
                   if (why := control_skip_reason(params)) is not None}
        cases = [c for c in CONTROLS if c[0] not in skipped]
        self.log(f"# training controls, {self.case} batch={bs}, {BACKEND_LABELS[b]}: "
                 f"{len(cases)} cases interleaved, {rounds} rounds")
        for key, why in skipped.items():
            self.log(f"#   {key}: skipped ({why})")

        def maker(params, max_iter):
            return lambda: make_classifier(b, self.cfg["hidden"], batch_size=bs,
                                           max_iter=max_iter, **params)

        for _, _, params in cases:  # an untimed round: first-call costs, page faults
            time_fit(maker(params, 1)(), X, y)
        seconds, fitted = interleaved_fits(
            {key: maker(params, epochs) for key, _, params in cases}, X, y, rounds)
        rows = self.cfg["rows"]
        flops = train_flops(rows, self.shapes)
        base = [t / epochs for t in seconds["defaults"]]
        applied_keys = sorted({k for _, _, params in CONTROLS for k in params}
                              | {"solver", "batch_size", "backend"})
        for key, label, params in CONTROLS:
            if key in skipped:
                self.report["controls"].append(
                    {"case": f"{self.case} batch={bs}", "kind": "controls", "control": key,
                     "setting": label, "params": params, "skipped": skipped[key],
                     "backend": BACKEND_LABELS[b], "backend_key": b, "batch_size": bs,
                     "rounds": rounds, "target_pct": rep.TARGET_CONTROL_OVERHEAD.get(key),
                     "judge": bool(self.cfg["controls_judge"])})
                continue
            spe = [t / epochs for t in seconds[key]]
            got = fitted[key].get_params()
            r = {"case": f"{self.case} batch={bs}", "kind": "controls", "control": key,
                 "setting": label, "params": params,
                 "applied": {k: got[k] for k in applied_keys},
                 "backend": BACKEND_LABELS[b], "backend_key": b, "batch_size": bs,
                 "dtype": self.dtype.name, "n_samples": rows, "epochs": epochs,
                 "rounds": rounds, "samples": spe, "s_per_epoch": float(np.median(spe)),
                 "spread_pct": 100.0 * (max(spe) / min(spe) - 1.0),
                 "overhead_pct": 100.0 * (float(np.median(np.divide(spe, base))) - 1.0),
                 "target_pct": rep.TARGET_CONTROL_OVERHEAD.get(key),
                 "judge": bool(self.cfg["controls_judge"])}
            r["gflops"] = flops / r["s_per_epoch"] / 1e9
            self.report["controls"].append(r)
            self.log(f"#   {label:<30} {r['s_per_epoch']:9.4f} s/epoch "
                     f"{r['overhead_pct']:+6.1f}% over the defaults")
        self.peak("after training controls")

    # ---- the busy machine
    def busy_phase(self, X, y, Xp):
        idle = {(r["backend_key"], r["batch_size"]): r["s_per_epoch"]
                for r in self.report["results"]}
        idle_p = {r["backend_key"]: r["seconds"] for r in self.report["predict"]
                  if r["method"] == "predict"}
        rows = self.cfg["rows"]
        flops = train_flops(rows, self.shapes)
        for n_busy in self.busy:
            self.log(f"# {n_busy} busy-looping process(es) start")
            out = []
            with BusyLoad(n_busy) as load:
                self.log(f"#   busy pids: {', '.join(map(str, load.pids))}")
                for bs in self.cfg["busy_batches"]:
                    floor = self._floor(train_gemms(rows, bs, self.shapes))
                    for b in self.backends:
                        spe = self._fit_case(b, bs, self.cfg["busy_epochs"], X, y)
                        r = {"case": f"{self.case} batch={bs}", "kind": "train",
                             "busy_procs": n_busy, "backend": BACKEND_LABELS[b],
                             "backend_key": b, "batch_size": bs, "seconds": spe,
                             "s_per_epoch": spe, "idle_seconds": idle.get((b, bs)),
                             "gflops": flops / spe / 1e9, "floor": floor,
                             "floor_s": _floor_for(b, floor),
                             "x_floor": spe / _floor_for(b, floor)}
                        r["busy_over_idle"] = rep.ratio(spe, r["idle_seconds"])
                        out.append(r)
                        self.log(f"#   busy {r['case']:<35} {r['backend']:<30} "
                                 f"{spe:9.4f} s/epoch")
                if self.cfg["busy_predict"] and self.fitted:
                    n = self.cfg["predict_rows"]
                    floor = self._floor(predict_gemms(n, self.shapes))
                    for b, est in self.fitted.items():
                        secs = min(time_call(est.predict, Xp)[0] for _ in range(2))
                        r = dict(self._predict_row(b, "predict", secs, floor),
                                 busy_procs=n_busy, batch_size=None,
                                 idle_seconds=idle_p.get(b))
                        r["busy_over_idle"] = rep.ratio(secs, r["idle_seconds"])
                        out.append(r)
                        self.log(f"#   busy {r['case']:<35} {r['backend']:<30} {secs:9.4f} s")
            self.log(f"# {n_busy} busy-looping process(es) stopped")
            _compare(out, "seconds", ("kind", "batch_size"))
            self.report["busy"].extend(out)
            self.peak(f"after {n_busy} busy")

    # ---- memory and threads
    def memory(self):
        n = self.cfg["memory_rows"]
        Xm, ym = make_dense(n, self.cfg["features"], W_CLASSES, np.float32, seed=3)
        self.log(f"# peak extra memory of fit on {n} rows")
        for b in self.backends:
            if b.endswith("-1t") or skip_reason(b, memory=True):
                continue
            est = make_classifier(b, self.cfg["hidden"], batch_size=256, max_iter=1)
            peak_bytes, secs = fit_peak_memory(est, Xm, ym)
            self.report["memory"].append({
                "case": f"fit {n}x{self.cfg['features']} float32",
                "backend": BACKEND_LABELS[b], "backend_key": b, "peak_bytes": peak_bytes,
                "x_bytes": Xm.nbytes, "fraction_of_X": peak_bytes / Xm.nbytes,
                "seconds": secs})

    def threading(self):
        cfg = self.cfg
        Xt, yt = make_dense(cfg["thread_rows"], cfg["features"], W_CLASSES, self.dtype, seed=4)
        self.log("# threading: two fits in two threads; GridSearchCV(n_jobs=2, threading); no BLAS thread setting")
        own = [b for b in self.backends if not b.endswith("-1t") and b != "torch"]

        def maker(b):
            return lambda: make_classifier(b, cfg["hidden"], batch_size=256, max_iter=1)

        def row(case, kind, b, serial, serial_1t, parallel):
            return {"case": case, "backend": BACKEND_LABELS[b], "backend_key": b,
                    "kind": kind, "serial_s": serial, "serial_1t_s": serial_1t,
                    "parallel_s": parallel, "speedup": serial / parallel,
                    "speedup_vs_1t": serial_1t / parallel}

        for b in own:
            self.report["threading"].append(row(
                f"2 fits, 2 threads ({cfg['thread_rows']} rows)", "two_fits", b,
                *two_fits_threads(maker(b), Xt, yt)))
        Xg, yg = Xt[: cfg["grid_rows"]], yt[: cfg["grid_rows"]]
        for b in own:
            self.report["threading"].append(row(
                f"GridSearchCV 2x2 folds ({cfg['grid_rows']} rows)", "gridsearch", b,
                *gridsearch_threads(maker(b), Xg, yg, {"alpha": [1e-4, 1e-3]})))

    def finish(self):
        best = self.report["gemm"][self.dtype.name]["gflops"]
        for topic in ("results", "predict", "busy", "controls"):
            for r in self.report[topic]:
                if r.get("skipped"):  # a controls row this build cannot fit
                    continue
                r["pct_peak"] = 100.0 * r["gflops"] / best
        reliable, reasons = rep.reliability(self.report)
        self.report["reliable"], self.report["unreliable_reasons"] = reliable, reasons


def _floor_for(backend, floor):
    """The floor a backend's fit is held to: one BLAS thread for the rows run
    inside ``threadpool_limits(1)``, else the faster of the two settings."""
    return floor["seconds_1t"] if backend.endswith("-1t") else floor["seconds"]


def _compare(rows, key, same):
    """Add speed-ups vs scikit-learn, fastbp-numpy and PyTorch within the rows
    that agree on the ``same`` fields."""
    for r in rows:
        peers = {x["backend_key"]: x[key] for x in rows
                 if all(x.get(f) == r.get(f) for f in same)}
        for other, name in (("sklearn", "sklearn"), ("numpy", "numpy"), ("torch", "torch")):
            r[f"speedup_vs_{name}"] = rep.ratio(peers.get(other), r[key])


def run(cfg, backends, dtype=np.float32, busy=(), log=print):
    """Run every phase; return the JSON-able report (without its meta)."""
    r = _Run(cfg, backends, np.dtype(dtype), tuple(n for n in busy if n > 0), log)
    log(f"# GEMM peak (best of numpy.matmul and scipy BLAS, {cfg['gemm']}^3, "
        "1 BLAS thread and current threads)")
    r.peak("start", (np.float32, np.float64))
    X, y = make_dense(cfg["rows"], cfg["features"], W_CLASSES, r.dtype)
    r.train_idle(X, y)
    Xp, yp = make_dense(cfg["predict_rows"], cfg["features"], W_CLASSES, r.dtype, seed=2)
    r.predict_idle(Xp, yp)
    r.controls(X, y)
    r.peak("before busy")
    if r.busy:
        r.busy_phase(X, y, Xp)
    del X, y, Xp, yp
    r.fitted.clear()
    gc.collect()
    r.memory()
    r.threading()
    r.peak("end")
    r.finish()
    return r.report


def _meta(mode, threads, busy):
    import scipy
    import sklearn

    from .. import __version__

    meta = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "fastbp": __version__, "mode": mode, "python": platform.python_version(),
        "numpy": np.__version__, "scipy": scipy.__version__, "sklearn": sklearn.__version__,
        "cpu": cpu_model(), "cores": os.cpu_count(), "usable_cores": n_cores(),
        "cpu_flags": cpu_flags(), "platform": platform.platform(), "blas": blas_summary(),
        "threads": threads, "busy": list(busy), "load_start": load_average(),
    }
    meta.update(torch_version())
    return meta


def _busy_list(text):
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or N,N,... (integers), got {text!r}")
    if not out or any(n < 0 for n in out):
        raise argparse.ArgumentTypeError(f"expected integers >= 0, got {text!r}")
    return out


def _backends(requested):
    out = []
    for b in requested:
        reason = skip_reason(b)
        if reason is None:
            out.append(b)
        else:
            print(f"# skipping backend {b}: {reason}")
    return out


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m fastbp bench",
        description="Benchmark fastbp's backends against scikit-learn (and PyTorch when "
                    "installed) on workload W (docs/performance.md), on an idle machine and "
                    "with busy-looping processes beside it.")
    parser.add_argument("--quick", action="store_true",
                        help="small data (2k rows, 1 epoch, one busy case)")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--busy", type=_busy_list, default=None, metavar="N[,N...]",
                        help="busy-looping processes beside the busy cases (default: the "
                             f"number of cores, here {n_cores()}; 0: no busy cases; "
                             "1,2: both in one run)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--plot", metavar="PATH",
                        help="plot seconds/epoch vs batch size (needs matplotlib)")
    parser.add_argument("--backends", default=",".join(BACKEND_ORDER),
                        help="comma-separated subset of %(default)s")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--threads", type=int, default=None,
                        help="limit BLAS threads for the whole run (default: as is)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per timed idle fit (default 2; 1 with --quick)")
    parser.add_argument("--rows", type=int, default=None,
                        help="rows of workload W (default 20000)")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    mode = "tiny" if (args.tiny or os.environ.get("FASTBP_BENCH_TINY") == "1") else (
        "quick" if args.quick else "full")
    cfg = dict(CONFIGS[mode])
    if args.epochs:
        cfg["epochs"] = args.epochs
    if args.rows:
        cfg["rows"] = args.rows
    busy = args.busy if args.busy is not None else [n_cores()]
    requested = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(requested) - set(BACKEND_ORDER)
    if unknown:
        parser.error(f"unknown backends {sorted(unknown)}; choose from {BACKEND_ORDER}")

    limiter = contextlib.nullcontext()
    if args.threads:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=args.threads, user_api="blas")
    try:
        with limiter:
            if "torch" in requested and torch_available():
                import torch

                torch.set_num_threads(args.threads or os.cpu_count() or 1)
            meta = _meta(mode, args.threads, busy)
            print(rep.format_header(meta), flush=True)
            backends = _backends(requested)
            t0 = time.perf_counter()
            report = run(cfg, backends, np.dtype(args.dtype), busy,
                         log=lambda s: print(s, flush=True))
            meta["wall_seconds"] = time.perf_counter() - t0
            meta["load_end"] = load_average()
            report["meta"] = meta
            report["targets"] = rep.targets(report, n_cores())
    except KeyboardInterrupt:
        print("\nfastbp bench: interrupted (busy processes stopped)", file=sys.stderr)
        return 130
    print()
    print(rep.format_report(report, header=False))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2, default=float)
        print(f"\nwrote {args.json}")
    if args.plot and rep.plot(report, args.plot):
        print(f"wrote {args.plot}")
    return 0
