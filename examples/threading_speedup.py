"""Parallel fits in threads: GridSearchCV(n_jobs=2) under joblib's threading backend.

fastbp's compiled backend trains whole epochs without the GIL, so two fits in
two threads run on two cores at once -- no worker processes, no copies of the
data. This script measures the speed-up of a grid search with ``n_jobs=2``
over ``n_jobs=1`` (threading backend, BLAS limited to 1 thread with
threadpoolctl so that the parallelism comes from the fits only).

Run::

    python examples/threading_speedup.py [--repeats 3] [--epochs 20]

The target is a speed-up of at least 1.6x on a 2-core machine. The number is
only meaningful on an otherwise idle machine.
"""

import argparse
import os
import time
import warnings

import joblib
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from threadpoolctl import threadpool_limits

from fastbp import BPClassifier
from fastbp.backends import cython_available


def search(n_jobs, epochs, X, y):
    """Run the grid search once; return (seconds, fitted search)."""
    gs = GridSearchCV(
        BPClassifier((256,), max_iter=epochs, batch_size=64, random_state=0,
                     backend="cython"),
        {"alpha": [1e-4, 1e-3], "learning_rate_init": [1e-3, 3e-3]},
        cv=3, n_jobs=n_jobs,
    )
    with joblib.parallel_backend("threading", n_jobs=n_jobs):
        t0, c0 = time.perf_counter(), time.process_time()
        gs.fit(X, y)
        wall = time.perf_counter() - t0
        gs.cpu_per_wall_ = (time.process_time() - c0) / wall  # cores kept busy
        return wall, gs


def main(argv=None):
    """Measure and print the threading speed-up.

    Parameters
    ----------
    argv : list of str, default=None
        Command-line arguments (``--repeats``, ``--epochs``).

    Returns
    -------
    speedup : float
        Best time with ``n_jobs=1`` over best time with ``n_jobs=2``.
    """
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=20)
    args = p.parse_args(argv)
    if not cython_available():
        raise SystemExit("the compiled backend is not built: python setup.py build_ext --inplace")

    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    warnings.simplefilter("ignore", ConvergenceWarning)
    with threadpool_limits(limits=1):
        search(1, 1, X, y)  # warm-up: imports, first-call costs
        seqs = [search(1, args.epochs, X, y) for _ in range(args.repeats)]
        runs = [search(2, args.epochs, X, y) for _ in range(args.repeats)]
    (t1, seq), (t2, par) = min(seqs, key=lambda r: r[0]), min(runs, key=lambda r: r[0])
    same = np.array_equal(seq.cv_results_["mean_test_score"],
                          par.cv_results_["mean_test_score"])
    n_fits = 4 * 3 + 1
    print(f"GridSearchCV, {n_fits} fits of BPClassifier(256 relu, adam, batch 64, "
          f"{args.epochs} epochs) on digits, float32, BLAS 1 thread, cpus={os.cpu_count()}")
    print(f"  n_jobs=1 (threading): {t1:.3f} s  (best of {args.repeats}), "
          f"CPU time / wall time {seq.cpu_per_wall_:.2f}")
    print(f"  n_jobs=2 (threading): {t2:.3f} s  (best of {args.repeats}), "
          f"CPU time / wall time {par.cpu_per_wall_:.2f}")
    if hasattr(os, "getloadavg"):
        print(f"  load average before/after: {load0:.2f} / {os.getloadavg()[0]:.2f} "
              "(the machine should be otherwise idle)")
    print(f"  speed-up: {t1 / t2:.2f}x   identical cv results: {same}")
    return t1 / t2


if __name__ == "__main__":
    main()
