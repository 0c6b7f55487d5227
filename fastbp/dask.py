"""Dask helpers: out-of-core training on dask arrays (``pip install "fastbp[dask]"``).

Two ways to train a fastbp model on data that does not fit in memory:

* :func:`partial_fit_chunks` (this module) streams the row-blocks of a
  :class:`dask.array.Array` through ``partial_fit``, computing one block at a
  time, so only one block is ever in memory. It needs only ``dask``.
* ``dask_ml.wrappers.Incremental(BPClassifier(...))`` does the same from the
  dask-ml package (works with scikit-learn 1.9; see docs/distributed.md).

Hyper-parameter searches over a Dask cluster need no helper: scikit-learn's
searches run on Dask through joblib (``with joblib.parallel_backend("dask"):``).

``dask`` is imported lazily: importing this module without dask installed
works, calling :func:`partial_fit_chunks` then raises an ImportError naming
the extra.
"""

import numpy as np

__all__ = ["partial_fit_chunks", "dask_available"]

_DASK_HINT = (
    "fastbp.dask needs dask, an optional dependency of fastbp: "
    "pip install \"fastbp[dask]\" (or pip install \"dask[distributed]\")."
)


def dask_available():
    """Whether ``dask.array`` can be imported.

    Returns
    -------
    available : bool
    """
    try:
        import dask.array  # noqa: F401
    except ImportError:
        return False
    return True


def _dask_array():
    try:
        import dask.array as da
    except ImportError as exc:
        raise ImportError(_DASK_HINT) from exc
    return da


def _as_dask(da, a, name):
    if a is None:
        return None
    if not isinstance(a, da.Array):
        a = da.from_array(np.asarray(a), chunks=-1)
    if a.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D or 2-D, got {a.ndim} dimensions.")
    return a


def partial_fit_chunks(
    estimator,
    X,
    y,
    *,
    classes=None,
    sample_weight=None,
    epochs=1,
    shuffle_blocks=False,
    random_state=None,
    scheduler=None,
):
    """Train ``estimator`` by streaming the row-blocks of dask arrays through
    ``partial_fit``.

    Each block is computed (read, decompressed, ...) right before its
    ``partial_fit`` call and dropped after it, so memory holds one block at a
    time; the model itself stays in this process. One ``partial_fit`` call is
    one epoch of the stochastic solver over the block (minibatches of
    ``batch_size`` rows inside it), so one pass over all blocks is one epoch
    over the data.

    Parameters
    ----------
    estimator : BPClassifier or BPRegressor
        The estimator to train, with solver "sgd" or "adam" (partial_fit is
        not defined for "lbfgs") and ``early_stopping=False``. It is trained
        in place; if it is already fitted, training continues from its
        weights.
    X : dask.array.Array or array-like of shape (n_samples, n_features)
        Training data. Its row chunks are the blocks; columns are merged into
        one chunk.
    y : dask.array.Array or array-like of shape (n_samples,) or (n_samples, n_outputs)
        Targets; rechunked to X's row chunks.
    classes : array-like of shape (n_classes,), default=None
        All classes of a classification problem, needed by the first
        ``partial_fit`` of a classifier. When None and the estimator is an
        unfitted classifier, they are computed with ``dask.array.unique(y)``
        (one extra pass over ``y``).
    sample_weight : dask.array.Array or array-like of shape (n_samples,), default=None
        Per-sample weights, rechunked to X's row chunks.
    epochs : int, default=1
        Number of passes over all blocks.
    shuffle_blocks : bool, default=False
        Visit the blocks in a new random order in every pass (rows inside a
        block are shuffled by the estimator itself when ``shuffle=True``).
    random_state : int, RandomState instance or None, default=None
        Seeds the block order when ``shuffle_blocks=True``.
    scheduler : str or None, default=None
        Dask scheduler for computing the blocks (e.g. "threads",
        "synchronous"); None uses the current default (a distributed
        ``Client`` when one is active).

    Returns
    -------
    estimator : BPClassifier or BPRegressor
        The trained estimator (the same object).

    Raises
    ------
    ImportError
        If dask is not installed.
    ValueError
        If X and y (or sample_weight) have different numbers of rows, or
        ``epochs < 1``.

    Examples
    --------
    >>> import dask.array as da
    >>> from fastbp import BPClassifier
    >>> from fastbp.dask import partial_fit_chunks
    >>> X = da.random.RandomState(0).normal(size=(10_000, 20), chunks=(2_500, 20))
    >>> y = (X[:, 0] + X[:, 1] > 0).astype(int)
    >>> clf = partial_fit_chunks(BPClassifier((16,), random_state=0), X, y,
    ...                          classes=[0, 1], epochs=2)
    >>> clf.t_
    20000
    """
    from sklearn.base import is_classifier
    from sklearn.utils import check_random_state

    da = _dask_array()
    if int(epochs) < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}.")
    X = _as_dask(da, X, "X")
    y = _as_dask(da, y, "y")
    sample_weight = _as_dask(da, sample_weight, "sample_weight")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {X.shape}.")
    for name, a in (("y", y), ("sample_weight", sample_weight)):
        if a is not None and a.shape[0] != X.shape[0]:
            raise ValueError(
                f"X has {X.shape[0]} rows but {name} has {a.shape[0]}."
            )

    X = X.rechunk({1: -1})
    row_chunks = X.chunks[0]
    y = y.rechunk((row_chunks,) + ((-1,) if y.ndim == 2 else ()))
    if sample_weight is not None:
        sample_weight = sample_weight.rechunk((row_chunks,))

    fitted = hasattr(estimator, "coefs_")
    kwargs = {}
    if is_classifier(estimator) and not fitted:
        if classes is None and y.ndim == 1:
            classes = da.unique(y).compute(scheduler=scheduler)
        if classes is not None:
            kwargs["classes"] = np.asarray(classes)

    rng = check_random_state(random_state)
    n_blocks = len(row_chunks)
    compute_kw = {} if scheduler is None else {"scheduler": scheduler}
    for _ in range(int(epochs)):
        order = rng.permutation(n_blocks) if shuffle_blocks else range(n_blocks)
        for i in order:
            parts = [X.blocks[i, 0], y.blocks[(i, 0) if y.ndim == 2 else i]]
            if sample_weight is not None:
                parts.append(sample_weight.blocks[i])
            parts = da.compute(*parts, **compute_kw)
            sw = parts[2] if sample_weight is not None else None
            if parts[0].shape[0] == 0:
                continue
            estimator.partial_fit(parts[0], parts[1], sample_weight=sw, **kwargs)
            kwargs = {}
    return estimator
