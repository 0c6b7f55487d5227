"""Persistence and interchange (issue #5, point 6).

pickle / joblib round trips give identical predictions, also across backends;
to_sklearn() gives an equivalent fitted scikit-learn MLP, and a clear error for
activations scikit-learn does not have.
"""

import io
import pickle

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits, make_regression
from sklearn.neural_network import MLPClassifier, MLPRegressor

from fastbp import BPClassifier, BPRegressor
from fastbp.backends import cython_available


pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:400] / 16.0, y[:400]


def _roundtrips(est):
    yield pickle.loads(pickle.dumps(est))
    buf = io.BytesIO()
    joblib.dump(est, buf)
    buf.seek(0)
    yield joblib.load(buf)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["relu", "softplus", "maxout", ("tanh", "elu")])
def test_classifier_roundtrip(digits, backend, dtype, activation):
    X, y = digits
    X = X.astype(dtype)
    hidden = (12,) if isinstance(activation, str) else (12, 7)
    clf = BPClassifier(hidden, activation=activation, max_iter=5, random_state=0,
                       backend=backend).fit(X, y)
    for loaded in _roundtrips(clf):
        assert loaded.coefs_[0].dtype == dtype
        np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
        np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
        assert loaded.loss_curve_ == clf.loss_curve_
        # the loaded model keeps training like the original
        a = pickle.loads(pickle.dumps(clf)).partial_fit(X, y)
        b = loaded.partial_fit(X, y)
        np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])


def test_pickling_does_not_touch_the_estimator(digits):
    X, y = digits
    clf = BPClassifier((8,), max_iter=3, random_state=0, backend="numpy").fit(X, y)
    before = dict(clf.__dict__)
    pickle.dumps(clf)
    assert set(clf.__dict__) == set(before)
    assert clf.coefs_[0].base is clf._params  # still views into the flat buffer


def test_regressor_roundtrip(backend):
    X, y = make_regression(n_samples=150, n_features=4, n_targets=2, random_state=0)
    reg = BPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=30,
                      random_state=0, backend=backend).fit(X, y / 100)
    for loaded in _roundtrips(reg):
        np.testing.assert_array_equal(loaded.predict(X), reg.predict(X))


@pytest.mark.skipif(not cython_available(), reason="compiled backend not built")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_roundtrip_across_backends(digits, dtype):
    X, y = digits
    X = X.astype(dtype)
    clf = BPClassifier((16,), max_iter=8, random_state=0, backend="cython").fit(X, y)
    loaded = pickle.loads(pickle.dumps(clf)).set_params(backend="numpy")
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X),
                               rtol=rtol, atol=1e-6)
    # and back: fitted with numpy, predicting with the compiled backend
    clf = BPClassifier((16,), max_iter=8, random_state=0, backend="numpy").fit(X, y)
    loaded = joblib.load(_dump(clf)).set_params(backend="cython")
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


def _dump(est):
    buf = io.BytesIO()
    joblib.dump(est, buf)
    buf.seek(0)
    return buf


# ------------------------------------------------------------------ to_sklearn


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "sigmoid", "identity"])
@pytest.mark.parametrize("n_classes", [2, 10])
def test_to_sklearn_classifier(digits, activation, n_classes):
    X, y = digits
    mask = y < n_classes
    X, y = X[mask], y[mask]
    clf = BPClassifier((16, 8), activation=activation, max_iter=10, random_state=0,
                       backend="numpy").fit(X, y)
    mlp = clf.to_sklearn()
    assert isinstance(mlp, MLPClassifier)
    assert mlp.activation == ("logistic" if activation == "sigmoid" else activation)
    assert mlp.out_activation_ == clf.out_activation_
    np.testing.assert_array_equal(mlp.classes_, clf.classes_)
    np.testing.assert_array_equal(mlp.predict(X), clf.predict(X))
    np.testing.assert_allclose(mlp.predict_proba(X), clf.predict_proba(X), rtol=1e-10,
                               atol=1e-12)
    assert mlp.n_iter_ == clf.n_iter_ and mlp.loss_curve_ == clf.loss_curve_
    # a copy: changing the scikit-learn model leaves the fastbp model alone
    mlp.coefs_[0][...] = 0
    assert np.any(clf.coefs_[0] != 0)
    # the converted model is a normal scikit-learn estimator: it can keep training
    mlp.partial_fit(X, y)


