"""``python -m fastbp [train]``: load the data, build the model, fit and
report, save.

Without ``--csv`` the data are scikit-learn's bundled handwritten digits and
the saved model is the bare estimator. With ``--csv`` the saved model is a
:class:`~sklearn.pipeline.Pipeline` that takes the CSV's columns by name
(scaling the numeric ones, one-hot encoding the categorical ones), so it can
be applied to ``pandas.read_csv(...)`` of new data or with ``python -m
fastbp predict``.
"""

import os
import sys
import warnings
from dataclasses import dataclass, field

from .options import (
    UsageError,
    activation_names,
    batch_size,
    categorical,
    check_plot_path,
    check_readable,
    check_save_path,
    column_list,
    dropout_rates,
    fraction,
    hidden_sizes,
    non_negative_float,
    positive_float,
    positive_int,
)

DTYPES = ("float32", "float64")
TASKS = ("auto", "classify", "regress")


def _solvers():
    from ..estimators import BPClassifier

    (options,) = BPClassifier._parameter_constraints["solver"]
    return tuple(sorted(options.options))


def add_arguments(p):
    """The options of ``train`` (also those of the bare ``python -m fastbp``)."""
    from .. import activations
    from ..backends import BACKENDS

    m = p.add_argument_group("model")
    m.add_argument("--hidden", type=hidden_sizes, default=(128,), metavar="N[,N...]",
                   help="hidden layer sizes, e.g. 128 or 256,128 (default: 128)")
    m.add_argument("--activation", type=activation_names, default="relu",
                   metavar="NAME[,NAME...]",
                   help="hidden activation, or one per hidden layer: "
                        f"{', '.join(activations.HIDDEN_ACTIVATIONS + tuple(activations.ALIASES))} "
                        "(default: relu)")
    m.add_argument("--negative-slope", type=non_negative_float, default=0.01, metavar="S",
                   help="slope of leaky_relu below zero (default: 0.01)")
    m.add_argument("--dropout", type=dropout_rates, default=0.0, metavar="P[,P...]",
                   help="dropout rate of the hidden layers, or one per hidden layer; "
                        "adam / sgd only (default: 0, none)")
    m.add_argument("--solver", default="adam", choices=_solvers(),
                   help="optimizer (default: adam)")
    m.add_argument("--batch-size", type=batch_size, default="auto", metavar="N|auto",
                   help="minibatch size (default: auto = min(200, n_samples))")
    m.add_argument("--epochs", type=positive_int, default=60, metavar="N",
                   help="maximum epochs (lbfgs: iterations) (default: 60)")
    m.add_argument("--learning-rate", type=positive_float, default=1e-3, metavar="LR",
                   help="learning_rate_init for adam / sgd (default: 0.001)")
    m.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="where the arithmetic runs (default: auto = compiled if built)")
    m.add_argument("--dtype", default="float32", choices=DTYPES,
                   help="training precision (default: float32)")
    m.add_argument("--random-state", type=int, default=0, metavar="SEED",
                   help="seed of the split, the weights and the shuffling (default: 0)")
    d = p.add_argument_group("data")
    d.add_argument("--csv", metavar="PATH",
                   help="train on this CSV file (header row; numeric and categorical "
                        "columns; pandas' index column is recognised)")
    d.add_argument("--target", metavar="COLUMN",
                   help="name of the CSV column to predict (required with --csv)")
    d.add_argument("--features", type=column_list, metavar="COL[,COL...]",
                   help="use only these columns as features (default: all but the target)")
    d.add_argument("--drop", type=column_list, metavar="COL[,COL...]",
                   help="leave these columns out (e.g. an id column)")
    d.add_argument("--categorical", type=categorical, default="auto", metavar="auto|COL,...",
                   help="columns to one-hot encode; auto: the non-numeric ones (default: auto)")
    d.add_argument("--task", default="auto", choices=TASKS,
                   help="auto: labels and integer targets with at most 20 distinct values "
                        "are classified, other numbers regressed; the rule is printed "
                        "(default: auto)")
    d.add_argument("--test-size", type=fraction, default=0.25, metavar="F",
                   help="held-out fraction for the test score (default: 0.25)")
    o = p.add_argument_group("output")
    o.add_argument("--save", metavar="MODEL",
                   help="save the fitted model: .skops (skops format) or any other name "
                        "(joblib); apply it with `python -m fastbp predict`")
    o.add_argument("--plot", metavar="IMAGE",
                   help="save the loss curve to this image, e.g. curve.png (needs matplotlib)")
    o.add_argument("--repeat", type=positive_int, default=3, metavar="N",
                   help="timed fits per contender, interleaved; the median is "
                        "reported (default: 3)")
    o.add_argument("--no-compare", action="store_true",
                   help="skip the timed NumPy-backend and scikit-learn comparison fits")
    o.add_argument("--no-progress", action="store_true",
                   help="no progress display")


