"""Input safety: malformed sparse matrices are rejected before any kernel or
scipy routine reads them, and the caller's data is never written to."""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

from fastbp import BPClassifier, BPRegressor, backprop

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

RNG = np.random.RandomState(0)
N, F = 24, 5
X = RNG.normal(size=(N, F))  # no zeros: every row stores all F entries
Y_CLS = np.arange(N) % 3
Y_REG = RNG.normal(size=N)
FAST = dict(hidden_layer_sizes=(4,), max_iter=2, random_state=0)

MALFORMED = {
    "index equal to n_features": "column index 5, outside \\[0, 5\\)",
    "negative index": "column index -1, outside \\[0, 5\\)",
    "indptr not monotone": "indptr is not monotone",
    "indptr beyond indices": "indptr ends at",
    "indptr of wrong length": "indptr has length",
    "indptr not starting at 0": "indptr must start at 0",
    "indices and data of different lengths": "indices has length",
}


def malformed_csr(kind, dense=X):
    """A CSR matrix of ``dense`` broken in one way (scipy's constructor would
    refuse most of these, so the arrays are changed afterwards)."""
    M = sp.csr_matrix(dense)
    if kind == "index equal to n_features":
        M.indices[7] = dense.shape[1]
    elif kind == "negative index":
        M.indices[7] = -1
    elif kind == "indptr not monotone":
        M.indptr[2] = M.indptr[3] + 1
    elif kind == "indptr beyond indices":
        M.indptr[-1] += 3
    elif kind == "indptr of wrong length":
        M.indptr = M.indptr[:-1].copy()
    elif kind == "indptr not starting at 0":
        M.indptr[0] = 1
    elif kind == "indices and data of different lengths":
        M.data = M.data[:-1].copy()
    else:
        raise AssertionError(kind)
    return M


@pytest.mark.parametrize("kind", MALFORMED)
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize("cls,y", [(BPClassifier, Y_CLS), (BPRegressor, Y_REG)])
def test_malformed_csr_is_rejected_by_training(backend, cls, y, method, kind):
    est = cls(**FAST, backend=backend)
    kw = {"classes": np.unique(y)} if method == "partial_fit" and cls is BPClassifier else {}
    with pytest.raises(ValueError, match="Malformed sparse CSR X: .*" + MALFORMED[kind]):
        getattr(est, method)(malformed_csr(kind), y, **kw)


@pytest.mark.parametrize("kind", MALFORMED)
@pytest.mark.parametrize(
    "method", ["predict", "predict_proba", "predict_log_proba", "score"]
)
def test_malformed_csr_is_rejected_by_prediction(backend, method, kind):
    clf = BPClassifier(**FAST, backend=backend).fit(X, Y_CLS)
    args = (Y_CLS,) if method == "score" else ()
    with pytest.raises(ValueError, match="Malformed sparse CSR X: .*" + MALFORMED[kind]):
        getattr(clf, method)(malformed_csr(kind), *args)


@pytest.mark.parametrize("kind", MALFORMED)
def test_malformed_csr_is_rejected_by_backprop(backend, kind):
    coefs = [np.full((F, 3), 0.1), np.full((3, 1), 0.1)]
    intercepts = [np.zeros(3), np.zeros(1)]
    with pytest.raises(ValueError, match="Malformed sparse CSR X: .*" + MALFORMED[kind]):
        backprop(malformed_csr(kind), Y_REG[:, None], coefs, intercepts, backend=backend)


def test_malformed_csc_is_rejected_before_conversion(backend):
    M = sp.csc_matrix(X)
    M.indices[4] = N  # a row index one past the last row
    with pytest.raises(ValueError, match="Malformed sparse CSC X: .* row index 24"):
        BPRegressor(**FAST, backend=backend).fit(M, Y_REG)


def test_coo_with_coordinates_outside_the_shape_is_rejected(backend):
    M = sp.coo_matrix(X)
    M.col[3] = F
    with pytest.raises(ValueError, match="Malformed sparse COO X: .* column index 5"):
        BPRegressor(**FAST, backend=backend).fit(M, Y_REG)


