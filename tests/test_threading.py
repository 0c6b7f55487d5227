"""Parallel fits in threads (issue #5, point 4).

The compiled backend trains without the GIL, so GridSearchCV(n_jobs=2) under
joblib's threading backend runs two fits at once. These tests check that
doing so is *correct* (same results as sequential, no shared state between
concurrent fits); the speed-up itself is measured by the benchmark suite and
by examples/threading_speedup.py, not asserted here.
"""

import os
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
