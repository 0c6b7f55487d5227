"""``python -m fastbp bench``: the headline benchmarks in one process.

Also the toolbox of the pytest-benchmark suite in ``benchmarks/`` (data,
estimators per backend, FLOP counts, GEMM peak, memory and threading
measurements), so that the suite and the command time identical work.

Backends compared: fastbp's compiled backend (``cython``), fastbp's NumPy
backend (``numpy``), scikit-learn's MLPClassifier (``sklearn``) and, when
importable, an equivalent PyTorch CPU loop (``torch``). Every estimator does
the same work: same layer sizes, activation, solver and hyper-parameters,
minibatches of the same size over a reshuffled epoch, a fixed number of
epochs (``tol=0`` and ``n_iter_no_change`` huge so nothing stops early).

FLOPs are counted honestly, per sample and per epoch, with P the number of
weights (biases and elementwise work not counted):

* forward ``2P``; weight gradients ``2P``; delta propagation ``2P`` minus the
  first layer (no delta is propagated into the input);
* sparse input: the first layer's products count ``2 * nnz * units`` instead;
* predict: ``2P`` per sample.
"""

import argparse
import contextlib
import datetime
import gc
import json
import math
import os
import platform
import sys
import threading
import time
import tracemalloc
import warnings

import numpy as np
import scipy.sparse as sp

FLOP_NOTE = (
    "FLOPs counted per sample as forward 2P + weight gradients 2P + delta "
    "propagation 2P minus the first layer (P = number of weights; biases and "
    "elementwise work not counted); sparse first layer: 2*nnz*units per product; "
    "predict: 2P."
)

BACKEND_ORDER = ("cython", "cython-1t", "numpy", "sklearn", "sklearn-1t", "torch")
BACKEND_LABELS = {
    "cython": "fastbp-cython",
    "cython-1t": "fastbp-cython (1 BLAS thread)",
    "numpy": "fastbp-numpy",
    "sklearn": "scikit-learn",
    "sklearn-1t": "scikit-learn (1 BLAS thread)",
    "torch": "pytorch-cpu",
}

# Workload W of DESIGN.md.
W_ROWS, W_FEATURES, W_HIDDEN, W_CLASSES = 20_000, 784, (256,), 10
W_BATCHES = (32, 256, 1024)

# Targets the benchmarks report against (DESIGN.md, issue #4).
TARGET_SPEEDUP = {32: 5.0, 256: 2.5, 1024: 2.0}
TARGET_PCT_PEAK = 75.0
TARGET_MEMORY_FRACTION = 0.25
TARGET_PREDICT_SPEEDUP = 2.0
TARGET_THREADS_SPEEDUP = 1.6


# --------------------------------------------------------------- backends
def torch_available():
    """Whether torch is installed (found, not imported: importing it is slow)."""
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def skip_reason(backend, *, activation="relu", solver="adam", sparse_input=False,
                memory=False):
    """Why ``backend`` cannot run a case, or None when it can."""
    if backend in ("cython", "cython-1t"):
        from .backends import cython_available

        if not cython_available():
            return "fastbp's compiled backend is not built"
        return None
    if backend == "numpy":
        return None
    if backend in ("sklearn", "sklearn-1t"):
        if activation in ("softplus", "maxout"):
            return f"scikit-learn has no {activation} activation"
        return None
    if backend == "torch":
        if not torch_available():
            return "torch is not importable"
        if activation == "maxout":
            return "no maxout in the torch comparison loop"
        if solver == "lbfgs":
            return "torch's LBFGS is not scikit-learn's L-BFGS-B"
        if sparse_input:
            return "sparse input not in the torch comparison loop"
        if memory:
            return "torch's allocations are invisible to tracemalloc"
        return None
    return f"unknown backend {backend!r}"


