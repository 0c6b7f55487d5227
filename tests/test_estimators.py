"""BPClassifier / BPRegressor behaviour beyond scikit-learn's checks:
activations, dtypes, sparse input, labels, verbose output, writable
parameters, pickling."""

import io
import pickle
import re
import warnings
from contextlib import redirect_stdout

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor

from fastbp import BPClassifier, BPRegressor, backprop
from fastbp.backends import cython_available

pytestmark = [
    pytest.mark.usefixtures("one_blas_thread"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]

Xc, yc = make_classification(120, 6, n_informative=4, n_classes=3, random_state=0)
Xr, yr = make_regression(120, 6, n_informative=4, noise=1.0, random_state=0)
yr = yr / np.std(yr)
SMALL = dict(hidden_layer_sizes=(8,), random_state=0, max_iter=30, batch_size=32)
STOCH = dict(SMALL, learning_rate_init=0.01)


# ------------------------------------------------------------ activations


@pytest.mark.parametrize("activation", ["identity", "logistic", "sigmoid", "tanh", "relu", "softplus", "maxout"])
def test_every_hidden_activation_trains_a_useful_classifier(backend, activation):
    clf = BPClassifier(activation=activation, solver="lbfgs", hidden_layer_sizes=(8,),
                       max_iter=200, random_state=0, backend=backend).fit(Xc, yc)
    # identity units make a linear model, which this problem defeats
    assert clf.score(Xc, yc) > (0.55 if activation == "identity" else 0.85)
    assert clf.backend_ == backend


def test_sigmoid_alias_gives_the_logistic_model(backend):
    a = BPClassifier(activation="sigmoid", backend=backend, **STOCH).fit(Xc, yc)
    b = BPClassifier(activation="logistic", backend=backend, **STOCH).fit(Xc, yc)
    for u, v in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
        assert_array_equal(u, v)
    assert a.get_params()["activation"] == "sigmoid"  # the parameter is kept as given


def test_logistic_alias_uses_sklearns_logistic_init_factor(backend):
    # factor 2 (not 6) in the Glorot bound: identical to scikit-learn's init.
    sk = MLPClassifier(activation="logistic", max_iter=1, **{k: v for k, v in STOCH.items() if k != "max_iter"})
    bp = BPClassifier(activation="sigmoid", max_iter=1, backend=backend,
                      **{k: v for k, v in STOCH.items() if k != "max_iter"})
    sk.fit(Xc, yc)
    bp.fit(Xc, yc)
    for u, v in zip(sk.coefs_, bp.coefs_, strict=True):
        assert_allclose(v, u, rtol=1e-9)


def test_softplus_regressor_learns(backend):
    reg = BPRegressor(activation="softplus", solver="lbfgs", hidden_layer_sizes=(10,),
                      max_iter=200, random_state=0, backend=backend).fit(Xr, yr)
    assert reg.score(Xr, yr) > 0.9


@pytest.mark.parametrize("k", [2, 3])
def test_maxout_coefs_have_units_times_k_columns(backend, k):
    clf = BPClassifier(activation="maxout", maxout_pieces=k, backend=backend,
                       **{**STOCH, "hidden_layer_sizes": (5, 4)}).fit(Xc, yc)
    assert [c.shape for c in clf.coefs_] == [(6, 5 * k), (5, 4 * k), (4, 3)]
    assert [b.shape for b in clf.intercepts_] == [(5 * k,), (4 * k,), (3,)]
    assert clf.n_layers_ == 4


@pytest.mark.parametrize("k", [2, 3])
def test_maxout_predictions_take_the_max_of_each_units_pieces(backend, k):
    reg = BPRegressor(activation="maxout", maxout_pieces=k, backend=backend, **STOCH).fit(Xr, yr)
    H = Xr @ reg.coefs_[0] + reg.intercepts_[0]
    Z = H.reshape(len(Xr), -1, k).max(axis=2)
    assert_allclose(reg.predict(Xr), (Z @ reg.coefs_[1] + reg.intercepts_[1]).ravel(), rtol=1e-10)


def test_maxout_gradient_goes_to_the_first_piece_on_ties(backend):
    # Make both pieces of every unit identical, then take one full-batch
    # step without L2: piece 0 wins every tie, so piece 1 gets no gradient.
    reg = BPRegressor(activation="maxout", maxout_pieces=2, solver="sgd", backend=backend,
                      warm_start=True, alpha=0.0, **{**STOCH, "max_iter": 1, "batch_size": len(Xr)})
    reg.fit(Xr, yr)
    W = reg.coefs_[0]
    W[:, 1::2] = W[:, 0::2]
    reg.intercepts_[0][1::2] = reg.intercepts_[0][0::2]
    piece1 = W[:, 1::2].copy()
    reg.fit(Xr, yr)
    assert_array_equal(reg.coefs_[0][:, 1::2], piece1)
    assert not np.array_equal(reg.coefs_[0][:, 0::2], piece1)


@pytest.mark.parametrize("out_activation,low,high", [("logistic", 0, 1), ("tanh", -1, 1), ("relu", 0, np.inf), ("softplus", 0, np.inf), ("exp", 0, np.inf)])
def test_regressor_output_activation_bounds_predictions(backend, out_activation, low, high):
    y = (yr - yr.min()) / (yr.max() - yr.min()) * 0.8 + 0.1
    reg = BPRegressor(out_activation=out_activation, backend=backend, **STOCH).fit(Xr, y)
    assert reg.out_activation_ == out_activation
    p = reg.predict(Xr)
    assert np.all(p >= low) and np.all(p <= high)


def test_poisson_regressor_uses_exp_output(backend):
    y = np.random.RandomState(0).poisson(np.exp(0.3 * Xr[:, 0]))
    reg = BPRegressor(loss="poisson", backend=backend, **STOCH).fit(Xr, y)
    assert reg.out_activation_ == "exp"
    assert np.all(reg.predict(Xr) > 0)
    assert np.isfinite(reg.loss_)


# ----------------------------------------------------------------- dtypes


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_float32_X_keeps_float32_everywhere(backend, solver):
    X32 = Xc.astype(np.float32)
    clf = BPClassifier(solver=solver, backend=backend, **STOCH).fit(X32, yc)
    for w in clf.coefs_ + clf.intercepts_:
        assert w.dtype == np.float32
    if solver != "lbfgs":
        assert clf._opt_state.m.dtype == np.float32
        if solver == "adam":
            assert clf._opt_state.v.dtype == np.float32
    assert clf.predict_proba(X32).dtype == np.float32
    assert clf.predict_log_proba(X32).dtype == np.float32
    reg = BPRegressor(solver=solver, backend=backend, **STOCH).fit(Xr.astype(np.float32), yr)
    assert reg.coefs_[0].dtype == np.float32
    assert reg.predict(Xr.astype(np.float32)).dtype == np.float32


def test_float32_model_is_close_to_float64_model(backend):
    a = BPRegressor(solver="adam", backend=backend, **STOCH).fit(Xr, yr)
    b = BPRegressor(solver="adam", backend=backend, **STOCH).fit(Xr.astype(np.float32), yr)
    assert_allclose(b.predict(Xr.astype(np.float32)), a.predict(Xr), rtol=1e-3, atol=1e-3)


def test_integer_and_float64_X_train_in_float64(backend):
    clf = BPClassifier(backend=backend, **STOCH).fit(np.round(Xc * 10).astype(int), yc)
    assert clf.coefs_[0].dtype == np.float64
    assert clf.predict_proba(Xc).dtype == np.float64


# ----------------------------------------------------------------- sparse


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_sparse_X_gives_the_dense_model(backend, solver, fmt):
    X = Xc.copy()
    X[np.abs(X) < 0.8] = 0.0
    Xs = sp.csr_matrix(X).asformat(fmt)
    dense = BPClassifier(solver=solver, backend=backend, **{**STOCH, "max_iter": 10}).fit(X, yc)
    sparse = BPClassifier(solver=solver, backend=backend, **{**STOCH, "max_iter": 10}).fit(Xs, yc)
    for u, v in zip(dense.coefs_ + dense.intercepts_, sparse.coefs_ + sparse.intercepts_, strict=True):
        assert_allclose(v, u, rtol=1e-9, atol=1e-12)
    assert_allclose(sparse.predict_proba(Xs), dense.predict_proba(X), rtol=1e-9)


# ----------------------------------------------------------------- labels


def test_string_labels_multiclass(backend):
    names = np.array(["cat", "dog", "emu"])[yc]
    clf = BPClassifier(backend=backend, **STOCH).fit(Xc, names)
    assert_array_equal(clf.classes_, ["cat", "dog", "emu"])
    pred = clf.predict(Xc)
    assert pred.dtype.kind == "U" and set(pred) <= set(names)
    assert clf.score(Xc, names) > 0.7


def test_string_labels_binary_and_partial_fit(backend):
    names = np.where(yc == 1, "yes", "no")
    clf = BPClassifier(backend=backend, **STOCH)
    clf.partial_fit(Xc, names, classes=["no", "yes"])
    assert_array_equal(clf.classes_, ["no", "yes"])
    assert clf.predict_proba(Xc).shape == (len(Xc), 2)
    assert set(clf.predict(Xc)) <= {"no", "yes"}


def test_multilabel_indicator_targets(backend):
    Y = np.stack([yc == 0, yc == 1, (yc == 2) | (Xc[:, 0] > 0)], axis=1).astype(int)
    clf = BPClassifier(backend=backend, **STOCH).fit(Xc, Y)
    assert clf.out_activation_ == "logistic"
    assert clf.predict(Xc).shape == Y.shape
    assert clf.predict_proba(Xc).shape == Y.shape


def test_no_feature_names_for_arrays():
    clf = BPClassifier(backend="numpy", **STOCH).fit(Xc, yc)
    assert clf.n_features_in_ == 6
    assert not hasattr(clf, "feature_names_in_")


def test_feature_names_in_from_a_dataframe():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(Xc, columns=[f"f{i}" for i in range(6)])
    clf = BPClassifier(backend="numpy", **STOCH).fit(df, yc)
    assert_array_equal(clf.feature_names_in_, df.columns)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.predict(df)
    with pytest.warns(UserWarning, match="feature names"):
        clf.predict(Xc)


# ---------------------------------------------------------------- verbose


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_verbose_prints_iteration_and_loss(backend, solver):
    buf = io.StringIO()
    with redirect_stdout(buf):
        clf = BPClassifier(solver=solver, verbose=True, backend=backend, **{**STOCH, "max_iter": 4}).fit(Xc, yc)
    lines = [l for l in buf.getvalue().splitlines() if l.startswith("Iteration")]
    assert len(lines) == clf.n_iter_ >= 1
    for i, line in enumerate(lines, 1):
        m = re.fullmatch(r"Iteration (\d+), loss = (\d+\.\d{8})", line)
        assert m is not None, line
        assert int(m.group(1)) == i
    assert float(lines[-1].split("= ")[1]) == pytest.approx(clf.loss_curve_[-1], abs=1e-8)


def test_verbose_prints_stopping_message(backend):
    buf = io.StringIO()
    with redirect_stdout(buf):
        BPClassifier(verbose=True, tol=10.0, n_iter_no_change=2, backend=backend, **STOCH).fit(Xc, yc)
    assert "Training loss did not improve more than tol=10.000000 for 2 consecutive epochs. Stopping." in buf.getvalue()


# ----------------------------------------------------- writable parameters


def test_in_place_write_to_coefs_is_used_by_predict(backend):
    reg = BPRegressor(backend=backend, **STOCH).fit(Xr, yr)
    reg.coefs_[1][...] = 0.0
    reg.intercepts_[1][...] = 2.5
    assert_allclose(reg.predict(Xr), 2.5)


def test_reassigned_lists_are_used_by_predict(backend):
    clf = BPClassifier(backend=backend, **STOCH).fit(Xc, yc)
    ref = clone(clf).fit(Xc, yc)
    coefs = [c * 2.0 for c in clf.coefs_]
    clf.coefs_ = coefs
    clf.intercepts_ = [b.copy() for b in clf.intercepts_]
    H = np.maximum(Xc @ coefs[0] + clf.intercepts_[0], 0) @ coefs[1] + clf.intercepts_[1]
    P = np.exp(H - H.max(axis=1, keepdims=True))
    assert_allclose(clf.predict_proba(Xc), P / P.sum(axis=1, keepdims=True), rtol=1e-9)
    assert not np.allclose(clf.predict_proba(Xc), ref.predict_proba(Xc))


def _user_edit(model, how):
    new = [c * 0.5 for c in model.coefs_]
    if how == "in_place":
        for c, n in zip(model.coefs_, new, strict=True):
            c[...] = n
    else:
        model.coefs_ = new


@pytest.mark.parametrize("how", ["in_place", "reassign"])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_user_edits_are_used_by_the_next_partial_fit(backend, solver, how):
    params = dict(STOCH, solver=solver)
    sk = MLPRegressor(**params)
    bp = BPRegressor(backend=backend, **params)
    for m in (sk, bp):
        m.partial_fit(Xr, yr)
        _user_edit(m, how)
        m.partial_fit(Xr, yr)
    for u, v in zip(sk.coefs_ + sk.intercepts_, bp.coefs_ + bp.intercepts_, strict=True):
        assert_allclose(v, u, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("how", ["in_place", "reassign"])
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_user_edits_are_used_by_a_warm_started_fit(backend, solver, how):
    params = dict(STOCH, solver=solver, max_iter=5, warm_start=True)
    sk = MLPClassifier(**params)
    bp = BPClassifier(backend=backend, **params)
    for m in (sk, bp):
        m.fit(Xc, yc)
        _user_edit(m, how)
        m.fit(Xc, yc)
    for u, v in zip(sk.coefs_ + sk.intercepts_, bp.coefs_ + bp.intercepts_, strict=True):
        assert_allclose(v, u, rtol=1e-7, atol=1e-12)


def test_fitted_parameters_are_writable_views_of_one_buffer(backend):
    clf = BPClassifier(backend=backend, **STOCH).fit(Xc, yc)
    for w in clf.coefs_ + clf.intercepts_:
        assert w.flags.writeable
        assert np.shares_memory(w, clf._params)


# ---------------------------------------------------------------- pickling


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_pickle_round_trip(backend, solver):
    clf = BPClassifier(solver=solver, backend=backend, **STOCH).fit(Xc, yc)
    clf2 = pickle.loads(pickle.dumps(clf))
    assert_array_equal(clf2.predict_proba(Xc), clf.predict_proba(Xc))
    for u, v in zip(clf.coefs_ + clf.intercepts_, clf2.coefs_ + clf2.intercepts_, strict=True):
        assert_array_equal(u, v)
    assert clf2.loss_curve_ == clf.loss_curve_
    # The restored parameters are still live: an in-place write is used.
    clf2.intercepts_[-1][...] = [1e3, 0.0, 0.0]
    assert np.all(clf2.predict(Xc) == clf2.classes_[0])


def test_pickled_model_continues_training_identically(backend):
    reg = BPRegressor(solver="adam", backend=backend, **STOCH).partial_fit(Xr, yr)
    reg2 = pickle.loads(pickle.dumps(reg))
    reg.partial_fit(Xr, yr)
    reg2.partial_fit(Xr, yr)
    for u, v in zip(reg.coefs_ + reg.intercepts_, reg2.coefs_ + reg2.intercepts_, strict=True):
        assert_array_equal(u, v)


def test_pickle_float32_model(backend):
    reg = BPRegressor(backend=backend, **STOCH).fit(Xr.astype(np.float32), yr)
    reg2 = pickle.loads(pickle.dumps(reg))
    assert reg2.coefs_[0].dtype == np.float32
    assert_array_equal(reg2.predict(Xr.astype(np.float32)), reg.predict(Xr.astype(np.float32)))


# ------------------------------------------------------------ fit details


def test_partial_fit_leaves_n_iter_at_one_and_counts_samples(backend):
    clf = BPClassifier(backend=backend, **STOCH)
    for i in range(3):
        clf.partial_fit(Xc, yc, classes=np.unique(yc))
        assert clf.n_iter_ == 1
        assert clf.t_ == (i + 1) * len(Xc)
        assert len(clf.loss_curve_) == i + 1


def test_max_iter_reached_warns(backend):
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\) reached"):
        BPRegressor(backend=backend, **{**STOCH, "max_iter": 3, "tol": 0.0}).fit(Xr, yr)


def test_batch_size_larger_than_n_samples_warns_and_clips(backend):
    with pytest.warns(UserWarning, match="It is going to be clipped"):
        BPRegressor(backend=backend, **{**STOCH, "batch_size": 1000, "max_iter": 2}).fit(Xr, yr)


def test_early_stopping_restores_the_best_validation_parameters(backend):
    clf = BPClassifier(early_stopping=True, n_iter_no_change=3, backend=backend,
                       **{**STOCH, "max_iter": 60, "learning_rate_init": 0.05}).fit(Xc, yc)
    best = int(np.argmax(clf.validation_scores_))
    assert clf.best_validation_score_ == clf.validation_scores_[best]
    assert len(clf.validation_scores_) == clf.n_iter_
    # Refit up to the best epoch: its parameters are what the model holds.
    ref = BPClassifier(early_stopping=True, n_iter_no_change=1000, backend=backend,
                       **{**STOCH, "max_iter": best + 1, "learning_rate_init": 0.05}).fit(Xc, yc)
    for u, v in zip(ref.coefs_ + ref.intercepts_, clf.coefs_ + clf.intercepts_, strict=True):
        assert_allclose(v, u, rtol=1e-12)


def test_refit_without_warm_start_starts_over(backend):
    clf = BPClassifier(backend=backend, **STOCH)
    a = [c.copy() for c in clf.fit(Xc, yc).coefs_]
    b = clf.fit(Xc, yc).coefs_
    for u, v in zip(a, b, strict=True):
        assert_array_equal(u, v)


def test_fitted_loss_equals_backprop_loss_for_lbfgs(backend):
    reg = BPRegressor(solver="lbfgs", alpha=0.01, backend=backend, **SMALL).fit(Xr, yr)
    loss, _, _ = backprop(Xr, yr[:, None], reg.coefs_, reg.intercepts_, activation="relu",
                          alpha=0.01, backend=backend)
    assert reg.loss_ == pytest.approx(loss, rel=1e-10)


def test_auto_backend_reports_what_ran():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        reg = BPRegressor(backend="auto", **STOCH).fit(Xr, yr)
    assert reg.backend_ == ("cython" if cython_available() else "numpy")


def test_binary_predict_proba_keeps_small_probabilities_of_the_negative_class(backend):
    y = (yc == 1).astype(int)
    clf = BPClassifier(backend=backend, **STOCH).fit(Xc, y)
    clf.coefs_[-1][...] = 0.0
    clf.intercepts_[-1][...] = 50.0  # logit 50: p(1) rounds to 1.0
    P = clf.predict_proba(Xc[:3])
    assert_allclose(P[:, 0], 1 / (1 + np.exp(50.0)), rtol=1e-12)  # not 1 - 1.0 = 0
    assert_allclose(clf.predict_log_proba(Xc[:3])[:, 0], -50.0, rtol=1e-12)
    clf.intercepts_[-1][...] = 1e4  # beyond any exponent: floored, still finite
    assert np.isfinite(np.log(clf.predict_proba(Xc[:3]))).all()
    assert_allclose(np.log(clf.predict_proba(Xc[:3])), clf.predict_log_proba(Xc[:3]))


# ------------------------------------------- label encoding and accuracy


def _same_fitted_binarizer(a, b):
    assert vars(a).keys() == vars(b).keys()
    for key, value in vars(a).items():
        other = vars(b)[key]
        if isinstance(value, np.ndarray):
            assert value.dtype == other.dtype, key
            assert_array_equal(value, other)
        else:
            assert value == other, key


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8, np.uint64])
@pytest.mark.parametrize("n_classes", [2, 3, 9])
def test_integer_labels_are_encoded_as_label_binarizer_encodes_them(dtype, n_classes):
    from sklearn.preprocessing import LabelBinarizer

    from fastbp.estimators import _binarize, _fit_label_binarizer

    y = ((np.arange(60) * 7) % n_classes * 3 + 1).astype(dtype)
    ours, theirs = _fit_label_binarizer(y), LabelBinarizer().fit(y)
    _same_fitted_binarizer(ours, theirs)
    for labels in (y, y[:5], y[::-1], np.array([y[0]], dtype=dtype)):
        expected = theirs.transform(labels).astype(bool)
        got = _binarize(ours, labels)
        assert got.dtype == expected.dtype and got.shape == expected.shape
        assert_array_equal(got, expected)


