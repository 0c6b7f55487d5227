"""``python -m fastbp predict MODEL DATA.csv``: apply a saved model to a CSV.

Writes one row per input row, in the input's order: the ``--id`` column if
named, then ``prediction``, then (``--proba``) one probability column per
class. The model made by ``python -m fastbp train --csv ...`` takes the
columns by name, so extra columns (the target, an id) are ignored and a
missing one is an error.
"""

import os
import sys

from .options import UsageError, check_readable, check_writable


def add_arguments(p):
    p.add_argument("model", metavar="MODEL",
                   help="a model saved with `python -m fastbp train ... --save MODEL`")
    p.add_argument("data", metavar="DATA.csv", help="the rows to predict (header row)")
    p.add_argument("--output", "-o", metavar="PREDS.csv",
                   help="write the predictions here (default: standard output)")
    p.add_argument("--proba", action="store_true",
                   help="add one probability column per class (classifiers)")
    p.add_argument("--id", metavar="COLUMN", dest="id_column",
                   help="copy this column of DATA.csv into the output, first")


def load_model(path):
    """``fastbp.persistence.load`` when present, else joblib."""
    check_readable(path, "model file")
    try:
        from ..persistence import load
    except ImportError:
        if path.lower().endswith(".skops"):
            raise UsageError(f"{path}: this fastbp cannot read .skops files") from None
        import joblib

        load = joblib.load
    try:
        model = load(path)
    except Exception as exc:  # unpickling errors come in many types
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"cannot load the model {path}: {msg}") from None
    if not hasattr(model, "predict"):
        raise UsageError(f"{path} holds a {type(model).__name__}, not a model")
    return model


def _columns(model, df, args):
    """The frame to feed the model: its own columns, by name."""
    from .data import pandas_index_column

    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        missing = [c for c in names if c not in df.columns]
        if missing:
            raise UsageError(
                f"{args.data} lacks column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(map(repr, missing))} that the model was trained on"
            )
        return df[list(names)]
    # A model fitted on an array (the digits job): all numeric columns, in order.
    drop = {args.id_column, pandas_index_column(df)}
    X = df[[c for c in df.columns if c not in drop]]
    n = getattr(model, "n_features_in_", X.shape[1])
    if X.shape[1] != n:
        raise UsageError(f"{args.data} has {X.shape[1]} feature columns; the model wants {n}")
    return X.to_numpy()


def run(args, out=None):
    """``predict``: returns 0; the predictions go to ``--output`` or stdout."""
    from .data import _require_pandas, read_csv

    pd = _require_pandas()
    out = sys.stdout if out is None else out
    if args.output:
        check_writable(args.output, "--output")
    model = load_model(args.model)
    if args.proba and not hasattr(model, "predict_proba"):
        raise UsageError(f"--proba: {args.model} is a regressor; it has no probabilities")
    df = read_csv(args.data)
    if args.id_column is not None and args.id_column not in df.columns:
        raise UsageError(
            f"--id: no column {args.id_column!r} in {args.data} "
            f"(columns: {', '.join(df.columns)})"
        )
    X = _columns(model, df, args)
    if isinstance(X, pd.DataFrame):
        from .data import _check_complete

        _check_complete(X, args.data, "column")
    try:
        result = pd.DataFrame({"prediction": model.predict(X)})
        if args.proba:
            proba = model.predict_proba(X)
            for j, label in enumerate(model.classes_):
                result[f"proba_{label}"] = proba[:, j]
    except (ValueError, TypeError) as exc:
        raise UsageError(f"cannot predict {args.data}: {exc}") from None
    if args.id_column is not None:
        result.insert(0, args.id_column, df[args.id_column].to_numpy())
    if args.output:
        try:
            result.to_csv(args.output, index=False)
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc}") from None
        print(f"wrote {len(result)} predictions to {os.path.basename(args.output)}",
              file=sys.stderr)
    else:
        result.to_csv(out, index=False)
    return 0
