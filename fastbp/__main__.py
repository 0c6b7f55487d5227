"""``python -m fastbp``: the main job, and ``python -m fastbp bench``.

With no arguments: train :class:`~fastbp.BPClassifier` on scikit-learn's
bundled handwritten digits (no download) with a progress bar, then print the
test accuracy and fit time, and the same fit with the NumPy backend and with
scikit-learn's ``MLPClassifier`` for comparison. ``--csv PATH --target COL``
trains on your own CSV file instead; ``--save MODEL.joblib`` keeps the model.

Bad options and bad CSV files give a one-line error on stderr and exit
code 2.
"""

import argparse
import contextlib
import csv
import os
import sys
import time
import warnings

EXIT_USAGE = 2


class UsageError(Exception):
    """A user error: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but every error is one line and exit code 2."""

    def error(self, message):
        raise UsageError(f"{message} (see `python -m fastbp --help`)")


# ------------------------------------------------------------ option types


def _hidden(text):
    try:
        sizes = tuple(int(s) for s in text.replace(" ", "").split(",") if s)
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"--hidden wants positive layer sizes like 128 or 256,128; got {text!r}"
        )
    return sizes


def _batch_size(text):
    if text == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"--batch-size wants a positive integer or 'auto'; got {text!r}"
        )
    return value


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return value