@pytest.mark.parametrize("y", [
    np.array(["b", "a", "c", "a"]),  # strings
    np.array([1.0, 0.0, 1.0, 0.0]),  # integral floats
    np.array([3, 3, 3]),  # one class
    np.array([[1, 0], [0, 1], [1, 1]]),  # multilabel
])
def test_other_labels_are_encoded_by_label_binarizer(y):
    from sklearn.preprocessing import LabelBinarizer

    from fastbp.estimators import _binarize, _fit_label_binarizer

    ours, theirs = _fit_label_binarizer(y), LabelBinarizer().fit(y)
    _same_fitted_binarizer(ours, theirs)
    assert_array_equal(_binarize(ours, y), theirs.transform(y).astype(bool))


@pytest.mark.parametrize("n_classes", [2, 4])
def test_labels_outside_the_classes_are_encoded_by_label_binarizer(n_classes):
    from sklearn.preprocessing import LabelBinarizer

    from fastbp.estimators import _binarize

    lb = LabelBinarizer().fit(np.arange(n_classes) * 2)
    for labels in (np.array([0, 1, 2]), np.array([-1, 0]), np.array([2 * n_classes])):
        assert_array_equal(_binarize(lb, labels), lb.transform(labels).astype(bool))


def test_accuracy_of_integer_labels_equals_accuracy_score():
    from sklearn.metrics import accuracy_score

    from fastbp.estimators import _accuracy

    rng = np.random.default_rng(0)
    for n in (1, 7, 1000):
        for dtype_true, dtype_pred in ((np.int64, np.int64), (np.int32, np.int64), (np.uint8, np.int16)):
            y_true = rng.integers(0, 3, n).astype(dtype_true)
            y_pred = rng.integers(0, 3, n).astype(dtype_pred)
            got = _accuracy(y_true, y_pred)
            assert type(got) is float
            assert got == accuracy_score(y_true, y_pred)


