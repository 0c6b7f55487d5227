"""The ``init`` parameter: each weight initialisation draws from the formula
its docstring states, from the estimator's random_state, on both backends."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_classification
from sklearn.utils import check_random_state

from fastbp import BPClassifier, BPRegressor
from fastbp.backends import cython_available
from fastbp.network import INITS, Network

BACKENDS = ["numpy"] + (["cython"] if cython_available() else [])

# Layers big enough that a layer's empirical std is within 3% of its formula
# (~1e4 draws or more each).
LAYERS = [300, 200, 100, 80]


def _expected_std(init, fan_in, fan_out):
    return {
        "glorot_normal": np.sqrt(2.0 / (fan_in + fan_out)),
        "he_uniform": np.sqrt(6.0 / fan_in) / np.sqrt(3.0),
        "he_normal": np.sqrt(2.0 / fan_in),
        "lecun_normal": np.sqrt(1.0 / fan_in),
    }[init]


@pytest.mark.parametrize("init", ["glorot_normal", "he_uniform", "he_normal", "lecun_normal"])
def test_each_layers_weights_have_the_std_of_the_formula(init):
    net = Network(LAYERS, "relu", "softmax", "log_loss")
    params = net.init_params(np.random.RandomState(0), init)
    coefs, _ = net.views(params)
    for W, (fi, fo) in zip(coefs, net.coef_shapes, strict=True):
        assert abs(W.mean()) < 0.05 * _expected_std(init, fi, fo)
        assert_allclose(W.std(), _expected_std(init, fi, fo), rtol=0.03)


def test_he_uniform_stays_within_its_bound_and_reaches_it():
    net = Network(LAYERS, "relu", "softmax", "log_loss")
    coefs, _ = net.views(net.init_params(np.random.RandomState(1), "he_uniform"))
    for W, (fi, _) in zip(coefs, net.coef_shapes, strict=True):
        bound = np.sqrt(6.0 / fi)
        assert np.abs(W).max() <= bound
        assert np.abs(W).max() > 0.99 * bound


@pytest.mark.parametrize("init", ["glorot_normal", "he_normal", "lecun_normal"])
def test_normal_inits_are_not_truncated(init):
    # A truncated normal (at 2 std, as Keras does) has no draw beyond 2 std;
    # out of ~6e4 untruncated draws about 4.6% are.
    net = Network(LAYERS, "relu", "softmax", "log_loss")
    coefs, _ = net.views(net.init_params(np.random.RandomState(2), init))
    W, (fi, fo) = coefs[0], net.coef_shapes[0]
    beyond = np.mean(np.abs(W) > 2 * _expected_std(init, fi, fo))
    assert 0.035 < beyond < 0.06


def test_maxout_layers_use_their_real_weight_shape_as_fan_out():
    k = 3
    net = Network([300, 100, 10], "maxout", "softmax", "log_loss", maxout_pieces=k)
    coefs, _ = net.views(net.init_params(np.random.RandomState(0), "glorot_normal"))
    assert coefs[0].shape == (300, 100 * k)
    assert_allclose(coefs[0].std(), np.sqrt(2.0 / (300 + 100 * k)), rtol=0.03)


@pytest.mark.parametrize("shape", [(300, 120), (40, 200), (64, 64)])
def test_orthogonal_has_orthonormal_columns_or_rows_as_the_shape_allows(shape):
    fi, fo = shape
    net = Network([fi, fo, 3], "tanh", "softmax", "log_loss")
    coefs, _ = net.views(net.init_params(np.random.RandomState(0), "orthogonal"))
    W = coefs[0]
    gram = W.T @ W if fi >= fo else W @ W.T
    assert_allclose(gram, np.eye(min(fi, fo)), atol=1e-12)


def test_orthogonal_is_sign_corrected():
    # Householder QR alone gives Q[0, 0] < 0 for every draw; the sign
    # correction makes both signs equally likely.
    signs = []
    for seed in range(200):
        net = Network([30, 20, 2], "relu", "softmax", "log_loss")
        coefs, _ = net.views(net.init_params(np.random.RandomState(seed), "orthogonal"))
        signs.append(np.sign(coefs[0][0, 0]))
    assert 70 <= signs.count(1.0) <= 130  # 100 +- 4.2 sd


@pytest.mark.parametrize("init", [i for i in INITS if i != "glorot_uniform"])
def test_inits_other_than_sklearns_start_the_biases_at_zero(init):
    net = Network([20, 10, 3], "relu", "softmax", "log_loss")
    _, intercepts = net.views(net.init_params(np.random.RandomState(0), init))
    for b in intercepts:
        assert_array_equal(b, 0.0)


def test_default_init_is_sklearns_glorot_uniform():
    net = Network([20, 10, 3], "logistic", "softmax", "log_loss")
    rs = np.random.RandomState(7)
    expected = np.concatenate(
        [rs.uniform(-np.sqrt(2 / 30), np.sqrt(2 / 30), (20, 10)).ravel(),
         rs.uniform(-np.sqrt(2 / 30), np.sqrt(2 / 30), 10),
         rs.uniform(-np.sqrt(2 / 13), np.sqrt(2 / 13), (10, 3)).ravel(),
         rs.uniform(-np.sqrt(2 / 13), np.sqrt(2 / 13), 3)]
    )
    coefs, intercepts = net.views(net.init_params(np.random.RandomState(7)))
    got = np.concatenate([coefs[0].ravel(), intercepts[0], coefs[1].ravel(), intercepts[1]])
    assert_array_equal(got, expected)


@pytest.mark.parametrize("init", INITS)
def test_init_is_reproducible_per_random_state(init):
    net = Network([20, 10, 3], "relu", "softmax", "log_loss")
    a = net.init_params(np.random.RandomState(3), init)
    b = net.init_params(np.random.RandomState(3), init)
    c = net.init_params(np.random.RandomState(4), init)
    assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_float32_network_gets_the_float64_draws_rounded():
    n64 = Network([20, 10, 3], "relu", "softmax", "log_loss")
    n32 = Network([20, 10, 3], "relu", "softmax", "log_loss", dtype=np.float32)
    p64 = n64.init_params(np.random.RandomState(0), "he_normal")
    p32 = n32.init_params(np.random.RandomState(0), "he_normal")
    assert p32.dtype == np.float32
    assert_array_equal(p32, p64.astype(np.float32))


def test_unknown_init_is_a_value_error_naming_it():
    net = Network([4, 3, 2], "relu", "identity", "squared_error")
    with pytest.raises(ValueError, match="init must be one of"):
        net.init_params(np.random.RandomState(0), "zeros")
    X, y = make_classification(n_samples=30, n_features=4, random_state=0)
    with pytest.raises(ValueError, match="'init' parameter of BPClassifier"):
        BPClassifier(init="zeros").fit(X, y)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("init", INITS)
def test_estimator_starts_from_the_chosen_init_drawn_from_its_random_state(init, backend):
    # A step too small to move the weights shows where the fit started.
    X, y = make_classification(n_samples=60, n_features=12, random_state=0)
    reg = BPRegressor(
        hidden_layer_sizes=(16, 8), init=init, solver="sgd", momentum=0.0,
        learning_rate_init=1e-300, max_iter=1, random_state=5, backend=backend,
    )
    with pytest.warns(Warning):  # ConvergenceWarning: max_iter reached
        reg.fit(X, y.astype(float))
    net = Network([12, 16, 8, 1], "relu", "identity", "squared_error")
    expected = net.init_params(check_random_state(5), init)
    coefs, intercepts = net.views(expected)
    for got, want in zip(reg.coefs_ + reg.intercepts_, coefs + intercepts, strict=True):
        assert_allclose(got, want, rtol=1e-15, atol=1e-200)


@pytest.mark.parametrize("init", [i for i in INITS if i != "glorot_uniform"])
def test_both_backends_train_the_same_from_each_init(init):
    if not cython_available():
        pytest.skip("compiled backend not built")
    X, y = make_classification(n_samples=80, n_features=10, n_classes=3,
                               n_informative=5, random_state=1)
    fits = [
        BPClassifier(hidden_layer_sizes=(12,), init=init, max_iter=3, random_state=0,
                     backend=backend).fit(X, y)
        for backend in ("numpy", "cython")
    ]
    for a, b in zip(fits[0].coefs_ + fits[0].intercepts_,
                    fits[1].coefs_ + fits[1].intercepts_, strict=True):
        assert_allclose(a, b, rtol=1e-9, atol=1e-12)
