"""to_sklearn() and the features of issue 12: what scikit-learn's MLP can
express converts (only the fitted weights matter), anything else is a
ValueError naming the feature.

Activation lists and the new activation names are set on a fitted model with
``set_params`` (to_sklearn reads the ``activation`` parameter), so these
tests pin to_sklearn's decisions whatever the training code supports.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_classification, make_regression

from fastbp import BPClassifier, BPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def data():
    return make_classification(n_samples=100, n_features=6, n_informative=4, n_classes=3,
                               random_state=0)


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return BPClassifier((8, 5), activation="tanh", max_iter=10, random_state=0).fit(X, y)


@pytest.mark.parametrize("activation", ["leaky_relu", "elu", "selu", "gelu", "silu", "swish",
                                        "softplus", "maxout"])
def test_activation_sklearn_lacks_is_a_value_error_naming_it(fitted, activation):
    clf = fitted.set_params(activation=activation)
    try:
        with pytest.raises(ValueError, match=f"no '(?:{activation}|silu)' hidden activation"):
            clf.to_sklearn()
    finally:
        clf.set_params(activation="tanh")


@pytest.mark.parametrize("activation", [["relu", "tanh"], ("tanh", "maxout"), ["elu", "relu"]])
def test_mixed_per_layer_activations_are_a_value_error_naming_the_list(fitted, activation):
    clf = fitted.set_params(activation=activation)
    try:
        with pytest.raises(ValueError, match=r"per-layer activation=\[.*\] mixes"):
            clf.to_sklearn()
    finally:
        clf.set_params(activation="tanh")


@pytest.mark.parametrize("activation", [["tanh", "tanh"], ("tanh", "tanh")])
def test_a_list_of_one_supported_activation_converts(data, fitted, activation):
    X, _ = data
    clf = fitted.set_params(activation=activation)
    try:
        mlp = clf.to_sklearn()
    finally:
        clf.set_params(activation="tanh")
    assert mlp.activation == "tanh"
    assert_allclose(mlp.predict_proba(X), clf.predict_proba(X), rtol=1e-10, atol=1e-12)


def test_aliases_in_a_list_count_as_one_activation(data):
    X, y = data
    clf = BPClassifier((5, 4), activation="logistic", max_iter=10, random_state=0).fit(X, y)
    mlp = clf.set_params(activation=["sigmoid", "logistic"]).to_sklearn()
    assert mlp.activation == "logistic"
    assert_allclose(mlp.predict_proba(X), clf.predict_proba(X), rtol=1e-10, atol=1e-12)


def test_a_list_of_one_unsupported_activation_names_it(fitted):
    clf = fitted.set_params(activation=["softplus", "softplus"])
    try:
        with pytest.raises(ValueError, match="no 'softplus' hidden activation"):
            clf.to_sklearn()
    finally:
        clf.set_params(activation="tanh")


def test_training_options_sklearn_lacks_do_not_block_conversion(data):
    X, y = data
    clf = BPClassifier(
        (8,), init="orthogonal", dropout=0.2, weight_decay=0.01, max_grad_norm=1.0,
        class_weight="balanced", learning_rate_init=0.01, max_iter=10, random_state=0,
    ).fit(X, y)
    mlp = clf.to_sklearn()
    assert_array_equal(mlp.predict(X), clf.predict(X))
    assert_allclose(mlp.predict_proba(X), clf.predict_proba(X), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("learning_rate", ["cosine", "adaptive"])
def test_the_converted_model_refits_in_scikit_learn(data, learning_rate):
    # A schedule scikit-learn lacks is not carried over (its default is);
    # one it has is. Either way the converted model's own fit accepts it.
    X, y = data
    clf = BPClassifier((8,), solver="sgd", learning_rate=learning_rate, max_iter=5,
                       random_state=0).fit(X, y)
    mlp = clf.to_sklearn()
    expected = "constant" if learning_rate == "cosine" else learning_rate
    assert mlp.get_params()["learning_rate"] == expected
    assert_array_equal(mlp.predict(X), clf.predict(X))
    mlp.set_params(max_iter=3).fit(X, y)


@pytest.mark.parametrize("init", ["he_normal", "lecun_normal"])
def test_regressor_with_another_init_converts(init):
    X, y = make_regression(n_samples=80, n_features=4, random_state=0)
    reg = BPRegressor(hidden_layer_sizes=(6,), init=init, solver="lbfgs", max_iter=20, random_state=0).fit(
        X, y / y.std())
    assert_allclose(reg.to_sklearn().predict(X), reg.predict(X), rtol=1e-10, atol=1e-12)


def test_without_hidden_layers_any_activation_converts(data):
    # The hidden activation of a network with no hidden layer is never used.
    X, y = data
    clf = BPClassifier([], activation="softplus", max_iter=10, random_state=0).fit(X, y)
    mlp = clf.to_sklearn()
    assert_allclose(mlp.predict_proba(X), clf.predict_proba(X), rtol=1e-10, atol=1e-12)
