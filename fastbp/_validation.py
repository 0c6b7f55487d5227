"""Input checks shared by the estimators and ``fastbp.backprop``.

The compiled kernels trust a sparse matrix's ``indptr`` and ``indices`` (and
so do some of scipy's own routines, e.g. ``sort_indices`` and ``tocsr``): a
malformed matrix would make them read or write out of bounds. Every public
entry point therefore calls :func:`check_sparse_structure` before anything
else touches a sparse ``X``.
"""

import numpy as np
import scipy.sparse as sp

_NAMES = {"csr": "CSR", "csc": "CSC", "bsr": "BSR", "coo": "COO"}


def _check_index_array(a, what):
    if not isinstance(a, np.ndarray) or a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(
            f"Malformed sparse {what}: it must be a 1-D integer array, got "
            f"{type(a).__name__} of dtype {getattr(a, 'dtype', None)} and shape "
            f"{getattr(a, 'shape', None)}."
        )


def _check_bounds(indices, limit, what, axis_name):
    if indices.size == 0:
        return
    low, high = indices.min(), indices.max()
    if low < 0 or high >= limit:
        bad = low if low < 0 else high
        raise ValueError(
            f"Malformed sparse {what}: it holds the {axis_name} index {int(bad)}, "
            f"outside [0, {limit})."
        )


def check_sparse_structure(X, name="X"):
    """Raise ValueError unless the sparse matrix ``X`` is well formed.

    CSR, CSC and BSR: ``indptr`` has one entry per row (column, block row)
    plus one, starts at 0, never decreases and ends at most at
    ``len(indices) == len(data)``; every stored index lies in
    ``[0, n_columns)`` (``[0, n_rows)`` for CSC). COO: the coordinates have
    the length of ``data`` and lie inside the shape. Other formats are built
    by scipy from checked parts and are not inspected.

    O(nnz) reads and O(n_rows) scratch; the matrix is never copied nor
    changed. Dense input is returned unchecked.

    Parameters
    ----------
    X : object
        The input; only scipy sparse matrices and arrays are checked.
    name : str, default="X"
        The argument's name in error messages.

    Returns
    -------
    X : object
        The input, unchanged.

    Raises
    ------
    ValueError
        Naming the first problem found.
    """
    if not sp.issparse(X):
        return X
    fmt = X.format
    if fmt not in _NAMES:
        return X
    what = f"{_NAMES[fmt]} {name}"
    n_rows, n_cols = X.shape
    data = X.data
    if fmt == "coo":
        coords = getattr(X, "coords", None) or (X.row, X.col)
        for axis, (c, limit) in enumerate(zip(coords, X.shape, strict=True)):
            _check_index_array(c, f"{what}: coordinates of axis {axis}")
            if len(c) != len(data):
                raise ValueError(
                    f"Malformed sparse {what}: {len(c)} coordinates along axis "
                    f"{axis} but {len(data)} stored values."
                )
            _check_bounds(c, limit, what, "row" if axis == 0 else "column")
        return X
    if fmt == "csc":
        major, minor, minor_name = n_cols, n_rows, "row"
    else:
        major, minor, minor_name = n_rows, n_cols, "column"
    if fmt == "bsr":
        r, c = X.blocksize
        major, minor = n_rows // r, n_cols // c
        minor_name = "block column"
    indptr, indices = X.indptr, X.indices
    _check_index_array(indptr, f"{what}: indptr")
    _check_index_array(indices, f"{what}: indices")
    if len(indptr) != major + 1:
        raise ValueError(
            f"Malformed sparse {what}: indptr has length {len(indptr)}, but a "
            f"matrix of shape {X.shape} needs {major + 1}."
        )
    if len(indices) != np.shape(data)[0]:
        raise ValueError(
            f"Malformed sparse {what}: indices has length {len(indices)} but "
            f"data has {np.shape(data)[0]} entries."
        )
    if indptr[0] != 0:
        raise ValueError(
            f"Malformed sparse {what}: indptr must start at 0, got {int(indptr[0])}."
        )
    if major and np.any(indptr[1:] < indptr[:-1]):
        raise ValueError(f"Malformed sparse {what}: indptr is not monotone non-decreasing.")
    nnz = int(indptr[-1])
    if nnz > len(indices):
        raise ValueError(
            f"Malformed sparse {what}: indptr ends at {nnz}, beyond the "
            f"{len(indices)} stored indices."
        )
    _check_bounds(indices[:nnz], minor, what, minor_name)
    return X


def csr_for_kernels(X, dtype=None):
    """``X`` (already checked) as a CSR matrix with sorted ``intp`` indices.

    The caller's arrays are never written to: unsorted or read-only parts
    are copied, the rest is shared.
    """
    X = sp.csr_matrix(X, dtype=dtype)  # a new wrapper; shares X's arrays when it can
    if not X.has_sorted_indices:
        X = X.copy()  # sort a copy, never the caller's indices and data
        X.sort_indices()
    # intp indices once, so no backend converts them per epoch.
    X.indices = X.indices.astype(np.intp, copy=False)
    X.indptr = X.indptr.astype(np.intp, copy=False)
    return X