def make_classifier(backend, hidden=(256,), *, activation="relu", solver="adam",
                    batch_size=256, max_iter=1, alpha=1e-4, learning_rate_init=1e-3,
                    momentum=0.9, nesterovs_momentum=True, maxout_pieces=2,
                    random_state=0):
    """A classifier doing a fixed number of epochs (no early stop) on ``backend``."""
    kw = dict(
        hidden_layer_sizes=tuple(hidden), activation=activation, solver=solver,
        batch_size=batch_size, max_iter=max_iter, alpha=alpha,
        learning_rate_init=learning_rate_init, momentum=momentum,
        nesterovs_momentum=nesterovs_momentum, random_state=random_state,
        tol=0.0, n_iter_no_change=10**9, shuffle=True,
    )
    if solver == "lbfgs":
        kw["max_fun"] = 10**9
    if backend in ("cython", "cython-1t", "numpy"):
        from .estimators import BPClassifier

        est = BPClassifier(backend=backend.split("-")[0], maxout_pieces=maxout_pieces, **kw)
        return _OneThread(est) if backend == "cython-1t" else est
    if backend in ("sklearn", "sklearn-1t"):
        from sklearn.neural_network import MLPClassifier

        est = MLPClassifier(**kw)
        return _OneThread(est) if backend == "sklearn-1t" else est
    if backend == "torch":
        return TorchClassifier(**kw)
    raise ValueError(f"unknown backend {backend!r}")


class _OneThread:
    """Runs an estimator's fit / predict with BLAS limited to one thread."""

    def __init__(self, est):
        self.est = est

    def __getattr__(self, name):
        attr = getattr(self.est, name)
        if name in ("fit", "partial_fit", "predict", "predict_proba"):
            def run(*a, **k):
                from threadpoolctl import threadpool_limits

                with threadpool_limits(limits=1, user_api="blas"):
                    out = attr(*a, **k)
                return self if out is self.est else out
            return run
        return attr


class TorchClassifier:
    """The same minibatch loop in PyTorch (CPU): Linear layers, softmax
    cross-entropy, sklearn's L2 term (``alpha / batch`` weight decay on the
    weights only), Adam or SGD with (Nesterov) momentum, a reshuffle per
    epoch. Only for the speed comparison."""

    _ACT = {"relu": "ReLU", "tanh": "Tanh", "logistic": "Sigmoid",
            "softplus": "Softplus", "identity": "Identity"}

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", solver="adam",
                 batch_size=200, max_iter=1, alpha=1e-4, learning_rate_init=1e-3,
                 momentum=0.9, nesterovs_momentum=True, random_state=0, **ignored):
        self.hidden_layer_sizes = tuple(hidden_layer_sizes)
        self.activation = activation
        self.solver = solver
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.alpha = alpha
        self.learning_rate_init = learning_rate_init
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.random_state = random_state

    def fit(self, X, y):
        import torch

        torch.manual_seed(self.random_state)
        X = np.ascontiguousarray(X)
        self.classes_, yi = np.unique(y, return_inverse=True)
        Xt = torch.from_numpy(X)
        yt = torch.from_numpy(yi.astype(np.int64))
        dtype = Xt.dtype
        sizes = [X.shape[1], *self.hidden_layer_sizes, len(self.classes_)]
        layers = []
        for i in range(len(sizes) - 1):
            layers.append(torch.nn.Linear(sizes[i], sizes[i + 1], dtype=dtype))
            if i < len(sizes) - 2:
                layers.append(getattr(torch.nn, self._ACT[self.activation])())
        self.model_ = model = torch.nn.Sequential(*layers)
        n = X.shape[0]
        bs = min(self.batch_size, n)
        weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
        biases = [p for name, p in model.named_parameters() if name.endswith("bias")]
        groups = [{"params": weights, "weight_decay": self.alpha / bs},
                  {"params": biases, "weight_decay": 0.0}]
        if self.solver == "adam":
            opt = torch.optim.Adam(groups, lr=self.learning_rate_init, eps=1e-8)
        else:
            opt = torch.optim.SGD(groups, lr=self.learning_rate_init,
                                  momentum=self.momentum,
                                  nesterov=self.nesterovs_momentum)
        loss_fn = torch.nn.CrossEntropyLoss()
        rng = np.random.default_rng(self.random_state)
        for _ in range(self.max_iter):
            order = torch.from_numpy(rng.permutation(n))
            for start in range(0, n, bs):
                idx = order[start:start + bs]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(Xt.index_select(0, idx)), yt.index_select(0, idx))
                loss.backward()
                opt.step()
        self.n_iter_ = self.max_iter
        return self

    def predict_proba(self, X):
        import torch

        with torch.no_grad():
            H = self.model_(torch.from_numpy(np.ascontiguousarray(X)))
            return torch.softmax(H, dim=1).numpy()

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