def test_to_sklearn_multilabel_and_float32(digits):
    X, y = digits
    Y = np.column_stack([y % 2, y > 4])
    clf = BPClassifier((16,), max_iter=10, random_state=0, backend="numpy").fit(
        X.astype(np.float32), Y)
    mlp = clf.to_sklearn()
    assert mlp.coefs_[0].dtype == np.float32
    np.testing.assert_array_equal(mlp.predict(X.astype(np.float32)),
                                  clf.predict(X.astype(np.float32)))


@pytest.mark.parametrize("loss, out", [("squared_error", None), ("poisson", None),
                                       ("squared_error", "tanh")])
def test_to_sklearn_regressor(loss, out):
    X, y = make_regression(n_samples=120, n_features=5, random_state=0)
    y = np.abs(y) / np.abs(y).max() if loss == "poisson" or out else y / y.std()
    reg = BPRegressor(loss=loss, out_activation=out, hidden_layer_sizes=(8,),
                      max_iter=10, random_state=0, backend="numpy").fit(X, y)
    mlp = reg.to_sklearn()
    assert isinstance(mlp, MLPRegressor) and mlp.loss == loss
    np.testing.assert_allclose(mlp.predict(X), reg.predict(X), rtol=1e-10, atol=1e-12)
    assert mlp.score(X, y) == pytest.approx(reg.score(X, y))


@pytest.mark.parametrize("activation", ["softplus", "maxout"])
def test_to_sklearn_unsupported_activation(digits, activation):
    X, y = digits
    clf = BPClassifier((8,), activation=activation, max_iter=2, random_state=0,
                       backend="numpy").fit(X, y)
    with pytest.raises(ValueError, match=f"no '{activation}' hidden activation"):
        clf.to_sklearn()


def test_to_sklearn_refuses_a_per_layer_activation_list(digits):
    X, y = digits
    clf = BPClassifier((8, 6), activation=["relu", "tanh"], max_iter=2, random_state=0,
                       backend="numpy").fit(X, y)
    with pytest.raises(ValueError, match="'relu', 'tanh'"):  # names the list
        clf.to_sklearn()


def test_to_sklearn_unsupported_output():
    X, y = make_regression(n_samples=60, n_features=3, random_state=0)
    reg = BPRegressor(out_activation="softplus", hidden_layer_sizes=(4,), max_iter=2,
                      random_state=0, backend="numpy").fit(X, np.abs(y))
    with pytest.raises(ValueError, match="no 'softplus' output activation"):
        reg.to_sklearn()


def test_to_sklearn_not_fitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="is not fitted yet"):
        BPClassifier().to_sklearn()


def test_to_sklearn_then_onnx(digits):
    skl2onnx = pytest.importorskip("skl2onnx", reason="skl2onnx not installed")
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    import onnxruntime as rt
    from skl2onnx.common.data_types import FloatTensorType

    X, y = digits
    X = X.astype(np.float32)
    clf = BPClassifier((16,), max_iter=10, random_state=0, backend="numpy").fit(X, y)
    onx = skl2onnx.convert_sklearn(
        clf.to_sklearn(), initial_types=[("X", FloatTensorType([None, X.shape[1]]))])
    sess = rt.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    labels = sess.run(None, {"X": X})[0]
    np.testing.assert_array_equal(labels, clf.predict(X))


# ------------------------------------------------------------ safe persistence
# Every fitted configuration round-trips through skops with no fastbp type to
# trust beyond the estimator class, predicts identically and keeps training.


def _multiclass(dtype=np.float64):
    X, y = load_digits(return_X_y=True)
    return (X[:300] / 16.0).astype(dtype), y[:300]


def _binary_strings(dtype=np.float64):
    X, y = _multiclass(dtype)
    return X, np.where(y % 2 == 0, "even", "odd")


def _multilabel(dtype=np.float64):
    X, y = _multiclass(dtype)
    return X, np.column_stack([y % 2, y > 4, y == 3]).astype(int)


def _sparse(dtype=np.float64):
    import scipy.sparse as sp

    X, y = _multiclass(dtype)
    return sp.csr_matrix(X), y