def test_accuracy_of_other_targets_keeps_accuracy_scores_results_and_errors():
    from sklearn.metrics import accuracy_score

    from fastbp.estimators import _accuracy

    y = np.array([0, 1, 2, 1])
    weights = np.array([1.0, 2.0, 0.5, 1.0])
    pred = np.array([0, 2, 2, 1])
    assert _accuracy(y, pred, weights) == accuracy_score(y, pred, sample_weight=weights)
    assert _accuracy(["a", "b"], np.array(["a", "a"])) == 0.5
    assert _accuracy(np.eye(3, dtype=int), np.eye(3, dtype=int)[::-1]) == accuracy_score(
        np.eye(3, dtype=int), np.eye(3, dtype=int)[::-1])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        _accuracy(y, pred[:3])
    with pytest.raises(ValueError, match="continuous"):
        _accuracy(np.array([0.5, 1.0, 0.0, 2.0]), pred)


@pytest.mark.parametrize("labels", ["int", "str", "multilabel"])
def test_score_is_the_accuracy_of_predict(labels):
    from sklearn.metrics import accuracy_score

    y = {"int": yc, "str": np.array(["ant", "bee", "cat"])[yc],
         "multilabel": np.stack([yc == 0, yc == 1], axis=1).astype(int)}[labels]
    clf = BPClassifier(**STOCH).fit(Xc, y)
    weights = np.linspace(0.5, 2.0, len(yc))
    assert clf.score(Xc, y) == accuracy_score(y, clf.predict(Xc))
    assert clf.score(Xc, y, weights) == accuracy_score(y, clf.predict(Xc), sample_weight=weights)
    assert clf.score(Xc[:10], y[:10]) == accuracy_score(y[:10], clf.predict(Xc[:10]))