# ------------------------------------------------------------------- data
def make_dense(n, m=W_FEATURES, n_classes=W_CLASSES, dtype=np.float32, seed=0):
    """Uniform [0, 1) features (MNIST-like scale) and random labels."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, m), dtype=np.float64 if dtype == np.float64 else np.float32)
    y = rng.integers(0, n_classes, n)
    return X, y


def make_sparse(n, m, density, n_classes=W_CLASSES, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.csr_matrix(sp.random_array((n, m), density=density, format="csr",
                                      dtype=dtype, rng=rng))
    X.sort_indices()
    y = rng.integers(0, n_classes, n)
    return X, y


# ------------------------------------------------------------------ FLOPs
def weight_shapes(n_features, hidden, n_outputs, activation="relu", maxout_pieces=2):
    k = maxout_pieces if activation == "maxout" else 1
    fan_in = [n_features, *hidden]
    fan_out = [h * k for h in hidden] + [n_outputs]
    return list(zip(fan_in, fan_out))


def train_flops(n_samples, shapes, nnz=None):
    """FLOPs of one epoch over ``n_samples`` rows (see FLOP_NOTE); ``nnz``:
    stored entries of a sparse X (the epoch's rows)."""
    P = sum(a * b for a, b in shapes)
    P1 = shapes[0][0] * shapes[0][1]
    per_sample_rest = 6 * (P - P1)  # forward + weight grad + delta propagation
    if nnz is None:
        first = 4 * P1 * n_samples  # forward + weight gradient
    else:
        first = 4 * nnz * shapes[0][1]
    return per_sample_rest * n_samples + first


def predict_flops(n_samples, shapes):
    return 2 * sum(a * b for a, b in shapes) * n_samples


def n_outputs_for(n_classes):
    return 1 if n_classes == 2 else n_classes


# ------------------------------------------------------------ environment
def blas_summary():
    """[(library, version, threads, path)] of the BLAS/OpenMP pools."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [
        {
            "user_api": d.get("user_api"),
            "internal_api": d.get("internal_api"),
            "version": d.get("version"),
            "num_threads": d.get("num_threads"),
            "architecture": d.get("architecture"),
            "threading_layer": d.get("threading_layer"),
            "filepath": os.path.basename(d.get("filepath", "")),
        }
        for d in threadpool_info()
    ]


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [f for f in ("avx512f", "avx2", "fma", "avx") if f in flags]
    except OSError:
        pass
    return []


def _gemm_best(dtype, size, repeats):
    from scipy.linalg import blas

    rng = np.random.default_rng(1)
    A = rng.random((size, size)).astype(dtype)
    B = rng.random((size, size)).astype(dtype)
    C = np.empty((size, size), dtype=dtype)
    gemm = blas.sgemm if np.dtype(dtype) == np.float32 else blas.dgemm
    Af, Bf = np.asfortranarray(A), np.asfortranarray(B)
    flops = 2.0 * size**3
    best = {"numpy": math.inf, "scipy": math.inf}
    np.matmul(A, B, out=C)
    gemm(1.0, Af, Bf)
    for _ in range(repeats):
        t = time.perf_counter()
        np.matmul(A, B, out=C)
        best["numpy"] = min(best["numpy"], time.perf_counter() - t)
        t = time.perf_counter()
        gemm(1.0, Af, Bf)
        best["scipy"] = min(best["scipy"], time.perf_counter() - t)
    return {k: flops / v / 1e9 for k, v in best.items()}


def gemm_peak(dtype, size=1024, repeats=5):
    """The machine's measured GEMM throughput for ``dtype``: the best GFLOP/s
    of a ``size``-cubed product over NumPy's matmul and SciPy's BLAS (the
    compiled backend links SciPy's), with one BLAS thread and with the
    current thread count (on a busy machine one thread can be faster)."""
    from threadpoolctl import threadpool_limits

    out = {"size": size}
    with threadpool_limits(limits=1, user_api="blas"):
        g1 = _gemm_best(dtype, size, repeats)
    gn = _gemm_best(dtype, size, repeats)
    out.update({"numpy_1t_gflops": g1["numpy"], "scipy_1t_gflops": g1["scipy"],
                "numpy_gflops": gn["numpy"], "scipy_gflops": gn["scipy"]})
    out["gflops"] = max(v for k, v in out.items() if k.endswith("gflops"))
    return out


# ---------------------------------------------------------------- timing
@contextlib.contextmanager
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def no_gc():
    """The cyclic garbage collector off while timing (as timeit does)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def time_fit(est, X, y):
    """Wall seconds of ``est.fit(X, y)`` (warnings silenced, no cyclic GC)."""
    with quiet(), no_gc():
        t = time.perf_counter()
        est.fit(X, y)
        return time.perf_counter() - t


def time_call(fn, *args):
    with quiet(), no_gc():
        t = time.perf_counter()
        out = fn(*args)
        return time.perf_counter() - t, out


def fit_peak_memory(est, X, y):
    """Peak bytes traced by tracemalloc during ``est.fit(X, y)``, X and y
    allocated before (so not counted), and the fit's seconds."""
    was = tracemalloc.is_tracing()
    if not was:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    with quiet():
        t = time.perf_counter()
        est.fit(X, y)
        dt = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1] - base
    if not was:
        tracemalloc.stop()
    return max(peak, 0), dt


def two_fits_threads(make, X, y):
    """(serial seconds, threaded seconds) of two fits, BLAS at one thread."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), quiet():
        a, b = make(), make()
        a.fit(X[:64], y[:64])  # warm-up imports and caches
        t = time.perf_counter()
        a.fit(X, y)
        b.fit(X, y)
        serial = time.perf_counter() - t
        errors = []

        def run(est):
            try:
                est.fit(X, y)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(est,)) for est in (make(), make())]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        threaded = time.perf_counter() - t
        if errors:
            raise errors[0]
    return serial, threaded


def gridsearch_threads(make, X, y, param_grid, cv=2):
    """(n_jobs=1 seconds, n_jobs=2 threading seconds) of a GridSearchCV, BLAS
    at one thread."""
    from joblib import parallel_config
    from sklearn.model_selection import GridSearchCV
    from threadpoolctl import threadpool_limits

    out = []
    with threadpool_limits(limits=1, user_api="blas"), quiet():
        for n_jobs in (1, 2):
            gs = GridSearchCV(make(), param_grid, cv=cv, n_jobs=n_jobs, refit=False)
            with parallel_config(backend="threading"):
                t = time.perf_counter()
                gs.fit(X, y)
                out.append(time.perf_counter() - t)
    return tuple(out)


def fitted_exponent(ns, ts):
    """Least-squares slope of log(t) on log(n)."""
    ns, ts = np.log(np.asarray(ns, float)), np.log(np.asarray(ts, float))
    if len(ns) < 2:
        return float("nan")
    return float(np.polyfit(ns, ts, 1)[0])


# ------------------------------------------------------------ the command
CONFIGS = {
    # rows of W, features, hidden, epochs, batch sizes, predict rows,
    # memory rows, threading rows, grid rows, gemm size
    "full": dict(rows=W_ROWS, features=W_FEATURES, hidden=W_HIDDEN, epochs=2,
                 batches=W_BATCHES, predict_rows=100_000, memory_rows=100_000,
                 thread_rows=10_000, grid_rows=4_000, gemm=1536, gemm_repeats=5),
    "quick": dict(rows=2_048, features=W_FEATURES, hidden=W_HIDDEN, epochs=1,
                  batches=W_BATCHES, predict_rows=20_000, memory_rows=10_000,
                  thread_rows=2_000, grid_rows=1_000, gemm=768, gemm_repeats=3),
    "tiny": dict(rows=512, features=64, hidden=(32,), epochs=1,
                 batches=(32, 256), predict_rows=2_000, memory_rows=1_000,
                 thread_rows=256, grid_rows=200, gemm=128, gemm_repeats=2),
}


def _fmt(x, spec):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return format(x, spec)


def _table(rows, columns):
    """Plain fixed-width table: columns = [(header, key, format)]."""
    cells = [[h for h, _, _ in columns]]
    for r in rows:
        cells.append([_fmt(r.get(k), f) if f else str(r.get(k, "")) for _, k, f in columns])
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    lines = []
    for j, c in enumerate(cells):
        lines.append("  ".join(s.ljust(w) if i < 2 else s.rjust(w)
                               for i, (s, w) in enumerate(zip(c, widths))))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _backends(requested):
    out = []
    for b in requested:
        reason = skip_reason(b)
        if reason is None:
            out.append(b)
        else:
            print(f"# skipping backend {b}: {reason}")
    return out


def run(cfg, backends, dtype=np.float32, log=print):
    """Run the headline cases; return the JSON-able report."""
    dtype = np.dtype(dtype)
    report = {"meta": {}, "gemm": {}, "flop_note": FLOP_NOTE, "results": [],
              "predict": [], "memory": [], "threading": [], "targets": []}

    log("# GEMM peak (best of numpy.matmul and scipy BLAS, "
        f"{cfg['gemm']}^3, 1 BLAS thread and current threads)")
    for dt in (np.float32, np.float64):
        g = gemm_peak(dt, cfg["gemm"], cfg["gemm_repeats"])
        report["gemm"][np.dtype(dt).name] = g
        log(f"#   {np.dtype(dt).name}: {g['gflops']:.1f} GFLOP/s (current threads: numpy "
            f"{g['numpy_gflops']:.1f}, scipy {g['scipy_gflops']:.1f}; 1 thread: numpy "
            f"{g['numpy_1t_gflops']:.1f}, scipy {g['scipy_1t_gflops']:.1f})")
    peak = report["gemm"][dtype.name]["gflops"]

    # ---- workload W at each batch size
    X, y = make_dense(cfg["rows"], cfg["features"], W_CLASSES, dtype)
    shapes = weight_shapes(cfg["features"], cfg["hidden"], n_outputs_for(W_CLASSES))
    flops_epoch = train_flops(cfg["rows"], shapes)
    case_name = "W {}x{}-{}-{} {}".format(
        cfg["rows"], cfg["features"], "-".join(map(str, cfg["hidden"])), W_CLASSES,
        dtype.name)
    results = []
    for bs in cfg["batches"]:
        for b in backends:
            # warm-up: imports, first-call initialisation, page faults
            n_warm = min(2 * bs, cfg["rows"])
            time_fit(make_classifier(b, cfg["hidden"], batch_size=bs, max_iter=1),
                     X[:n_warm], y[:n_warm])
            est = make_classifier(b, cfg["hidden"], batch_size=bs, max_iter=cfg["epochs"])
            secs = time_fit(est, X, y)
            spe = secs / cfg["epochs"]
            r = {"case": f"{case_name} batch={bs}", "backend": BACKEND_LABELS[b],
                 "backend_key": b, "batch_size": bs, "dtype": dtype.name,
                 "n_samples": cfg["rows"], "epochs": cfg["epochs"], "seconds": secs,
                 "s_per_epoch": spe, "samples_per_s": cfg["rows"] / spe,
                 "gflops": flops_epoch / spe / 1e9}
            r["pct_peak"] = 100.0 * r["gflops"] / peak
            results.append(r)
            log(f"#   {r['case']:<40} {r['backend']:<30} {spe:9.4f} s/epoch")
    for r in results:
        same = {x["backend_key"]: x["s_per_epoch"] for x in results
                if x["batch_size"] == r["batch_size"]}
        r["speedup_vs_sklearn"] = same["sklearn"] / r["s_per_epoch"] if "sklearn" in same else None
        r["speedup_vs_numpy"] = same["numpy"] / r["s_per_epoch"] if "numpy" in same else None
    report["results"] = results
    del X, y
    gc.collect()

    # ---- predict / predict_proba throughput
    Xp, yp = make_dense(cfg["predict_rows"], cfg["features"], W_CLASSES, dtype, seed=2)
    fit_rows = min(2_000, cfg["predict_rows"])
    pflops = predict_flops(cfg["predict_rows"], shapes)
    log(f"# predict / predict_proba on {cfg['predict_rows']} rows")
    for b in backends:
        est = make_classifier(b, cfg["hidden"], batch_size=256, max_iter=1)
        time_fit(est, Xp[:fit_rows], yp[:fit_rows])
        for method in ("predict", "predict_proba"):
            fn = getattr(est, method)
            time_call(fn, Xp[:256])  # warm-up
            secs = min(time_call(fn, Xp)[0] for _ in range(2))
            report["predict"].append({
                "case": f"{method} {cfg['predict_rows']} rows", "backend": BACKEND_LABELS[b],
                "backend_key": b, "method": method, "seconds": secs,
                "samples_per_s": cfg["predict_rows"] / secs,
                "gflops": pflops / secs / 1e9, "pct_peak": 100 * pflops / secs / 1e9 / peak})
    for r in report["predict"]:
        sk = [x for x in report["predict"] if x["backend_key"] == "sklearn"
              and x["method"] == r["method"]]
        r["speedup_vs_sklearn"] = sk[0]["seconds"] / r["seconds"] if sk else None
        nu = [x for x in report["predict"] if x["backend_key"] == "numpy"
              and x["method"] == r["method"]]
        r["speedup_vs_numpy"] = nu[0]["seconds"] / r["seconds"] if nu else None
    del Xp, yp
    gc.collect()

    # ---- peak extra memory of fit (float32 as the issue asks)
    Xm, ym = make_dense(cfg["memory_rows"], cfg["features"], W_CLASSES, np.float32, seed=3)
    log(f"# peak extra memory of fit on {cfg['memory_rows']} rows")
    for b in backends:
        if b.endswith("-1t") or skip_reason(b, memory=True):
            continue
        est = make_classifier(b, cfg["hidden"], batch_size=256, max_iter=1)
        peak_bytes, secs = fit_peak_memory(est, Xm, ym)
        report["memory"].append({
            "case": f"fit {cfg['memory_rows']}x{cfg['features']} float32",
            "backend": BACKEND_LABELS[b], "backend_key": b, "peak_bytes": peak_bytes,
            "x_bytes": Xm.nbytes, "fraction_of_X": peak_bytes / Xm.nbytes,
            "seconds": secs})
    del Xm, ym
    gc.collect()

    # ---- threading: two fits in two threads vs serial; GridSearchCV
    Xt, yt = make_dense(cfg["thread_rows"], cfg["features"], W_CLASSES, dtype, seed=4)
    log("# threading: two fits in two threads; GridSearchCV(n_jobs=2, threading)")
    for b in backends:
        if b.endswith("-1t") or b == "torch":
            continue
        make = (lambda b=b: make_classifier(b, cfg["hidden"], batch_size=256, max_iter=1))
        serial, threaded = two_fits_threads(make, Xt, yt)
        report["threading"].append({
            "case": f"2 fits, 2 threads ({cfg['thread_rows']} rows)",
            "backend": BACKEND_LABELS[b], "backend_key": b, "kind": "two_fits",
            "serial_s": serial, "parallel_s": threaded, "speedup": serial / threaded})
    Xg, yg = Xt[: cfg["grid_rows"]], yt[: cfg["grid_rows"]]
    for b in backends:
        if b.endswith("-1t") or b == "torch":
            continue
        make = (lambda b=b: make_classifier(b, cfg["hidden"], batch_size=256, max_iter=1))
        one, two = gridsearch_threads(make, Xg, yg, {"alpha": [1e-4, 1e-3]})
        report["threading"].append({
            "case": f"GridSearchCV 2x2 folds ({cfg['grid_rows']} rows)",
            "backend": BACKEND_LABELS[b], "backend_key": b, "kind": "gridsearch",
            "serial_s": one, "parallel_s": two, "speedup": one / two})

    report["targets"] = _targets(report)
    return report


def _targets(report):
    """Each target vs what was measured (for the fastbp-cython backend, else
    the NumPy backend)."""
    out = []
    keys = [r["backend_key"] for r in report["results"]]
    main = "cython" if "cython" in keys else "numpy"
    label = BACKEND_LABELS[main]
    for r in report["results"]:
        if r["backend_key"] != main:
            continue
        bs = r["batch_size"]
        if bs in TARGET_SPEEDUP and r.get("speedup_vs_sklearn") is not None:
            t = TARGET_SPEEDUP[bs]
            best_sk = min(x["s_per_epoch"] for x in report["results"]
                          if x["batch_size"] == bs and x["backend_key"].startswith("sklearn"))
            out.append({"target": f"{label} batch {bs}: >= {t:g}x scikit-learn",
                        "measured": f"{r['speedup_vs_sklearn']:.2f}x "
                                    f"({best_sk and best_sk / r['s_per_epoch']:.2f}x vs "
                                    "sklearn's faster thread setting)",
                        "met": r["speedup_vs_sklearn"] >= t})
        if bs >= 256:
            out.append({"target": f"{label} batch {bs}: >= {TARGET_PCT_PEAK:g}% of GEMM peak",
                        "measured": f"{r['pct_peak']:.1f}%",
                        "met": r["pct_peak"] >= TARGET_PCT_PEAK})
    for r in report["memory"]:
        if r["backend_key"] in ("cython", "numpy", "sklearn"):
            out.append({"target": f"{r['backend']} fit peak extra memory <= "
                                  f"{100 * TARGET_MEMORY_FRACTION:g}% of X",
                        "measured": f"{100 * r['fraction_of_X']:.1f}% "
                                    f"({r['peak_bytes'] / 2**20:.1f} MiB)",
                        "met": (r["fraction_of_X"] <= TARGET_MEMORY_FRACTION
                                if r["backend_key"] != "sklearn" else None)})
    for r in report["predict"]:
        if r["backend_key"] == main and r.get("speedup_vs_sklearn") is not None:
            out.append({"target": f"{label} {r['method']}: >= "
                                  f"{TARGET_PREDICT_SPEEDUP:g}x scikit-learn",
                        "measured": f"{r['speedup_vs_sklearn']:.2f}x",
                        "met": r["speedup_vs_sklearn"] >= TARGET_PREDICT_SPEEDUP})
    for r in report["threading"]:
        if r["backend_key"] in ("cython", "numpy", "sklearn"):
            fastbp = r["backend_key"] in ("cython", "numpy")
            out.append({"target": f"{r['backend']} {r['case']}: >= "
                                  f"{TARGET_THREADS_SPEEDUP:g}x serial",
                        "measured": f"{r['speedup']:.2f}x",
                        "met": r["speedup"] >= TARGET_THREADS_SPEEDUP if fastbp else None})
    return out


def format_header(meta):
    lines = []
    lines.append(f"fastbp {meta.get('fastbp')} bench  {meta.get('date')}  mode={meta.get('mode')}")
    lines.append(f"CPU: {meta.get('cpu')} ({meta.get('cores')} cores; "
                 f"{', '.join(meta.get('cpu_flags', []))})")
    lines.append(f"Python {meta.get('python')}, NumPy {meta.get('numpy')}, SciPy "
                 f"{meta.get('scipy')}, scikit-learn {meta.get('sklearn')}"
                 + (f", torch {meta['torch']}" if meta.get("torch") else ""))
    lines.append("BLAS / threads (threadpoolctl):")
    for d in meta.get("blas", []):
        lines.append(f"  {d['user_api']:<7} {d['internal_api']:<9} {d['version'] or '':<14} "
                     f"threads={d['num_threads']}  {d.get('architecture') or ''}  {d['filepath']}")
    return "\n".join(lines)


def format_report(report, header=True):
    lines = [format_header(report["meta"])] if header else []
    lines.append("GEMM peak measured in this run: " + ", ".join(
        f"{k} {v['gflops']:.1f} GFLOP/s" for k, v in report["gemm"].items()))
    lines.append("")
    lines.append("Training, workload W (dense, relu, 10 classes, adam), one run:")
    lines.append(_table(report["results"], [
        ("case", "case", None), ("backend", "backend", None),
        ("s/epoch", "s_per_epoch", ".4f"), ("samples/s", "samples_per_s", ",.0f"),
        ("GFLOP/s", "gflops", ".1f"), ("% GEMM peak", "pct_peak", ".1f"),
        ("vs sklearn", "speedup_vs_sklearn", ".2f"), ("vs numpy", "speedup_vs_numpy", ".2f"),
    ]))
    if report["predict"]:
        lines.append("")
        lines.append("Inference throughput:")
        lines.append(_table(report["predict"], [
            ("case", "case", None), ("backend", "backend", None),
            ("seconds", "seconds", ".4f"), ("samples/s", "samples_per_s", ",.0f"),
            ("GFLOP/s", "gflops", ".1f"), ("% GEMM peak", "pct_peak", ".1f"),
            ("vs sklearn", "speedup_vs_sklearn", ".2f"), ("vs numpy", "speedup_vs_numpy", ".2f"),
        ]))
    if report["memory"]:
        lines.append("")
        lines.append("Peak extra memory of fit beyond X (tracemalloc; 1 epoch, batch 256):")
        mem = [dict(r, peak_mib=r["peak_bytes"] / 2**20, x_mib=r["x_bytes"] / 2**20,
                    pct=100 * r["fraction_of_X"]) for r in report["memory"]]
        lines.append(_table(mem, [
            ("case", "case", None), ("backend", "backend", None),
            ("peak MiB", "peak_mib", ".1f"), ("X MiB", "x_mib", ".1f"),
            ("% of X", "pct", ".1f"), ("fit s", "seconds", ".2f")]))
    if report["threading"]:
        lines.append("")
        lines.append("Threading (BLAS limited to 1 thread per fit):")
        lines.append(_table(report["threading"], [
            ("case", "case", None), ("backend", "backend", None),
            ("serial s", "serial_s", ".3f"), ("parallel s", "parallel_s", ".3f"),
            ("speed-up", "speedup", ".2f")]))
    lines.append("")
    lines.append("Targets (reported, not enforced):")
    for t in report["targets"]:
        mark = {True: "met", False: "MISSED", None: "(reference)"}[t["met"]]
        lines.append(f"  [{mark:^11}] {t['target']}: {t['measured']}")
    lines.append("")
    lines.append("Note: " + FLOP_NOTE)
    lines.append("Speed-ups are ratios of seconds per epoch measured in this one run; "
                 "'scikit-learn' runs with the BLAS threads shown above.")
    return "\n".join(lines)


def plot(report, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--plot needs matplotlib (pip install 'fastbp[bench]'); no plot written.",
              file=sys.stderr)
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in BACKEND_ORDER:
        rows = sorted((r for r in report["results"] if r["backend_key"] == key),
                      key=lambda r: r["batch_size"])
        if rows:
            ax.plot([r["batch_size"] for r in rows], [r["s_per_epoch"] for r in rows],
                    marker="o", label=BACKEND_LABELS[key])
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    batches = sorted({r["batch_size"] for r in report["results"]})
    ax.set_xticks(batches)
    ax.set_xticklabels([str(b) for b in batches])
    ax.minorticks_off()
    ax.set_xlabel("batch size")
    ax.set_ylabel("seconds per epoch")
    ax.set_title("Workload W: {}".format(report["results"][0]["case"].rsplit(" batch", 1)[0]
                                         if report["results"] else ""))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _meta(mode, threads):
    import scipy
    import sklearn

    from . import __version__

    meta = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "fastbp": __version__, "mode": mode, "python": platform.python_version(),
        "numpy": np.__version__, "scipy": scipy.__version__, "sklearn": sklearn.__version__,
        "cpu": cpu_model(), "cores": os.cpu_count(), "cpu_flags": cpu_flags(),
        "platform": platform.platform(), "blas": blas_summary(), "threads": threads,
    }
    if "torch" in sys.modules:
        import torch

        meta["torch"] = torch.__version__
        meta["torch_threads"] = torch.get_num_threads()
    return meta


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m fastbp bench",
        description="Benchmark fastbp's backends against scikit-learn (and PyTorch "
                    "when installed) on workload W of DESIGN.md.")
    parser.add_argument("--quick", action="store_true",
                        help="small data (2k rows, 1 epoch): about half a minute")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--plot", metavar="PATH",
                        help="plot seconds/epoch vs batch size (needs matplotlib)")
    parser.add_argument("--backends", default=",".join(BACKEND_ORDER),
                        help="comma-separated subset of %(default)s")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--threads", type=int, default=None,
                        help="limit BLAS threads for the whole run (default: as is)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per timed fit (default 2; 1 with --quick)")
    parser.add_argument("--rows", type=int, default=None,
                        help="rows of workload W (default 20000)")
    args = parser.parse_args(argv)
    mode = "tiny" if (args.tiny or os.environ.get("FASTBP_BENCH_TINY") == "1") else (
        "quick" if args.quick else "full")
    cfg = dict(CONFIGS[mode])
    if args.epochs:
        cfg["epochs"] = args.epochs
    if args.rows:
        cfg["rows"] = args.rows
    requested = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(requested) - set(BACKEND_ORDER)
    if unknown:
        parser.error(f"unknown backends {sorted(unknown)}; choose from {BACKEND_ORDER}")

    limiter = contextlib.nullcontext()
    if args.threads:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=args.threads, user_api="blas")
    with limiter:
        if "torch" in requested and torch_available():
            import torch

            torch.set_num_threads(args.threads or os.cpu_count() or 1)
        meta = _meta(mode, args.threads)
        print(format_header(meta), flush=True)
        backends = _backends(requested)
        t0 = time.perf_counter()
        report = run(cfg, backends, np.dtype(args.dtype),
                     log=lambda s: print(s, flush=True))
        report["meta"] = meta
        report["meta"]["wall_seconds"] = time.perf_counter() - t0
    print()
    print(format_report(report, header=False))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2, default=float)
        print(f"\nwrote {args.json}")
    if args.plot:
        if plot(report, args.plot):
            print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
