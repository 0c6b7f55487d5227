"""scikit-learn's estimator checks over both estimators in several
configurations (default, tanh, softplus, maxout, sgd, lbfgs, float-heavy
options, dropout), the default one on every backend."""

import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastbp import BPClassifier, BPRegressor

pytestmark = [
    pytest.mark.usefixtures("one_blas_thread"),
    # The checks fit on tiny data with few iterations by design: hundreds of
    # expected ConvergenceWarnings would bury any real warning.
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]

# The sample-weight equivalence checks compare a weighted fit with a fit on
# repeated rows; like scikit-learn (instance_generator.py) they need a
# configuration where the two are the same optimisation problem.
SW_EQUIVALENCE_PARAMS = {
    BPClassifier: dict(solver="lbfgs", dropout=0.0),
    BPRegressor: dict(solver="sgd", tol=1e-2, random_state=42, dropout=0.0),
}
SW_EQUIVALENCE_CHECKS = (
    "check_sample_weight_equivalence_on_dense_data",
    "check_sample_weight_equivalence_on_sparse_data",
)


def _check_name(check):
    return getattr(check, "func", check).__name__


def _run(estimator, check):
    if _check_name(check) in SW_EQUIVALENCE_CHECKS:
        estimator = clone(estimator).set_params(**SW_EQUIVALENCE_PARAMS[type(estimator)])
        if getattr(estimator, "class_weight", None) == "balanced":
            # "balanced" counts rows (as HistGradientBoostingClassifier does),
            # so a weighted fit and one on repeated rows differ by design.
            estimator.set_params(class_weight=None)
    check(estimator)


# sklearn's own test configuration for its MLPs is max_iter=100.
DEFAULTS = [BPClassifier(max_iter=100), BPRegressor(max_iter=100)]


@parametrize_with_checks(DEFAULTS)
def test_default_config_passes_sklearn_checks(estimator, check, backend):
    _run(clone(estimator).set_params(backend=backend), check)


# Smaller networks and a larger step than the defaults keep these fast; each
# still has to pass check_classifiers_train / check_regressors_train.
_FAST = dict(hidden_layer_sizes=(20,), learning_rate_init=0.01, max_iter=40, backend="numpy")
CONFIGS = [
    BPClassifier(activation="tanh", **_FAST),
    BPRegressor(activation="tanh", **_FAST),
    BPClassifier(activation="softplus", **_FAST),
    BPRegressor(activation="softplus", **_FAST),
    BPClassifier(activation="maxout", **{**_FAST, "hidden_layer_sizes": (10,)}),
    BPRegressor(activation="maxout", maxout_pieces=3, **{**_FAST, "hidden_layer_sizes": (10,)}),
    BPClassifier(solver="sgd", **{**_FAST, "learning_rate_init": 0.1}),
    BPRegressor(solver="sgd", **_FAST),
    BPClassifier(solver="lbfgs", hidden_layer_sizes=(20,), max_iter=100, backend="numpy"),
    BPRegressor(solver="lbfgs", hidden_layer_sizes=(20,), max_iter=100, backend="numpy"),
    # The training controls: class weights, decoupled weight decay, clipping,
    # a cosine schedule with warm-up (compiled backend).
    BPClassifier(class_weight="balanced", weight_decay=0.01, max_grad_norm=5.0,
                 learning_rate="cosine", warmup_fraction=0.1, **{**_FAST, "backend": "cython"}),
    BPRegressor(solver="sgd", weight_decay=0.01, max_grad_norm=5.0, learning_rate="cosine",
                warmup_fraction=0.1, **{**_FAST, "backend": "cython"}),
    BPClassifier(solver="sgd", learning_rate="invscaling", weight_decay=0.1,
                 **{**_FAST, "learning_rate_init": 0.1}),
    # Dropout (one rate; one per hidden layer), compiled backend. (The
    # sample-weight equivalence checks run without it: a weighted fit and
    # one on repeated rows draw different masks.)
    BPClassifier(dropout=0.1, **{**_FAST, "backend": "cython"}),
    BPRegressor(dropout=[0.1, 0.05], **{**_FAST, "hidden_layer_sizes": (20, 10),
                                          "backend": "cython"}),
]


@parametrize_with_checks(CONFIGS)
def test_config_passes_sklearn_checks(estimator, check):
    _run(estimator, check)
