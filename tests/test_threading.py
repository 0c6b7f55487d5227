"""Parallel fits in threads (issue #5, point 4).

The compiled backend trains without the GIL, so GridSearchCV(n_jobs=2) under
joblib's threading backend runs two fits at once. These tests check that
doing so is *correct* (same results as sequential, no shared state between
concurrent fits); the speed-up itself is measured by the benchmark suite and
by examples/threading_speedup.py, not asserted here.
"""

import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from fastbp import BPClassifier, BPRegressor
from fastbp.backends import cython_available

if not cython_available():
    if os.environ.get("FASTBP_REQUIRE_CYTHON") == "1":
        raise RuntimeError(
            "FASTBP_REQUIRE_CYTHON=1 but fastbp._cython_backend is not importable"
        )
    pytest.skip("compiled backend not built (threaded fits need it to release the GIL)",
                allow_module_level=True)


pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X[:800] / 16.0), y[:800]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grid_search_threading_equals_sequential(digits, dtype):
    X, y = digits
    X = X.astype(dtype)

    def search(n_jobs):
        return GridSearchCV(
            BPClassifier((32,), max_iter=10, random_state=0, backend="cython"),
            {"alpha": [1e-4, 1e-2], "batch_size": [32, 128]},
            cv=2, n_jobs=n_jobs,
        )

    seq = search(1).fit(X, y)
    with joblib.parallel_backend("threading", n_jobs=2):
        par = search(2).fit(X, y)
    np.testing.assert_array_equal(par.cv_results_["mean_test_score"],
                                  seq.cv_results_["mean_test_score"])
    assert par.best_params_ == seq.best_params_
    for a, b in zip(par.best_estimator_.coefs_, seq.best_estimator_.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_concurrent_fits_are_independent(digits, solver):
    X, y = digits
    seeds = [0, 1, 2, 3]

    def fit(seed):
        return BPClassifier((24,), solver=solver, max_iter=8, random_state=seed,
                            backend="cython").fit(X, y)

    sequential = [fit(s) for s in seeds]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(fit, seeds))
    for a, b in zip(sequential, threaded, strict=True):
        for ca, cb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
            np.testing.assert_array_equal(ca, cb)
        assert a.loss_curve_ == b.loss_curve_


def test_concurrent_regressors_and_predict(digits):
    X, _ = digits
    y = X[:, :3].astype(np.float32)
    X = X.astype(np.float32)
    reg = BPRegressor(hidden_layer_sizes=(16,), max_iter=5, random_state=0,
                      backend="cython").fit(X, y)
    expected = reg.predict(X)
    with ThreadPoolExecutor(max_workers=4) as pool:
        preds = list(pool.map(lambda _: reg.predict(X), range(8)))
    for p in preds:
        np.testing.assert_array_equal(p, expected)


# Issue 9, item 2: after fits run in parallel threads, every BLAS library of the
# process (NumPy's and SciPy's OpenBLAS) is back at its previous thread count.
# Each group of repetitions runs in a fresh process (the state that decided
# whether the setting leaked is process-wide: which thread threadpoolctl let
# control OpenBLAS), with OPENBLAS_NUM_THREADS=2 as the user's setting; each
# repetition runs two fits at once in new threads, solvers mixed.
_RESTORE_SCRIPT = textwrap.dedent("""
    import json, sys, threading, warnings
    import joblib
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV
    from threadpoolctl import threadpool_info
    from fastbp import BPClassifier

    warnings.simplefilter("ignore")
    mode, backend, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    X, y = load_digits(return_X_y=True)
    X, y = X[:300] / 16.0, y[:300]
    solvers = ["adam", "sgd", "lbfgs"]

    def blas():
        return {d["filepath"]: d["num_threads"] for d in threadpool_info()
                if d["user_api"] == "blas"}

    def model(rep, solver="adam"):
        return BPClassifier((16,), solver=solver, max_iter=5, random_state=rep,
                            backend=backend)

    leaks, errors = [], []
    for rep in range(reps):
        pair = [solvers[rep % 3], solvers[(rep + 1 + rep // 3) % 3]]
        before = blas()
        if mode == "threads":
            def fit(solver, rep=rep):
                try:
                    model(rep, solver).fit(X, y)
                except BaseException as exc:
                    errors.append(repr(exc))
            threads = [threading.Thread(target=fit, args=(s,)) for s in pair]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        else:
            with joblib.parallel_backend("threading", n_jobs=2):
                GridSearchCV(model(rep), {"solver": pair}, cv=2, n_jobs=2).fit(X, y)
        after = blas()
        if after != before:
            leaks.append([rep, pair, before, after])
    print(json.dumps({"leaks": leaks, "errors": errors, "libraries": len(blas())}))
""")


@pytest.mark.parametrize("mode", ["threads", "gridsearch"])
def test_blas_threads_restored_after_concurrent_fits(mode, backend):
    import fastbp

    root = os.path.dirname(os.path.dirname(os.path.abspath(fastbp.__file__)))
    env = dict(os.environ, OPENBLAS_NUM_THREADS="2",
               PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", _RESTORE_SCRIPT, mode, backend, "20"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["errors"] == []
    assert result["libraries"] >= 1
    assert result["leaks"] == []
