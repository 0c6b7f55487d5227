"""Saving and loading fitted models: skops (safe to load) or joblib.

* ``.skops`` files (``pip install "fastbp[skops]"``) hold data, not code:
  loading one builds only types its reader trusts. :func:`load` trusts
  fastbp's two estimator classes and the types skops itself deems safe
  (NumPy, scikit-learn's estimators and helpers) and refuses a file with any
  other type. Use this format for files you share or receive.
* Any other suffix (``.joblib``, ``.pkl``) is joblib's pickle: fast and
  general, but loading a pickle runs whatever code the file asks for. Load
  only pickles you wrote yourself.

A fitted estimator's stored state holds only builtins and NumPy arrays (and
the scikit-learn objects scikit-learn's own MLP holds), so the estimator
class is the only fastbp type a skops file asks its reader to trust.
"""

import os
import zipfile

__all__ = ["save", "load", "UntrustedTypesError"]


class UntrustedTypesError(TypeError):
    """A skops file holds types :func:`load` does not trust.

    Attributes
    ----------
    types : list of str
        The untrusted types, as ``module.ClassName``.
    """

    def __init__(self, path, types):
        self.types = sorted(types)
        message = (
            f"{os.fspath(path)} holds types fastbp.load does not trust: "
            f"{', '.join(self.types)}. Loading them could run code from the "
            "file. If you trust the file's source, review these types and load it "
            "with skops.io.load(path, trusted=[...]) naming them."
        )
        if any(t.startswith("sklearn.callback.") for t in self.types):
            message += (
                " (The model was saved with the callbacks of set_callbacks(...): "
                "call set_callbacks() without arguments before saving.)"
            )
        super().__init__(message)


def _trusted_type_names():
    from .estimators import BPClassifier, BPRegressor

    return [f"{c.__module__}.{c.__qualname__}" for c in (BPClassifier, BPRegressor)]


def _import_skops(action):
    try:
        import skops.io
    except ImportError as exc:
        raise ImportError(
            f"{action} a .skops file needs skops: pip install \"fastbp[skops]\" "
            "(or save to a .joblib file instead)."
        ) from exc
    return skops.io


def _is_skops_file(path):
    # A skops file is a zip archive holding schema.json; a joblib file is a
    # (possibly compressed) pickle, never a zip archive.
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return "schema.json" in archive.namelist()


def save(estimator, path):
    """Save a fitted estimator (or a pipeline holding one) to a file.

    Use the skops format (``.skops``) for files you give to others: loading
    it runs no code from the file. A fastbp estimator stores only NumPy
    arrays and builtins, so its skops file asks its reader to trust the
    estimator class and nothing else of fastbp.

    Parameters
    ----------
    estimator : object
        What to save: a fitted :class:`~fastbp.BPClassifier` or
        :class:`~fastbp.BPRegressor`, or any scikit-learn object holding one
        (a ``Pipeline``, a ``GridSearchCV``).
    path : str or os.PathLike
        The file to write. Its suffix chooses the format: ``.skops`` writes
        skops (needs ``pip install "fastbp[skops]"``), safe to share and to
        load with :func:`load`; any other suffix (``.joblib``, ``.pkl``)
        writes joblib's pickle format.

    Returns
    -------
    path : str
        The path written.

    See Also
    --------
    load : Load a file written by ``save``.

    Notes
    -----
    Callbacks set with ``set_callbacks(...)`` are saved with the estimator,
    as scikit-learn does; :func:`load` does not trust their types. Call
    ``set_callbacks()`` (no arguments) before saving a model to share.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.datasets import load_iris
    >>> from fastbp import BPClassifier, load, save
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = BPClassifier(solver="lbfgs", max_iter=50, random_state=0).fit(X, y)
    >>> path = save(clf, os.path.join(tempfile.mkdtemp(), "model.joblib"))
    >>> bool((load(path).predict(X) == clf.predict(X)).all())
    True
    """
    path = os.fspath(path)
    if path.lower().endswith(".skops"):
        _import_skops("Saving").dump(estimator, path)
    else:
        import joblib

        joblib.dump(estimator, path)
    return path


def load(path):
    """Load a model written by :func:`save` (skops or joblib format).

    The format is recognised from the file's content. A skops file is loaded
    only if every type in it is trusted: fastbp's estimators and the types
    skops trusts by default (NumPy, scikit-learn's estimators and helpers).

    Parameters
    ----------
    path : str or os.PathLike
        A skops file (recognised by its content, whatever its suffix) or a
        joblib / pickle file.

    Returns
    -------
    estimator : object
        The saved object, predicting exactly as it did when saved; a fastbp
        estimator can continue training (``partial_fit``, ``warm_start``).

    Raises
    ------
    UntrustedTypesError
        If a skops file holds a type other than fastbp's estimators and the
        types skops trusts by default (NumPy, scikit-learn).
    ImportError
        If the file is a skops file and skops is not installed.

    See Also
    --------
    save : Write a model to a file.

    Notes
    -----
    Loading a joblib or pickle file runs whatever code the file asks for:
    load only joblib files you wrote yourself, and use ``.skops`` files to
    exchange models with others.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.datasets import load_iris
    >>> from fastbp import BPRegressor, load, save
    >>> X, y = load_iris(return_X_y=True)
    >>> reg = BPRegressor(solver="lbfgs", max_iter=50, random_state=0).fit(X, y)
    >>> path = save(reg, os.path.join(tempfile.mkdtemp(), "model.joblib"))
    >>> bool((load(path).predict(X) == reg.predict(X)).all())
    True
    """
    if _is_skops_file(path):
        sio = _import_skops("Loading")
        trusted = _trusted_type_names()
        untrusted = set(sio.get_untrusted_types(file=path)) - set(trusted)
        if untrusted:
            raise UntrustedTypesError(path, untrusted)
        return sio.load(path, trusted=trusted)
    import joblib

    return joblib.load(path)
