"""CSV files in, feature frame and target out (read with pandas).

The fast path is one :func:`pandas.read_csv`. Only when something is wrong
(a missing or non-numeric value, a row with too few fields) is the file
scanned again with :mod:`csv`, to name the line and the column in a one-line
error.
"""

import csv
import math
import re

from .options import UsageError, check_readable

# Integer targets with more distinct values than this are taken as a
# quantity to regress on, not as class labels (diabetes: 214 values).
MAX_INTEGER_CLASSES = 20

# Cells that pandas reads as missing by default.
_NA_CELLS = {
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
    "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
}


def _require_pandas():
    try:
        import pandas as pd
    except ImportError:
        raise UsageError(
            'reading CSV files needs pandas, which is not installed: pip install "fastbp[cli]"'
        ) from None
    return pd


def read_csv(path):
    """Read a CSV file with a header row into a DataFrame.

    Blank lines are skipped, column names are stripped, and the first line
    is always the header (pandas never turns a column into the index).

    Raises
    ------
    UsageError
        For a missing, unreadable or empty file, a header without data rows,
        or a row with more fields than the header.
    """
    pd = _require_pandas()
    check_readable(path, "CSV file")
    try:
        df = pd.read_csv(path, index_col=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise UsageError(f"CSV file {path} is empty") from None
    except pd.errors.ParserError as exc:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if m:
            want, line, saw = m.groups()
            raise UsageError(f"{path} line {line}: {saw} fields, the header has {want}") from None
        raise UsageError(f"cannot read CSV file {path}: {_first_line(exc)}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"cannot read CSV file {path}: {_first_line(exc)}") from None
    df.columns = [str(c).strip() for c in df.columns]
    if len(df) == 0:
        raise UsageError(f"CSV file {path} has a header but no data rows")
    return df


def _first_line(exc):
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def pandas_index_column(df):
    """The name of a leading index column as pandas writes it, else None.

    ``DataFrame.to_csv`` writes the default index as an unnamed first column
    holding 0, 1, ..., n-1; pandas reads its empty header cell as
    ``"Unnamed: 0"``.
    """
    import numpy as np

    first = df.columns[0]
    if not first.startswith("Unnamed: 0") or len(df.columns) < 2:
        return None
    col = df[first]
    if col.dtype.kind not in "iu" or not np.array_equal(col.to_numpy(), np.arange(len(df))):
        return None
    return first


# ------------------------------------------------------------ locating bad cells


def _locate(path, column, bad):
    """First ``(line, cell)`` in ``column`` where ``bad(cell)`` holds.

    Raises the ragged-row error instead if a row with a different number of
    fields than the header comes first (pandas fills short rows with NaN).
    Returns ``(None, None)`` if nothing is found.
    """
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
        reader = csv.reader(fh, skipinitialspace=True)
        header = None
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [h.strip() for h in row]
                if column not in header:
                    return None, None
                j = header.index(column)
                continue
            if len(row) != len(header):
                raise UsageError(
                    f"{path} line {reader.line_num}: {len(row)} fields, "
                    f"the header has {len(header)}"
                )
            if bad(row[j]):
                return reader.line_num, row[j].strip()
    return None, None


def _is_missing(cell):
    text = cell.strip()
    if text in _NA_CELLS:
        return True
    try:
        return not math.isfinite(float(text))
    except ValueError:
        return False


def _is_not_number(cell):
    if _is_missing(cell):
        return False
    try:
        float(cell)
    except ValueError:
        return True
    return False


def _where(path, line):
    return f"{path} line {line}" if line is not None else f"{path}"


def _check_complete(df, path, what):
    """No NaN / inf in any column of ``df``; the first one found is named."""
    import numpy as np

    for col in df.columns:
        values = df[col]
        missing = values.isna().to_numpy()
        if values.dtype.kind == "f":
            missing = missing | ~np.isfinite(values.to_numpy())
        if missing.any():
            line, cell = _locate(path, col, _is_missing)
            if not cell:
                raise UsageError(f"{_where(path, line)}: missing value in {what} {col!r}")
            raise UsageError(
                f"{_where(path, line)}: missing or infinite value {cell!r} in {what} {col!r}"
            )


# ------------------------------------------------------------ columns


def _check_known(names, df, option, path):
    unknown = [c for c in names if c not in df.columns]
    if unknown:
        raise UsageError(
            f"{option}: no column {unknown[0]!r} in {path} "
            f"(columns: {', '.join(df.columns)})"
        )


def select_features(df, path, *, target=None, features=None, drop=None, categorical="auto"):
    """Choose and check the feature columns of ``df``.

    Parameters
    ----------
    df : DataFrame
        As read by :func:`read_csv`.
    path : str
        The file's name, for the messages.
    target : str, default=None
        The target column, never a feature.
    features, drop : list of str, default=None
        ``--features`` (keep only these) and ``--drop`` (leave these out).
    categorical : "auto" or list of str, default="auto"
        Columns to one-hot encode; "auto": every non-numeric column.

    Returns
    -------
    X : DataFrame
        The feature columns, in the file's order.
    numeric, categories : list of str
        The feature columns to scale and to one-hot encode.
    notes : list of str
        What was decided on the user's behalf (printed by the caller).

    Raises
    ------
    UsageError
        For unknown column names, no features left, missing values, or a
        numeric-looking column with a stray non-number in it.
    """
    import pandas as pd

    notes = []
    _check_known(features or [], df, "--features", path)
    _check_known(drop or [], df, "--drop", path)
    if categorical != "auto":
        _check_known(categorical, df, "--categorical", path)
    if target is not None and target in (features or []):
        raise UsageError(f"--features: {target!r} is the target, it cannot be a feature")
    if features is not None:
        columns = [c for c in df.columns if c in features]
    else:
        columns = [c for c in df.columns if c != target]
        index = pandas_index_column(df)
        if index is not None and index not in (drop or []):
            columns.remove(index)
            notes.append("ignoring the first column: an unnamed 0..n-1 index, as pandas writes it")
    columns = [c for c in columns if c not in (drop or [])]
    if not columns:
        raise UsageError(f"no feature columns left in {path}")
    if categorical != "auto":
        outside = [c for c in categorical if c not in columns]
        if outside:
            raise UsageError(f"--categorical: {outside[0]!r} is not a feature column")
    X = df[columns]
    _check_complete(X, path, "feature column")

    cats = []
    for col in columns:
        numeric = pd.api.types.is_numeric_dtype(X[col])
        if categorical == "auto":
            if numeric:
                continue
            as_numbers = pd.to_numeric(X[col], errors="coerce")
            if as_numbers.notna().mean() >= 0.5:  # a number column with a stray word
                line, cell = _locate(path, col, _is_not_number)
                raise UsageError(
                    f"{_where(path, line)}: non-numeric value {cell!r} in feature column "
                    f"{col!r} (the column is otherwise numeric; fix the value, or list "
                    f"the column in --categorical to one-hot encode it)"
                )
            cats.append(col)
        elif col in categorical:
            cats.append(col)
        elif not numeric:
            line, cell = _locate(path, col, _is_not_number)
            raise UsageError(
                f"{_where(path, line)}: non-numeric value {cell!r} in feature column "
                f"{col!r} (not listed in --categorical)"
            )
    if cats:
        notes.append(f"one-hot encoding {len(cats)} categorical column"
                     f"{'s' if len(cats) > 1 else ''}: {', '.join(cats)}")
    numeric = [c for c in columns if c not in cats]
    return X, numeric, cats, notes


def target_column(df, path, target):
    """The target column of ``df`` (checked: present, no missing values)."""
    if target not in df.columns:
        raise UsageError(
            f"target column {target!r} not in {path} (columns: {', '.join(df.columns)})"
        )
    y = df[target]
    if y.isna().any():
        line, _ = _locate(path, target, _is_missing)
        raise UsageError(f"{_where(path, line)}: empty target value in column {target!r}")
    return y


def decide_task(y, task, target):
    """Classification or regression, and the rule that decided it.

    Parameters
    ----------
    y : Series
        The target column.
    task : {"auto", "classify", "regress"}
        ``--task``.
    target : str
        The column's name, for the messages.

    Returns
    -------
    regression : bool
    rule : str
        One line saying why, printed by the caller.
    """
    import numpy as np
    import pandas as pd

    numeric = pd.api.types.is_numeric_dtype(y) and y.dtype.kind != "b"
    if task == "regress":
        if not numeric:
            raise UsageError(f"--task regress: target column {target!r} is not numeric")
        return True, f"treating {target!r} as regression (--task regress)"
    n_distinct = y.nunique()
    if task == "classify":
        return False, f"treating {target!r} as classification: {n_distinct} classes (--task classify)"
    if not numeric:
        return False, (f"treating {target!r} as classification: {n_distinct} distinct "
                       f"labels (--task regress to override)")
    values = y.to_numpy(dtype=float)
    if not np.all(np.mod(values, 1) == 0):
        return True, f"treating {target!r} as regression: non-integer values"
    if n_distinct > MAX_INTEGER_CLASSES:
        return True, (f"treating {target!r} as regression: {n_distinct} distinct integer "
                      f"values (more than {MAX_INTEGER_CLASSES}; --task classify to override)")
    return False, (f"treating {target!r} as classification: {n_distinct} distinct integer "
                   f"values (at most {MAX_INTEGER_CLASSES}; --task regress to override)")
