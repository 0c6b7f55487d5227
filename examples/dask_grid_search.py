"""A grid search of fastbp models on a Dask cluster, and out-of-core training.

Part 1 runs scikit-learn's GridSearchCV with joblib's "dask" backend: each
(candidate, fold) fit is a task on a Dask worker. Part 2 trains on a
dask.array that is processed block by block (out of core) with
fastbp.dask.partial_fit_chunks.

By default the script starts a LocalCluster (2 worker processes) on this
machine; give a scheduler address to use a real cluster -- the rest of the
code does not change::

    python examples/dask_grid_search.py                      # local cluster
    python examples/dask_grid_search.py tcp://scheduler:8786  # your cluster

Needs ``pip install "fastbp[dask]"``; every worker needs fastbp installed
too (see docs/distributed.md).
"""

import contextlib
import sys
import time
import warnings

import joblib
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from fastbp import BPClassifier
from fastbp.dask import partial_fit_chunks


def main(address=None):
    """Run the search (and the out-of-core fit) on the cluster at ``address``.

    Parameters
    ----------
    address : str, default=None
        Scheduler address such as "tcp://scheduler:8786"; None starts a
        LocalCluster with 2 worker processes.
    """
    import dask.array as da
    from dask.distributed import Client, LocalCluster

    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)

    with contextlib.ExitStack() as stack:
        if address is None:
            address = stack.enter_context(
                LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None))
        client = stack.enter_context(Client(address))
        print(f"Dask client: {client}")
        search = GridSearchCV(
            BPClassifier(max_iter=30, random_state=0),
            {"hidden_layer_sizes": [(64,), (128,)], "alpha": [1e-4, 1e-2],
             "activation": ["relu", "softplus"]},
            cv=3,
        )
        t0 = time.perf_counter()
        with joblib.parallel_backend("dask"):  # the only Dask-specific line
            search.fit(X, y)
        print(f"grid search of {len(search.cv_results_['params'])} candidates x 3 folds "
              f"on Dask: {time.perf_counter() - t0:.1f} s")
        print(f"  best {search.best_params_}, CV accuracy {search.best_score_:.4f}")

        # Out of core: 200,000 x 64 rows made lazily in 8 blocks of 25,000; only
        # one block at a time is in memory, computed on the cluster.
        rs = da.random.RandomState(0)
        Xd = rs.normal(size=(200_000, 64), chunks=(25_000, 64)).astype(np.float32)
        w = rs.normal(size=(64,), chunks=64)
        yd = (Xd @ w > 0).astype(int)
        t0 = time.perf_counter()
        clf = partial_fit_chunks(BPClassifier((32,), random_state=0), Xd, yd,
                                 classes=[0, 1], epochs=2)
        print(f"out-of-core partial_fit over {Xd.numblocks[0]} blocks x 2 epochs: "
              f"{time.perf_counter() - t0:.1f} s, {clf.t_} samples seen")
        X_check, y_check = da.compute(Xd[:20_000], yd[:20_000])
        print(f"  accuracy on the first 20,000 rows: {clf.score(X_check, y_check):.4f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