# --------------------------------------------------------------------- checks


def check_options(args):
    """Everything the options say, checked before any data is read."""
    from ..backends import cython_available

    if args.csv is None:
        if args.target is not None:
            raise UsageError("--target needs --csv PATH")
        for option in ("features", "drop"):
            if getattr(args, option) is not None:
                raise UsageError(f"--{option} needs --csv PATH")
        if args.categorical != "auto":
            raise UsageError("--categorical needs --csv PATH")
        if args.task != "auto":
            raise UsageError("--task needs --csv PATH (the digits are a classification)")
    else:
        if args.target is None:
            raise UsageError("--csv needs --target COLUMN (the column to predict)")
        check_readable(args.csv, "CSV file")
        both = set(args.features or ()) & set(args.drop or ())
        if both:
            raise UsageError(f"column {sorted(both)[0]!r} is in both --features and --drop")
    n_hidden = len(args.hidden)
    for option, value in (("activation", args.activation), ("dropout", args.dropout)):
        if isinstance(value, list) and len(value) != n_hidden:
            raise UsageError(
                f"--{option} gives {len(value)} values for {n_hidden} hidden "
                f"layer{'s' if n_hidden != 1 else ''} (--hidden "
                f"{','.join(map(str, args.hidden))}): give one, or one per layer"
            )
    if _dropout_on(args) and args.solver == "lbfgs":
        raise UsageError("--dropout needs --solver adam or sgd (lbfgs has no minibatches)")
    if args.backend == "cython" and not cython_available():
        raise UsageError(
            "--backend cython: the compiled backend is not built "
            "(pip install -e . from a clone, with a C compiler)"
        )
    if args.save:
        check_save_path(args.save)
    if args.plot:
        check_plot_path(args.plot)


# --------------------------------------------------------------------- load


@dataclass
class Dataset:
    """The train/test split and what the report says about it."""

    X_train: object
    X_test: object
    y_train: object
    y_test: object
    regression: bool
    source: str
    n_features: int
    kind: str
    numeric: list = None  # CSV only: the columns to scale ...
    categories: list = None  # ... and to one-hot encode
    notes: list = field(default_factory=list)


