"""Distributed and out-of-core training with Dask (issue #5, point 5).

* a GridSearchCV run through ``joblib.parallel_backend("dask")`` on a real
  ``dask.distributed.LocalCluster`` with 2 worker processes gives the same
  result as the local search;
* ``partial_fit`` over the chunks of a dask.array (fastbp.dask helper, and
  dask_ml.wrappers.Incremental when dask-ml is installed) on data larger than
  one chunk.

Skipped, with the reason, only when dask is not installed; CI installs the
``fastbp[dask]`` extra so these run there.
"""


import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from fastbp import BPClassifier, BPRegressor

da = pytest.importorskip(
    "dask.array", reason="dask is not installed: pip install 'fastbp[dask]'"
)

from fastbp.dask import partial_fit_chunks  # noqa: E402


pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _search():
    return GridSearchCV(
        BPClassifier((16,), max_iter=20, learning_rate_init=0.01, random_state=0,
                     backend="numpy"),
        {"alpha": [1e-4, 1e-1], "activation": ["relu", "tanh"]},
        cv=3,
    )


def test_grid_search_on_local_cluster():
    distributed = pytest.importorskip(
        "dask.distributed",
        reason="dask.distributed is not installed: pip install 'fastbp[dask]'",
    )
    import joblib

    X, y = load_digits(return_X_y=True)
    X, y = X[:600] / 16.0, y[:600]

    local = _search().fit(X, y)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
    ) as cluster, distributed.Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        with joblib.parallel_backend("dask"):
            remote = _search().fit(X, y)
        # the fits really ran on the workers (other processes): unpickling
        # an estimator there imported fastbp
        imported = client.run(lambda: "fastbp" in __import__("sys").modules)
        assert len(imported) == 2 and any(imported.values()), imported

    assert remote.best_params_ == local.best_params_
    np.testing.assert_allclose(remote.cv_results_["mean_test_score"],
                               local.cv_results_["mean_test_score"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(remote.predict(X), local.predict(X))
    for a, b in zip(remote.best_estimator_.coefs_, local.best_estimator_.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)


def _chunked_problem(n=2000, chunk=500, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 10))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return X, y, da.from_array(X, chunks=(chunk, 5)), da.from_array(y, chunks=chunk)


def test_partial_fit_chunks_streams_every_block():
    X, y, dX, dy = _chunked_problem()
    assert dX.numblocks[0] == 4  # larger than one chunk
    est = BPClassifier((16,), learning_rate_init=0.01, random_state=0, backend="numpy")
    partial_fit_chunks(est, dX, dy, epochs=3, scheduler="synchronous")
    assert est.t_ == 3 * len(y)
    assert len(est.loss_curve_) == 3 * 4

    # the same as calling partial_fit on each in-memory chunk in order
    ref = BPClassifier((16,), learning_rate_init=0.01, random_state=0, backend="numpy")
    for _ in range(3):
        for i in range(4):
            sl = slice(500 * i, 500 * (i + 1))
            ref.partial_fit(X[sl], y[sl], classes=[0, 1])
    for a, b in zip(est.coefs_, ref.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)
    assert est.score(X, y) > 0.9


def test_partial_fit_chunks_regressor_weights_and_shuffle():
    X, _, dX, _ = _chunked_problem(n=1500, chunk=400)
    y = X[:, 0] - X[:, 2]
    sw = np.linspace(0.5, 2, len(y))
    est = BPRegressor(hidden_layer_sizes=(8,), random_state=0, backend="numpy")
    partial_fit_chunks(est, dX, da.from_array(y, chunks=700), sample_weight=sw,
                       epochs=2, shuffle_blocks=True, random_state=0,
                       scheduler="synchronous")
    assert est.t_ == 2 * len(y)
    assert len(est.loss_curve_) == 2 * dX.numblocks[0]


def test_partial_fit_chunks_errors():
    _, _, dX, dy = _chunked_problem(n=100, chunk=50)
    with pytest.raises(ValueError, match="rows"):
        partial_fit_chunks(BPClassifier(), dX, dy[:60])
    with pytest.raises(ValueError, match="epochs"):
        partial_fit_chunks(BPClassifier(), dX, dy, epochs=0)


def test_dask_ml_incremental():
    wrappers = pytest.importorskip("dask_ml.wrappers", reason="dask-ml not installed")
    X, y, dX, dy = _chunked_problem()
    inc = wrappers.Incremental(
        BPClassifier((16,), learning_rate_init=0.01, random_state=0, backend="numpy"),
        scoring="accuracy", shuffle_blocks=False,
    )
    inc.fit(dX.rechunk({1: -1}), dy, classes=[0, 1])
    assert inc.estimator_.t_ == len(y)
    assert inc.score(dX.rechunk({1: -1}), dy) > 0.8
