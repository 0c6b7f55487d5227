"""``transform``: the activations of hidden layer ``transform_layer``, its
feature names, ``set_output`` and use as a Pipeline step."""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from fastbp import BPClassifier, BPRegressor
from fastbp.backends import cython_available

BACKENDS = ["numpy"] + (["cython"] if cython_available() else [])

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def data():
    return make_classification(n_samples=120, n_features=8, n_informative=5,
                               n_classes=3, random_state=0)


def _hidden(X, coefs, intercepts, f, layer):
    Z = X
    for W, b in zip(coefs[: layer + 1], intercepts[: layer + 1]):
        Z = f(Z @ W + b)
    return Z


def _relu(H):
    return np.maximum(H, 0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("transform_layer, layer", [(-1, 2), (0, 0), (1, 1), (-2, 1), (-3, 0)])
def test_transform_returns_the_chosen_hidden_layers_activations(data, backend, transform_layer,
                                                               layer):
    X, y = data
    clf = BPClassifier(hidden_layer_sizes=(7, 6, 5), max_iter=20, random_state=0,
                       backend=backend, transform_layer=transform_layer).fit(X, y)
    out = clf.transform(X)
    assert out.shape == (len(X), (7, 6, 5)[layer])
    assert_allclose(out, _hidden(X, clf.coefs_, clf.intercepts_, _relu, layer), rtol=1e-12,
                    atol=1e-14)


def test_transform_layer_can_change_after_fit_without_refitting(data):
    X, y = data
    clf = BPClassifier(hidden_layer_sizes=(7, 5), max_iter=10, random_state=0).fit(X, y)
    assert clf.transform(X).shape == (len(X), 5)
    assert clf.set_params(transform_layer=0).transform(X).shape == (len(X), 7)
    assert clf.get_feature_names_out().tolist() == [f"bpclassifier{i}" for i in range(7)]


def test_transform_applies_the_hidden_activation(data):
    X, y = data
    reg = BPRegressor(hidden_layer_sizes=(6,), activation="tanh", solver="lbfgs", max_iter=20,
                      random_state=0).fit(X, y.astype(float))
    assert_allclose(reg.transform(X), np.tanh(X @ reg.coefs_[0] + reg.intercepts_[0]),
                    rtol=1e-12)


@pytest.mark.parametrize("k", [2, 3])
def test_maxout_layer_gives_the_max_over_each_units_pieces(data, k):
    X, y = data
    clf = BPClassifier(hidden_layer_sizes=(5, 4), activation="maxout", maxout_pieces=k,
                       max_iter=10, random_state=0, transform_layer=0).fit(X, y)
    H = X @ clf.coefs_[0] + clf.intercepts_[0]
    expected = H.reshape(len(X), 5, k).max(axis=2)
    assert_allclose(clf.transform(X), expected, rtol=1e-12)
    assert len(clf.get_feature_names_out()) == 5


@pytest.mark.parametrize("transform_layer", [2, 5, -3, -10])
def test_out_of_range_transform_layer_is_a_value_error_naming_it(data, transform_layer):
    X, y = data
    clf = BPClassifier(hidden_layer_sizes=(4, 3), max_iter=5, random_state=0,
                       transform_layer=transform_layer).fit(X, y)  # fit does not need it
    msg = rf"transform_layer={transform_layer} is out of range: the network has 2 hidden layers"
    with pytest.raises(ValueError, match=msg):
        clf.transform(X)
    with pytest.raises(ValueError, match=msg):
        clf.get_feature_names_out()


def test_network_without_hidden_layers_has_nothing_to_transform(data):
    X, y = data
    clf = BPClassifier(hidden_layer_sizes=[], max_iter=5, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="this network has none"):
        clf.transform(X)


def test_transform_before_fit_raises_not_fitted():
    with pytest.raises(NotFittedError):
        BPClassifier().transform(np.zeros((2, 3)))
    with pytest.raises(NotFittedError):
        BPRegressor().get_feature_names_out()


def test_transform_checks_the_number_of_features(data):
    X, y = data
    clf = BPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.transform(X[:, :5])


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_input_gives_the_dense_result(data, fmt):
    X, y = data
    X = np.where(np.abs(X) < 0.5, 0.0, X)
    clf = BPClassifier(hidden_layer_sizes=(6,), max_iter=10, random_state=0).fit(X, y)
    assert_allclose(clf.transform(sp.csr_matrix(X).asformat(fmt)), clf.transform(X), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_output_dtype_is_predicts(data, dtype):
    X, y = data
    reg = BPRegressor(hidden_layer_sizes=(6,), max_iter=10, random_state=0).fit(
        X.astype(dtype), y.astype(dtype))
    assert reg.transform(X).dtype == reg.predict(X).dtype == dtype


def test_transform_follows_assigned_coefs(data):
    X, y = data
    clf = BPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X, y)
    clf.coefs_ = [np.ones((8, 4)), clf.coefs_[1]]
    assert_allclose(clf.transform(X), _relu(X @ np.ones((8, 4)) + clf.intercepts_[0]))


def test_feature_names_are_the_lowercase_class_name_and_an_index(data):
    X, y = data
    clf = BPClassifier(hidden_layer_sizes=(3,), max_iter=5, random_state=0).fit(X, y)
    reg = BPRegressor(hidden_layer_sizes=(5, 2), max_iter=5, random_state=0).fit(X, y * 1.0)
    assert clf.get_feature_names_out().tolist() == ["bpclassifier0", "bpclassifier1",
                                                    "bpclassifier2"]
    assert reg.get_feature_names_out().tolist() == ["bpregressor0", "bpregressor1"]


def test_fit_transform_is_fit_then_transform(data):
    X, y = data
    clf = BPClassifier(hidden_layer_sizes=(6,), max_iter=10, random_state=0)
    assert_array_equal(clone(clf).fit_transform(X, y), clone(clf).fit(X, y).transform(X))


def test_set_output_pandas_gives_a_dataframe_with_the_feature_names(data):
    pd = pytest.importorskip("pandas")
    X, y = data
    clf = BPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0)
    clf.set_output(transform="pandas")
    out = clf.fit_transform(X, y)
    assert isinstance(out, pd.DataFrame)
    assert out.columns.tolist() == [f"bpclassifier{i}" for i in range(4)]
    assert_allclose(out.to_numpy(), clf.set_output(transform="default").transform(X))


def test_network_is_a_feature_extractor_step_of_a_pipeline(data):
    X, y = data
    pipe = make_pipeline(
        BPClassifier(hidden_layer_sizes=(16, 6), max_iter=200, random_state=0),
        LogisticRegression(),
    ).fit(X, y)
    net, logreg = pipe[0], pipe[-1]
    # The pipeline fitted the network on (X, y) and the logistic regression
    # on the last hidden layer's activations.
    assert logreg.n_features_in_ == 6
    assert_allclose(logreg.coef_, LogisticRegression().fit(net.transform(X), y).coef_)
    assert pipe.score(X, y) > 0.8


def test_the_layers_after_the_chosen_one_are_not_computed(data, monkeypatch):
    from fastbp import _numpy_backend

    X, y = data
    clf = BPClassifier((6, 5, 4), max_iter=5, transform_layer=0, random_state=0).fit(X, y)
    computed = []
    hidden = _numpy_backend._hidden

    def spy(net, i, H):
        computed.append(i)
        return hidden(net, i, H)

    monkeypatch.setattr(_numpy_backend, "_hidden", spy)
    clf.transform(X)
    assert computed == [0]