@pytest.mark.parametrize("options", [dict(neg_label=-1), dict(pos_label=2), dict(sparse_output=True)])
def test_binarizers_of_other_options_encode_as_they_do(options):
    from sklearn.preprocessing import LabelBinarizer

    from fastbp.estimators import _binarize

    y = np.array([0, 1, 2, 1, 0])
    lb = LabelBinarizer(**options).fit(y)
    expected = lb.transform(y).astype(bool)
    got = _binarize(lb, y)
    assert type(got) is type(expected)
    assert_array_equal(got.toarray() if options.get("sparse_output") else got,
                       expected.toarray() if options.get("sparse_output") else expected)


@pytest.mark.parametrize("classes", [np.array([3, 7]), np.array(["no", "yes"]),
                                     np.array([0, 1, 2, 5]), np.array(["a", "b", "c"])])
def test_scores_are_decoded_as_label_binarizer_decodes_them(classes):
    from sklearn.preprocessing import LabelBinarizer

    from fastbp.estimators import _decode

    lb = LabelBinarizer().fit(classes)
    rng = np.random.default_rng(0)
    shape = (40,) if len(classes) == 2 else (40, len(classes))
    scores = rng.random(shape).astype(np.float32)
    scores[:4] = 0.5  # on the threshold; ties (the first arg-max wins)
    scores[5] = np.nan
    expected = lb.inverse_transform(scores)
    got = _decode(lb, scores)
    assert got.dtype == expected.dtype
    assert_array_equal(got, expected)


def test_multilabel_scores_are_decoded_by_label_binarizer():
    from sklearn.preprocessing import LabelBinarizer

    from fastbp.estimators import _decode

    lb = LabelBinarizer().fit(np.array([[1, 0, 1], [0, 1, 0]]))
    scores = np.array([[0.9, 0.2, 0.6], [0.1, 0.7, 0.4]])
    assert_array_equal(_decode(lb, scores), lb.inverse_transform(scores))