def _regression(dtype=np.float64, n_targets=1, positive=False):
    X, y = make_regression(n_samples=200, n_features=6, n_targets=n_targets,
                           random_state=0)
    y = y / np.abs(y).max()
    if positive:
        y = np.abs(y)
    return X.astype(dtype), y


# id -> (estimator factory, data factory)
CONFIGS = {
    "multiclass-adam-float64": (
        lambda b: BPClassifier((10,), max_iter=4, random_state=0, backend=b), _multiclass),
    "binary-strings-sgd-float32": (
        lambda b: BPClassifier((10, 6), solver="sgd", learning_rate="adaptive", max_iter=4,
                               random_state=0, backend=b),
        lambda: _binary_strings(np.float32)),
    "multilabel-lbfgs": (
        lambda b: BPClassifier((10,), solver="lbfgs", max_iter=15, random_state=0,
                               backend=b), _multilabel),
    "maxout-adam-float32": (
        lambda b: BPClassifier((6,), activation="maxout", maxout_pieces=3, max_iter=4,
                               random_state=0, backend=b),
        lambda: _multiclass(np.float32)),
    "per-layer-activations-adam": (
        lambda b: BPClassifier((6, 5, 4), activation=["maxout", "gelu", "leaky_relu"],
                               negative_slope=0.2, max_iter=4, random_state=0, backend=b),
        _multiclass),
    "sparse-adam": (
        lambda b: BPClassifier((10,), max_iter=4, random_state=0, backend=b), _sparse),
    "early-stopping-adam": (
        lambda b: BPClassifier((10,), early_stopping=True, max_iter=6, random_state=0,
                               backend=b), _multiclass),
    "regressor-multioutput-lbfgs": (
        lambda b: BPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=20,
                              random_state=0, backend=b),
        lambda: _regression(n_targets=2)),
    "regressor-poisson-sgd-float32": (
        lambda b: BPRegressor(loss="poisson", hidden_layer_sizes=(8,), solver="sgd",
                              learning_rate="invscaling", max_iter=4, random_state=0,
                              backend=b),
        lambda: _regression(np.float32, positive=True)),
    "regressor-early-stopping-maxout": (
        lambda b: BPRegressor(hidden_layer_sizes=(8,), activation="maxout",
                              early_stopping=True, max_iter=6, random_state=0, backend=b),
        _regression),
}


def _type_name(est):
    return f"{type(est).__module__}.{type(est).__qualname__}"


def _predictions(est, X):
    out = [est.predict(X)]
    if hasattr(est, "predict_proba"):
        out += [est.predict_proba(X), est.predict_log_proba(X)]
    return out


def _continue(est, X, y):
    """Train on: one partial_fit epoch (stochastic solvers, using the saved
    optimizer state), else a warm-started refit."""
    if est.solver == "lbfgs" or est.early_stopping:
        return est.set_params(warm_start=True, max_iter=3).fit(X, y)
    return est.partial_fit(X, y)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_skops_roundtrip_trusts_only_the_estimator_class(tmp_path, backend, config):
    sio = pytest.importorskip("skops.io", reason="skops not installed")
    make_est, make_data = CONFIGS[config]
    X, y = make_data()
    est = make_est(backend).fit(X, y)
    path = tmp_path / "model.skops"
    sio.dump(est, path)

    assert sio.get_untrusted_types(file=path) == [_type_name(est)]
    loaded = sio.load(path, trusted=[_type_name(est)])
    assert type(loaded) is type(est)
    for a, b in zip(_predictions(loaded, X), _predictions(est, X), strict=True):
        np.testing.assert_array_equal(a, b)
    assert loaded.coefs_[0].dtype == est.coefs_[0].dtype
    assert loaded.coefs_[0].base is loaded._params  # views into a rebuilt buffer
    for attr in ("loss_curve_", "n_iter_", "t_", "validation_scores_", "best_loss_",
                 "n_features_in_", "n_outputs_", "out_activation_", "backend_"):
        assert getattr(loaded, attr, None) == getattr(est, attr, None), attr
    if hasattr(est, "classes_"):
        np.testing.assert_array_equal(loaded.classes_, est.classes_)

    # The loaded model keeps training exactly as the original does.
    a, b = _continue(est, X, y), _continue(loaded, X, y)
    for wa, wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
        np.testing.assert_array_equal(wa, wb)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_optimizer_state_survives_a_roundtrip(tmp_path, solver):
    sio = pytest.importorskip("skops.io", reason="skops not installed")
    X, y = _multiclass()
    est = BPClassifier((10,), solver=solver, max_iter=3, random_state=0,
                       backend="numpy").fit(X, y)
    sio.dump(est, tmp_path / "m.skops")
    for loaded in (sio.load(tmp_path / "m.skops", trusted=[_type_name(est)]),
                   pickle.loads(pickle.dumps(est))):
        state, saved = loaded._opt_state, est._opt_state
        assert (state.solver, state.t, state.learning_rate) == (
            saved.solver, saved.t, saved.learning_rate)
        np.testing.assert_array_equal(state.m, saved.m)
        np.testing.assert_array_equal(state.v, saved.v)


