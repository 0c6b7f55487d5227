"""The main job, written out: BPClassifier on scikit-learn's handwritten digits.

What ``python -m fastbp`` does, as a script you can read and change: train
with a live progress bar (scikit-learn's ProgressBar callback, when rich is
installed), then time fastbp, its NumPy backend and scikit-learn's
MLPClassifier fairly -- several fits each, interleaved, no progress bar in
the timed region, medians reported -- record the held-out (test) accuracy
after every epoch with ScoringMonitor, and save the loss curve
(docs/loss_curve.png in the README was made this way).

Run::

    python examples/digits_main_job.py [--plot loss_curve.png] [--repeat 3]
"""

import argparse
import os
import statistics
import time
import warnings

import numpy as np
from sklearn.callback import ScoringMonitor
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from fastbp import BPClassifier, plot_loss_curve
from fastbp.backends import cython_available


def progress():
    """scikit-learn's ProgressBar if rich is installed, else a text line."""
    try:
        from sklearn.callback import ProgressBar

        return ProgressBar()
    except ImportError:
        from fastbp._callbacks import TextProgress

        return TextProgress()


def main(argv=None):
    """Train, compare and optionally plot; see the module docstring.

    Parameters
    ----------
    argv : list of str, default=None
        Command-line arguments.
    """
    p = argparse.ArgumentParser(description="fastbp on the digits")
    p.add_argument("--plot", metavar="PNG", help="save the loss curve here")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--repeat", type=int, default=3, help="timed fits per model")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)  # float32 end to end
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, stratify=y,
                                              random_state=0)
    params = dict(hidden_layer_sizes=(128,), max_iter=args.epochs, random_state=0,
                  early_stopping=True, n_iter_no_change=args.epochs)
    backend = "cython" if cython_available() else "numpy"

    # 1. One fit to watch: the progress bar slows it down, so it is not timed.
    clf = BPClassifier(**params, backend=backend).set_callbacks(progress())
    clf.fit(X_tr, y_tr)
    clf.set_callbacks()  # the callbacks are not needed any more
    print(f"fastbp ({clf.backend_}): test accuracy {clf.score(X_te, y_te):.4f}")

    # 2. Timing: each model fitted --repeat times, in turn (A, B, C, A, B, C,
    # ...) so that a burst of load on a shared machine hits all of them.
    models = {
        f"fastbp ({backend})": lambda: BPClassifier(**params, backend=backend),
        "fastbp (numpy)": lambda: BPClassifier(**params, backend="numpy"),
        "scikit-learn": lambda: MLPClassifier(**params),
    }
    times = {name: [] for name in models}
    for _ in range(args.repeat):
        for name, make in models.items():
            model = make()
            t0 = time.perf_counter()
            model.fit(X_tr, y_tr)
            times[name].append(time.perf_counter() - t0)
    print(f"fit times, median (min-max) of {args.repeat} interleaved fits:")
    for name, t in times.items():
        print(f"  {name:<16} {statistics.median(t):.3f} s ({min(t):.3f}-{max(t):.3f})")
    fast = statistics.median(times[f"fastbp ({backend})"])
    ref = statistics.median(times["scikit-learn"])
    print(f"scikit-learn's median fit took {ref / fast:.1f} times as long as fastbp's")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    spread = max(max(t) / min(t) for t in times.values())
    if load >= (os.cpu_count() or 1) or spread > 2:
        print(f"note: the machine looks busy (load average {load:.1f}, fit times "
              f"varying up to {spread:.1f}x): these timings are unreliable")

    # 3. ScoringMonitor: a score per epoch, computed between epochs. It calls
    # its scorer with the training data; this scorer ignores them and scores
    # the held-out split instead (one predict of the test rows per epoch).
    def test_accuracy(estimator, X, y):
        return estimator.score(X_te, y_te)

    monitor = ScoringMonitor(scoring={"test_accuracy": test_accuracy})
    BPClassifier(**{**params, "max_iter": 10}, backend=backend).set_callbacks(
        monitor).fit(X_tr, y_tr)
    scores = [r["test_accuracy"] for r in monitor.get_logs().data
              if r["task_name"] == "epoch"]
    print("ScoringMonitor, test accuracy per epoch:", " ".join(f"{s:.3f}" for s in scores))

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        ax = plot_loss_curve(clf)
        ax.set_title("BPClassifier on the digits: training loss and validation accuracy")
        ax.figure.savefig(args.plot, dpi=100, bbox_inches="tight")
        print(f"saved {args.plot}")


if __name__ == "__main__":
    main()
