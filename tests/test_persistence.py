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
@pytest.mark.parametrize("activation", ["relu", "softplus", "maxout"])
def test_classifier_roundtrip(digits, backend, dtype, activation):
    X, y = digits
    X = X.astype(dtype)
    clf = BPClassifier((12,), activation=activation, max_iter=5, random_state=0,
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