def load(args):
    """Read the data (digits or ``--csv``), decide the task, split."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    if args.csv is None:
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = (X / 16.0).astype(args.dtype)
        regression, numeric, cats, notes = False, None, None, []
        source = "scikit-learn's handwritten digits"
        n_features = X.shape[1]
    else:
        from .data import decide_task, read_csv, select_features, target_column

        df = read_csv(args.csv)
        y = target_column(df, args.csv, args.target)
        X, numeric, cats, notes = select_features(
            df, args.csv, target=args.target, features=args.features, drop=args.drop,
            categorical=args.categorical,
        )
        # The scaled numeric columns keep this dtype and the one-hot columns
        # are made in it: the estimator trains in --dtype. (No cast step in
        # the Pipeline: a skops file would have to trust numpy.asarray.)
        X = X.astype({c: args.dtype for c in numeric})
        regression, rule = decide_task(y, args.task, args.target)
        notes.append(rule)
        y = y.to_numpy(dtype=float if regression else None)
        if y.dtype.kind not in "biuf":
            y = y.astype(str).astype(object)
        if len(y) < 4:
            raise UsageError(f"CSV file {args.csv} has only {len(y)} data rows; need at least 4")
        source = os.path.basename(args.csv)
        n_features = X.shape[1]
    stratify = None
    if not regression:
        _, counts = np.unique(y, return_counts=True)
        if len(counts) < 2:
            raise UsageError(f"target column {args.target!r} has a single class; nothing to learn")
        if counts.min() >= 2:
            stratify = y
    try:
        X_tr, X_te, y_tr, y_te = train_test_split(
            X, y, test_size=args.test_size, random_state=args.random_state, stratify=stratify,
        )
    except ValueError as exc:
        raise UsageError(f"cannot split the data: {exc}") from None
    kind = "regression" if regression else f"{len(np.unique(y))} classes"
    return Dataset(X_tr, X_te, y_tr, y_te, regression, source, n_features, kind,
                   numeric, cats, notes)


# --------------------------------------------------------------------- build


def build(args, data):
    """A function ``make(contender)`` returning a fresh, unfitted model.

    ``contender`` is "fastbp" (``--backend``), "numpy" (fastbp's NumPy
    backend) or "sklearn" (scikit-learn's MLP with the same parameters).
    """
    from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from .. import BPClassifier, BPRegressor

    params = dict(
        hidden_layer_sizes=args.hidden, activation=args.activation,
        solver=args.solver, batch_size=args.batch_size, max_iter=args.epochs,
        learning_rate_init=args.learning_rate, random_state=args.random_state,
    )
    Est, Sk = (BPRegressor, MLPRegressor) if data.regression else (BPClassifier, MLPClassifier)

    def make(contender="fastbp"):
        if contender == "sklearn":
            est = Sk(**{**params, "activation": _one_activation(args)})
        else:
            est = Est(**params, negative_slope=args.negative_slope, dropout=args.dropout,
                      backend="numpy" if contender == "numpy" else args.backend)
        if data.numeric is None:
            return est
        if data.regression:  # standardise the target too; predictions in its units
            est = TransformedTargetRegressor(regressor=est, transformer=StandardScaler())
        columns = ColumnTransformer(
            [("numeric", StandardScaler(), data.numeric),
             ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False,
                                           dtype=args.dtype),
              data.categories)],
            remainder="drop",
        )
        return Pipeline([("columns", columns), ("model", est)])

    make.estimator_name = Est.__name__
    return make


def final_estimator(model):
    """The MLP inside what :func:`build` made (fitted: the fitted one)."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline):
        model = model[-1]
    if isinstance(model, TransformedTargetRegressor):
        model = getattr(model, "regressor_", model.regressor)
    return model


# --------------------------------------------------------------------- fit + report


def _backend_name(args):
    from ..backends import cython_available

    if args.backend != "auto":
        return args.backend
    return "cython" if cython_available() else "numpy"


def _print_header(args, data, make, backend, out):
    from .. import __version__

    print(f"fastbp {__version__}: {make.estimator_name} on {data.source}", file=out)
    print(f"  data: {len(data.y_train)} train / {len(data.y_test)} test rows, "
          f"{data.n_features} features, {data.kind}, {args.dtype}", file=out)
    for note in data.notes:
        print(f"  {note}", file=out)
    acts = _per_layer(args.activation)
    extra = ""
    if "leaky_relu" in acts and args.negative_slope != 0.01:
        extra += f" negative_slope={args.negative_slope:g}"
    if _dropout_on(args):
        rates = _per_layer(args.dropout)
        extra += f" dropout={','.join(f'{r:g}' for r in rates)}"
    print(f"  model: hidden={','.join(map(str, args.hidden))} {','.join(acts)}{extra} "
          f"{args.solver} batch={args.batch_size} epochs<={args.epochs} backend={backend}",
          file=out)
    if backend == "numpy" and args.backend == "auto":
        print("  note: the compiled backend is not built; running the NumPy backend", file=out)
    out.flush()


def _contenders(args, make, backend):
    """Name -> model factory for the timed fits (fastbp first), and a note
    on a contender that had to be left out (or None)."""
    from ..interop import SKLEARN_HIDDEN_ACTIVATIONS

    contenders = {f"fastbp ({backend})": lambda: make("fastbp")}
    if args.no_compare:
        return contenders, None
    if backend != "numpy":
        contenders["fastbp (numpy)"] = lambda: make("numpy")
    one = _one_activation(args)
    if one is None:
        return contenders, ("scikit-learn MLP: skipped (it applies one activation to "
                            f"every hidden layer, not {','.join(args.activation)})")
    if one not in SKLEARN_HIDDEN_ACTIVATIONS:
        return contenders, (f"scikit-learn MLP: skipped (no {one!r} "
                            "activation in scikit-learn)")
    if _dropout_on(args):
        return contenders, "scikit-learn MLP: skipped (no dropout in scikit-learn)"
    contenders["scikit-learn MLP"] = lambda: make("sklearn")
    return contenders, None


def _one_activation(args):
    """The canonical name of the hidden activation when every hidden layer
    has the same one, else None."""
    from ..activations import canonical

    names = set(canonical(_per_layer(args.activation)))
    return names.pop() if len(names) == 1 else None


def _dropout_on(args):
    return any(r > 0 for r in _per_layer(args.dropout))


def _per_layer(value):
    """An option given as one value or one per hidden layer, as a list."""
    return value if isinstance(value, list) else [value]


def _fit_shown(args, make, fit):
    """The fit that is shown (progress display) and kept; returns
    ``(model, seconds, displayed)``. The callbacks are removed afterwards,
    so the saved model holds none."""
    from . import report
    from .progress import progress_callbacks

    model = make("fastbp")
    callbacks = progress_callbacks(not args.no_progress, stream=sys.stderr)
    host = _callback_host(model)
    if callbacks:
        host.set_callbacks(*callbacks)
    model, seconds = report.time_fit(lambda: model, fit)
    if callbacks:
        host.set_callbacks()
        final_estimator(model).set_callbacks()
    return model, seconds, bool(callbacks)


def _callback_host(model):
    """Where the progress callbacks go: on the outermost object that passes
    them down to the MLP. A Pipeline propagates them to its last step (and
    refuses them set on the step itself); TransformedTargetRegressor does
    not, but fits a clone of its regressor, which keeps them."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline) and isinstance(model[-1], TransformedTargetRegressor):
        return model[-1].regressor
    return model


def fit_and_report(args, data, make, out):
    """Fit the model (with the progress display), score it, time the
    comparison fits interleaved, print the results; returns the fitted model.

    With the comparison on, the shown fit is not timed (the display would
    slow it down): every contender, fastbp included, is fitted ``--repeat``
    more times without display, in turn, and the medians are compared.
    """
    from sklearn.exceptions import ConvergenceWarning

    from . import report

    backend = _backend_name(args)
    _print_header(args, data, make, backend, out)
    contenders, skipped = _contenders(args, make, backend)

    def fit(model):
        try:
            model.fit(data.X_train, data.y_train)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"training failed: {exc}") from None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message="The compiled backend of fastbp")
        # The Pipeline's column step cannot show progress; the MLP does.
        warnings.filterwarnings("ignore", message="The estimator .* does not support callbacks")
        model, seconds, displayed = _fit_shown(args, make, fit)
        first = next(iter(contenders))
        if args.no_compare:
            times, models = {first: [seconds]}, {}
        else:
            plural = "s" if args.repeat > 1 else ""
            print(f"timing {len(contenders)} contenders, {args.repeat} fit{plural} each, "
                  "interleaved (no progress display)", file=out)
            out.flush()
            times, models = report.time_interleaved(contenders, fit, args.repeat)
    models[first] = model  # the shown fit: same parameters, same seed

    metric = "R^2     " if data.regression else "accuracy"
    print("results on the held-out test split:", file=out)
    for name, t in times.items():
        timing = report.summary(t)
        if args.no_compare and displayed:
            timing += ", progress display included"
        fitted = models[name]
        print(report.result_row(name, metric, fitted.score(data.X_test, data.y_test), timing,
                                final_estimator(fitted).n_iter_), file=out)
    if skipped:
        print(f"  {skipped}", file=out)
    # fastbp against scikit-learn (or, without it, against the NumPy backend)
    other = "scikit-learn MLP" if "scikit-learn MLP" in times else next(
        (name for name in times if name != first), None)
    if other is not None:
        line = report.speed_line(first, times[first], other, times[other])
        if line:
            print(f"  {line}", file=out)
    note = report.busy_note(times)
    if note:
        print(f"  {note}", file=out)
    out.flush()
    return model


# --------------------------------------------------------------------- save


def save(args, model, out):
    """``--save`` and ``--plot`` (both paths checked before training)."""
    if args.save:
        try:
            from ..persistence import save as save_model
        except ImportError:
            import joblib

            def save_model(estimator, path):
                joblib.dump(estimator, path)
        try:
            save_model(model, args.save)
        except OSError as exc:
            raise UsageError(f"cannot save the model to {args.save}: {exc}") from None
        how = (f"python -m fastbp predict {args.save} DATA.csv" if args.csv
               else "fastbp.persistence.load or joblib.load")
        print(f"saved the fitted model to {args.save} (apply it with {how})", file=out)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        from ..plotting import plot_loss_curve

        ax = plot_loss_curve(final_estimator(model))
        try:
            ax.figure.savefig(args.plot, dpi=110, bbox_inches="tight")
        except OSError as exc:
            raise UsageError(f"cannot save the plot to {args.plot}: {exc}") from None
        print(f"saved the loss curve to {args.plot}", file=out)


def run(args, out=None):
    """``train``: check, load, build, fit and report, save; returns 0."""
    out = sys.stdout if out is None else out
    check_options(args)
    data = load(args)
    make = build(args, data)
    model = fit_and_report(args, data, make, out)
    save(args, model, out)
    return 0