def _leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


@pytest.mark.parametrize("config", list(CONFIGS))
def test_state_holds_only_arrays_and_builtins(config):
    from sklearn.preprocessing import LabelBinarizer

    make_est, make_data = CONFIGS[config]
    X, y = make_data()
    est = make_est("numpy").fit(X, y)
    plain = (str, int, float, bool, type(None), np.ndarray, np.generic)
    # and the scikit-learn / NumPy objects scikit-learn's own MLP stores
    sklearn_objects = (LabelBinarizer, np.random.RandomState)
    for leaf in _leaves(est.__getstate__()):
        assert isinstance(leaf, plain + sklearn_objects), type(leaf)


def test_loading_an_older_pickle_rebuilds_the_network(digits):
    # Files written before the plain state held the Network and OptState
    # objects and no flat buffer.
    X, y = digits
    clf = BPClassifier((8,), max_iter=3, random_state=0, backend="numpy").fit(X, y)
    old_state = {k: v for k, v in vars(clf).items() if k != "_params"}
    loaded = BPClassifier.__new__(BPClassifier)
    loaded.__setstate__(old_state)
    assert loaded.coefs_[0].base is loaded._params
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


@pytest.mark.parametrize("attr, value, match", [
    ("n_features_in_", 5, "n_features_in_=5|but X has 5 features"),
    ("coefs_", "swap", "do not form a network"),
    ("intercepts_", "drop", "lists of equal length"),
    ("_best_params", np.zeros(3), "_best_params"),
    ("maxout_pieces", 0, "do not form a network"),
])
def test_inconsistent_saved_state_is_refused(digits, attr, value, match):
    X, y = digits
    clf = BPClassifier((8, 6), activation="maxout", max_iter=2, random_state=0,
                       backend="numpy").fit(X, y)
    state = clf.__getstate__()
    if isinstance(value, str) and value == "swap":
        value = [state["coefs_"][1], state["coefs_"][0], state["coefs_"][2]]
    elif isinstance(value, str) and value == "drop":
        value = state["intercepts_"][:-1]
    state[attr] = value
    with pytest.raises(ValueError, match=match):
        BPClassifier.__new__(BPClassifier).__setstate__(state)


def test_inconsistent_optimizer_state_is_refused(digits):
    X, y = digits
    clf = BPClassifier((8,), max_iter=2, random_state=0, backend="numpy").fit(X, y)
    state = clf.__getstate__()
    state["_opt_state"]["attrs"]["v"] = np.zeros(3)
    with pytest.raises(ValueError, match="optimizer state does not match"):
        BPClassifier.__new__(BPClassifier).__setstate__(state)
    state["_opt_state"]["attrs"]["solver"] = "rmsprop"
    with pytest.raises(ValueError, match="unknown solver 'rmsprop'"):
        BPClassifier.__new__(BPClassifier).__setstate__(state)


# ----------------------------------------------------------- fastbp.save / load