def test_well_formed_sparse_matrices_pass_the_check_unchanged():
    from fastbp._validation import check_sparse_structure

    for M in (sp.csr_matrix(X), sp.csc_matrix(X), sp.coo_matrix(X), sp.bsr_matrix(X),
              sp.csr_array(X), sp.csr_matrix((N, F)), sp.lil_matrix(X)):
        assert check_sparse_structure(M) is M
    # trailing storage beyond indptr[-1] is legal (scipy ignores it)
    M = sp.csr_matrix(X)
    M.indptr[-1] -= 2
    M.indptr[-2] = min(M.indptr[-2], M.indptr[-1])
    assert check_sparse_structure(M) is M


# --------------------------------------------------- the caller's data


def unsorted_csr(dense):
    """CSR of ``dense`` whose indices run backwards within every row."""
    M = sp.csr_matrix(dense)
    for r in range(M.shape[0]):
        a, b = M.indptr[r], M.indptr[r + 1]
        M.indices[a:b] = M.indices[a:b][::-1].copy()
        M.data[a:b] = M.data[a:b][::-1].copy()
    M.has_sorted_indices = False
    return M


def read_only(M):
    for a in (M.data, M.indices, M.indptr):
        a.setflags(write=False)
    return M


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_fit_on_unsorted_csr_leaves_the_callers_arrays_unchanged(backend, solver):
    M = unsorted_csr(X)
    before = [M.indices.copy(), M.data.copy(), M.indptr.copy()]
    reg = BPRegressor(**FAST, solver=solver, backend=backend).fit(M, Y_REG)
    reg.predict(M)
    reg.score(M, Y_REG)
    assert_array_equal(M.indices, before[0])
    assert_array_equal(M.data, before[1])
    assert_array_equal(M.indptr, before[2])
    # ... and it trains the model the sorted matrix trains.
    ref = BPRegressor(**FAST, solver=solver, backend=backend).fit(sp.csr_matrix(X), Y_REG)
    assert_allclose(reg.predict(X), ref.predict(X), rtol=1e-12)


@pytest.mark.parametrize("unsorted", [False, True])
def test_read_only_csr_works_everywhere(backend, unsorted):
    M = read_only(unsorted_csr(X) if unsorted else sp.csr_matrix(X))
    clf = BPClassifier(**FAST, backend=backend).fit(M, Y_CLS)
    clf.partial_fit(M, Y_CLS)
    clf.predict(M)
    clf.predict_proba(M)
    clf.predict_log_proba(M)
    clf.score(M, Y_CLS)
    coefs = [np.full((F, 3), 0.1), np.full((3, 1), 0.1)]
    backprop(M, Y_REG[:, None], coefs, [np.zeros(3), np.zeros(1)], backend=backend)


@pytest.mark.parametrize("kind", ["setflags", "memmap"])
def test_read_only_dense_inputs_work_everywhere(backend, kind, tmp_path):
    if kind == "memmap":
        path = tmp_path / "X.npy"
        np.save(path, X)
        Xr = np.load(path, mmap_mode="r")
    else:
        Xr = X.copy()
        Xr.setflags(write=False)
    y = Y_REG.copy()
    w = np.ones(N)
    for a in (y, w):
        a.setflags(write=False)
    for solver in ("sgd", "lbfgs"):
        reg = BPRegressor(**FAST, solver=solver, backend=backend).fit(Xr, y, sample_weight=w)
        reg.predict(Xr)
        reg.score(Xr, y, sample_weight=w)
    reg = BPRegressor(**FAST, solver="adam", backend=backend).fit(Xr, y)
    reg.partial_fit(Xr, y, sample_weight=w)
    coefs = [c.copy() for c in reg.coefs_]
    for c in coefs:
        c.setflags(write=False)
    backprop(Xr, y.reshape(-1, 1), coefs, reg.intercepts_, sample_weight=w, backend=backend)
