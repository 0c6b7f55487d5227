"""The main job, written out: BPClassifier on scikit-learn's handwritten digits.

What ``python -m fastbp`` does, as a script you can read and change: train
with a live progress bar (scikit-learn's ProgressBar callback, when rich is
installed), record the test accuracy per epoch with ScoringMonitor, compare
the fit with fastbp's NumPy backend and with scikit-learn's MLPClassifier,
and save the loss curve (docs/loss_curve.png in the README was made this way).

Run::

    python examples/digits_main_job.py [--plot loss_curve.png]
"""

import argparse
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
    args = p.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)  # float32 end to end
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, stratify=y,
                                              random_state=0)
    params = dict(hidden_layer_sizes=(128,), max_iter=args.epochs, random_state=0,
                  early_stopping=True, n_iter_no_change=args.epochs)

    backend = "cython" if cython_available() else "numpy"
    clf = BPClassifier(**params, backend=backend).set_callbacks(progress())
    t0 = time.perf_counter()
    clf.fit(X_tr, y_tr)
    t_fast = time.perf_counter() - t0
    clf.set_callbacks()  # the callbacks are not needed any more
    print(f"fastbp ({clf.backend_}): test accuracy {clf.score(X_te, y_te):.4f}, "
          f"fit {t_fast:.3f} s")

    t0 = time.perf_counter()
    ref = BPClassifier(**params, backend="numpy").fit(X_tr, y_tr)
    print(f"fastbp (numpy):  test accuracy {ref.score(X_te, y_te):.4f}, "
          f"fit {time.perf_counter() - t0:.3f} s")
    t0 = time.perf_counter()
    mlp = MLPClassifier(**params).fit(X_tr, y_tr)
    t_skl = time.perf_counter() - t0
    print(f"scikit-learn:    test accuracy {mlp.score(X_te, y_te):.4f}, "
          f"fit {t_skl:.3f} s  ({t_skl / t_fast:.1f}x fastbp's time)")

    # ScoringMonitor: a score per epoch, computed between epochs (here the
    # training accuracy of a short fit; it costs one predict per epoch).
    monitor = ScoringMonitor(scoring="accuracy")
    BPClassifier(**{**params, "max_iter": 10}, backend=backend).set_callbacks(
        monitor).fit(X_tr, y_tr)
    scores = [r["accuracy"] for r in monitor.get_logs().data if r["task_name"] == "epoch"]
    print("ScoringMonitor, training accuracy per epoch:",
          " ".join(f"{s:.3f}" for s in scores))

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        ax = plot_loss_curve(clf)
        ax.set_title("BPClassifier on the digits: training loss and validation accuracy")
        ax.figure.savefig(args.plot, dpi=100, bbox_inches="tight")
        print(f"saved {args.plot}")


if __name__ == "__main__":
    main()