@pytest.mark.parametrize("suffix", [".skops", ".joblib", ".pkl"])
def test_save_and_load(tmp_path, digits, suffix):
    import fastbp

    if suffix == ".skops":
        pytest.importorskip("skops.io", reason="skops not installed")
    X, y = digits
    clf = BPClassifier((8,), max_iter=3, random_state=0, backend="numpy").fit(X, y)
    path = fastbp.save(clf, tmp_path / f"model{suffix}")
    assert path == str(tmp_path / f"model{suffix}")
    with open(path, "rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"
    assert is_zip == (suffix == ".skops")  # the suffix chose the format
    loaded = fastbp.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_load_recognises_skops_files_by_content(tmp_path, digits):
    import fastbp

    pytest.importorskip("skops.io", reason="skops not installed")
    X, y = digits
    clf = BPClassifier((8,), max_iter=3, random_state=0, backend="numpy").fit(X, y)
    fastbp.save(clf, tmp_path / "model.skops")
    (tmp_path / "model.skops").rename(tmp_path / "model.bin")
    loaded = fastbp.load(tmp_path / "model.bin")
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


def test_load_trusts_scikit_learn_objects_around_the_estimator(tmp_path, digits):
    import fastbp
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pytest.importorskip("skops.io", reason="skops not installed")
    X, y = digits
    pipe = make_pipeline(StandardScaler(), BPRegressor(hidden_layer_sizes=(4,), max_iter=3,
                                                       random_state=0, backend="numpy"))
    pipe.fit(X, y.astype(float))
    loaded = fastbp.load(fastbp.save(pipe, tmp_path / "pipe.skops"))
    np.testing.assert_array_equal(loaded.predict(X), pipe.predict(X))


class _Payload:
    """A type no one has reviewed: loading it could run code."""


def test_load_refuses_untrusted_types(tmp_path, digits):
    import fastbp
    from fastbp.persistence import UntrustedTypesError

    pytest.importorskip("skops.io", reason="skops not installed")
    X, y = digits
    clf = BPClassifier((8,), max_iter=2, random_state=0, backend="numpy").fit(X, y)
    clf.payload_ = _Payload()
    path = fastbp.save(clf, tmp_path / "model.skops")
    with pytest.raises(UntrustedTypesError, match=r"test_persistence\._Payload") as info:
        fastbp.load(path)
    assert info.value.types == [f"{__name__}._Payload"]


def test_save_skops_without_skops_says_how_to_install(tmp_path, digits, monkeypatch):
    import sys

    import fastbp

    monkeypatch.setitem(sys.modules, "skops", None)
    monkeypatch.setitem(sys.modules, "skops.io", None)
    X, y = digits
    clf = BPClassifier((8,), max_iter=2, random_state=0, backend="numpy").fit(X, y)
    with pytest.raises(ImportError, match=r'pip install "fastbp\[skops\]"'):
        fastbp.save(clf, tmp_path / "model.skops")


def test_weights_assigned_as_lists_or_integers_survive_a_roundtrip(digits):
    X, y = digits
    clf = BPClassifier((8,), max_iter=2, random_state=0, backend="numpy").fit(X, y)
    coefs = [np.rint(c * 4) for c in clf.coefs_]
    clf.coefs_ = [c.astype(float) for c in coefs]
    expected = clf.predict_proba(X)
    clf.coefs_ = [c.astype(int) for c in coefs]
    clf.intercepts_ = [b.tolist() for b in clf.intercepts_]
    loaded = pickle.loads(pickle.dumps(clf))
    assert loaded.coefs_[0].dtype == np.float64 and loaded.coefs_[0].base is loaded._params
    np.testing.assert_array_equal(loaded.predict_proba(X), expected)


def test_untrusted_callbacks_get_a_hint(tmp_path, digits):
    import fastbp
    from sklearn.callback import ScoringMonitor

    from fastbp.persistence import UntrustedTypesError

    pytest.importorskip("skops.io", reason="skops not installed")
    X, y = digits
    clf = BPClassifier((8,), max_iter=2, random_state=0, backend="numpy")
    clf.set_callbacks(ScoringMonitor(scoring="accuracy")).fit(X, y)
    path = fastbp.save(clf, tmp_path / "model.skops")
    with pytest.raises(UntrustedTypesError, match=r"call set_callbacks\(\) without arguments"):
        fastbp.load(path)
    fastbp.save(clf.set_callbacks(), path)
    np.testing.assert_array_equal(fastbp.load(path).predict(X), clf.predict(X))