def build_parser():
    """The argument parser of ``python -m fastbp`` (see ``--help``).

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    p = _Parser(
        prog="python -m fastbp",
        description=(
            "Train a fastbp multilayer perceptron and compare it with the NumPy\n"
            "backend and scikit-learn's MLP. Without --csv the data are\n"
            "scikit-learn's bundled handwritten digits (8x8 images, 10 classes)."
        ),
        epilog=(
            "subcommands:\n"
            "  train   (default) train, evaluate on a held-out split, compare\n"
            "  bench   the benchmark suite: python -m fastbp bench --help\n\n"
            "examples:\n"
            "  python -m fastbp\n"
            "  python -m fastbp --hidden 256,128 --epochs 30 --backend numpy\n"
            "  python -m fastbp --csv data.csv --target label --save model.joblib\n"
            "  python -m fastbp bench --quick"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "command", nargs="?", default="train", choices=("train", "bench"),
        help="what to do: train (default) or bench",
    )
    m = p.add_argument_group("model")
    m.add_argument("--hidden", type=_hidden, default=(128,), metavar="N[,N...]",
                   help="hidden layer sizes, e.g. 128 or 256,128 (default: 128)")
    m.add_argument("--activation", default="relu",
                   choices=("relu", "tanh", "logistic", "sigmoid", "identity",
                            "softplus", "maxout"),
                   help="hidden activation (default: relu)")
    m.add_argument("--solver", default="adam", choices=("adam", "sgd", "lbfgs"),
                   help="optimizer (default: adam)")
    m.add_argument("--batch-size", type=_batch_size, default="auto", metavar="N|auto",
                   help="minibatch size (default: auto = min(200, n_samples))")
    m.add_argument("--epochs", type=_positive_int, default=60, metavar="N",
                   help="maximum epochs (lbfgs: iterations) (default: 60)")
    m.add_argument("--learning-rate", type=float, default=1e-3, metavar="LR",
                   help="learning_rate_init for adam / sgd (default: 0.001)")
    m.add_argument("--backend", default="auto", choices=("auto", "cython", "numpy"),
                   help="where the arithmetic runs (default: auto = compiled if built)")
    m.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                   help="training precision (default: float32)")
    m.add_argument("--random-state", type=int, default=0, metavar="SEED",
                   help="seed of the split, the weights and the shuffling (default: 0)")
    d = p.add_argument_group("data")
    d.add_argument("--csv", metavar="PATH",
                   help="train on this CSV file (header row, numeric features)")
    d.add_argument("--target", metavar="COLUMN",
                   help="name of the CSV column to predict (required with --csv)")
    d.add_argument("--task", default="auto", choices=("auto", "classify", "regress"),
                   help="CSV target kind; auto: regress on non-integer numbers, "
                        "else classify (default: auto)")
    d.add_argument("--test-size", type=_fraction, default=0.25, metavar="F",
                   help="held-out fraction for the test score (default: 0.25)")
    o = p.add_argument_group("output")
    o.add_argument("--save", metavar="MODEL.joblib",
                   help="save the fitted model (joblib) to this path")
    o.add_argument("--plot", metavar="PNG",
                   help="save the loss curve to this image (needs matplotlib)")
    o.add_argument("--no-compare", action="store_true",
                   help="skip the NumPy-backend and scikit-learn comparison fits")
    o.add_argument("--no-progress", action="store_true",
                   help="no progress bar")
    return p


# --------------------------------------------------------------------- data


def load_csv(path, target):
    """Read a CSV with a header row: numeric feature columns plus ``target``.

    Parameters
    ----------
    path : str
        Path of the CSV file.
    target : str
        Name of the target column (may hold numbers or labels).

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64
    y : ndarray of shape (n_samples,), object (strings) or float64
    feature_names : list of str

    Raises
    ------
    UsageError
        For a missing / empty file, a missing target column, ragged rows,
        non-numeric or missing feature values, or too few rows.
    """
    import numpy as np

    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if any(cell.strip() for cell in r)]
    except FileNotFoundError:
        raise UsageError(f"CSV file not found: {path}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"cannot read CSV file {path}: {exc}") from None
    if not rows:
        raise UsageError(f"CSV file {path} is empty")
    header = [h.strip() for h in rows[0]]
    data = rows[1:]
    if target not in header:
        raise UsageError(
            f"target column {target!r} not in {path} (columns: {', '.join(header)})"
        )
    if not data:
        raise UsageError(f"CSV file {path} has a header but no data rows")
    if len(header) < 2:
        raise UsageError(f"CSV file {path} has no feature columns besides {target!r}")
    t = header.index(target)
    names = [h for j, h in enumerate(header) if j != t]
    X = np.empty((len(data), len(header) - 1))
    y = []
    for i, row in enumerate(data, start=2):
        if len(row) != len(header):
            raise UsageError(
                f"{path} line {i}: {len(row)} fields, the header has {len(header)}"
            )
        y.append(row[t].strip())
        for k, (j, cell) in enumerate((j, c) for j, c in enumerate(row) if j != t):
            try:
                X[i - 2, k] = float(cell)
            except ValueError:
                if not cell.strip():
                    raise UsageError(
                        f"{path} line {i}: missing value in feature column {header[j]!r}"
                    ) from None
                raise UsageError(
                    f"{path} line {i}: non-numeric value {cell.strip()!r} in feature "
                    f"column {header[j]!r} (features must be numbers)"
                ) from None
    if not np.isfinite(X).all():
        i, j = np.argwhere(~np.isfinite(X))[0]
        raise UsageError(
            f"{path} line {i + 2}: missing or infinite value in feature column "
            f"{names[j]!r}"
        )
    if any(v == "" for v in y):
        i = y.index("")
        raise UsageError(f"{path} line {i + 2}: empty target value")
    if len(y) < 4:
        raise UsageError(f"CSV file {path} has only {len(y)} data rows; need at least 4")
    try:
        y = np.array([float(v) for v in y])
    except ValueError:
        y = np.array(y, dtype=object)
    return X, y, names


def _is_regression(y, task):
    import numpy as np

    if task != "auto":
        return task == "regress"
    if y.dtype == object:
        return False
    return not np.all(np.equal(np.mod(y, 1), 0))


# ----------------------------------------------------------------- progress


def _progress_callbacks(enabled):
    """A scikit-learn ProgressBar when rich is installed, else a text line."""
    if not enabled:
        return []
    try:
        import rich  # noqa: F401
        from sklearn.callback import ProgressBar
    except ImportError:
        from ._callbacks import TextProgress

        return [TextProgress()]
    return [ProgressBar()]


# --------------------------------------------------------------------- main


def _fmt_row(name, acc_name, score, seconds, n_iter):
    return f"  {name:<24} {acc_name} {score:.4f}   fit {seconds:7.3f} s   {n_iter:>4} epochs"


def _timed_fit(est, X, y):
    t0 = time.perf_counter()
    est.fit(X, y)
    return time.perf_counter() - t0


def train(args, out=None):
    """Run the main job with parsed ``args``; returns the exit code.

    Parameters
    ----------
    args : argparse.Namespace
        As made by :func:`build_parser`.
    out : file-like, default=None
        Where the report is printed (``sys.stdout`` when None).

    Returns
    -------
    code : int
    """
    import numpy as np
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from . import BPClassifier, BPRegressor, __version__
    from .backends import cython_available, get_backend
    from .interop import SKLEARN_HIDDEN_ACTIVATIONS

    out = sys.stdout if out is None else out
    if args.csv is None and args.target is not None:
        raise UsageError("--target needs --csv PATH")
    if args.csv is not None and args.target is None:
        raise UsageError("--csv needs --target COLUMN (the column to predict)")
    if args.backend == "cython" and not cython_available():
        raise UsageError(
            "--backend cython: the compiled backend is not built "
            "(pip install -e . from a clone, with a C compiler)"
        )
    dtype = np.dtype(args.dtype)

    if args.csv is None:
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = X / 16.0
        regression = False
        source = "scikit-learn's handwritten digits"
        scale = False
    else:
        X, y, _ = load_csv(args.csv, args.target)
        regression = _is_regression(y, args.task)
        if regression and y.dtype == object:
            raise UsageError(
                f"--task regress: target column {args.target!r} is not numeric"
            )
        if not regression:
            y = y.astype(str) if y.dtype == object else y
            _, counts = np.unique(y, return_counts=True)
            if len(counts) < 2:
                raise UsageError(
                    f"target column {args.target!r} has a single class; nothing to learn"
                )
        source = os.path.basename(args.csv)
        scale = True
    X = X.astype(dtype)

    stratify = None
    if not regression:
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= 2:
            stratify = y
    try:
        X_tr, X_te, y_tr, y_te = train_test_split(
            X, y, test_size=args.test_size, random_state=args.random_state,
            stratify=stratify,
        )
    except ValueError as exc:
        raise UsageError(f"cannot split the data: {exc}") from None

    params = dict(
        hidden_layer_sizes=args.hidden, activation=args.activation,
        solver=args.solver, batch_size=args.batch_size, max_iter=args.epochs,
        learning_rate_init=args.learning_rate, random_state=args.random_state,
    )
    Est, Sk = (BPRegressor, MLPRegressor) if regression else (BPClassifier, MLPClassifier)
    metric = "R^2     " if regression else "accuracy"

    def model(backend=None, sklearn=False):
        if sklearn:
            est = Sk(**{**params, "activation": "logistic" if args.activation == "sigmoid"
                        else args.activation})
        else:
            est = Est(**params, backend=backend)
        if not scale:
            return est
        pipe = make_pipeline(StandardScaler(), est)
        if regression:  # standardise the target too, predictions in its units
            return TransformedTargetRegressor(regressor=pipe, transformer=StandardScaler())
        return pipe

    def final(fitted):
        if isinstance(fitted, TransformedTargetRegressor):
            fitted = fitted.regressor_
        return fitted[-1] if scale else fitted

    backend_name = get_backend(args.backend).name if args.backend != "auto" else (
        "cython" if cython_available() else "numpy")
    kind = "regressor" if regression else f"{len(np.unique(y))} classes"
    print(f"fastbp {__version__}: {Est.__name__} on {source}", file=out)
    print(f"  data: {X_tr.shape[0]} train / {X_te.shape[0]} test rows, "
          f"{X.shape[1]} features, {kind}, {args.dtype}", file=out)
    print(f"  model: hidden={args.hidden} {args.activation} {args.solver} "
          f"batch={args.batch_size} epochs<={args.epochs} backend={backend_name}", file=out)
    if backend_name == "numpy" and args.backend == "auto":
        print("  note: the compiled backend is not built; running the NumPy backend",
              file=out)
    out.flush()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message="The compiled backend of fastbp")
        main = model(args.backend)
        callbacks = _progress_callbacks(not args.no_progress)
        target = main.regressor if isinstance(main, TransformedTargetRegressor) else main
        if callbacks:
            target.set_callbacks(*callbacks)  # propagates through the Pipeline
        try:
            seconds = _timed_fit(main, X_tr, y_tr)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"training failed: {exc}") from None
        if callbacks:
            target.set_callbacks()
            if target is not main:
                main.regressor_.set_callbacks()
        est = final(main)
        score = main.score(X_te, y_te)
        print("results on the held-out test split:", file=out)
        print(_fmt_row(f"fastbp ({est.backend_})", metric, score, seconds, est.n_iter_),
              file=out)
        out.flush()

        if not args.no_compare:
            if est.backend_ != "numpy":
                ref = model("numpy")
                s = _timed_fit(ref, X_tr, y_tr)
                r = final(ref)
                print(_fmt_row("fastbp (numpy)", metric, ref.score(X_te, y_te), s,
                               r.n_iter_), file=out)
                out.flush()
            if args.activation in SKLEARN_HIDDEN_ACTIVATIONS + ("sigmoid",):
                ref = model(sklearn=True)
                s = _timed_fit(ref, X_tr, y_tr)
                r = final(ref)
                print(_fmt_row("scikit-learn MLP", metric, ref.score(X_te, y_te), s,
                               r.n_iter_), file=out)
                if s > 0 and seconds > 0:
                    print(f"  speed-up of fastbp ({est.backend_}) over scikit-learn: "
                          f"{s / seconds:.1f}x", file=out)
            else:
                print(f"  scikit-learn MLP: skipped (no {args.activation!r} activation "
                      "in scikit-learn)", file=out)

    if args.save:
        import joblib

        try:
            joblib.dump(main, args.save)
        except OSError as exc:
            raise UsageError(f"cannot save the model to {args.save}: {exc}") from None
        print(f"saved the fitted model to {args.save} (load with joblib.load)", file=out)
    if args.plot:
        try:
            import matplotlib

            matplotlib.use("Agg")
            from .plotting import plot_loss_curve

            ax = plot_loss_curve(est)
            ax.figure.savefig(args.plot, dpi=110, bbox_inches="tight")
        except ImportError as exc:
            raise UsageError(str(exc)) from None
        except OSError as exc:
            raise UsageError(f"cannot save the plot to {args.plot}: {exc}") from None
        print(f"saved the loss curve to {args.plot}", file=out)
    return 0


def _bench(argv):
    try:
        from ._bench import main as bench_main
    except ImportError as exc:
        print(
            f"fastbp: error: the benchmark runner fastbp._bench is not available ({exc})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return bench_main(argv)


def main(argv=None):
    """Entry point of ``python -m fastbp``.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments (``sys.argv[1:]`` when None).

    Returns
    -------
    code : int
        0 on success, 2 for a usage error (bad option, bad CSV).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        return _bench(argv[1:])
    try:
        args = build_parser().parse_args(argv)
        if args.command == "bench":
            raise UsageError("`bench` must come first: python -m fastbp bench [options]")
        return train(args)
    except UsageError as exc:
        print(f"fastbp: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("fastbp: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
