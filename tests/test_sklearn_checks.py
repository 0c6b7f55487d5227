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
    # Other initialisations; transform from the first of two hidden layers.
    BPClassifier(init="he_normal", transform_layer=0, **{**_FAST, "hidden_layer_sizes": (20, 10)}),
    BPRegressor(init="orthogonal", **_FAST),
]


@parametrize_with_checks(CONFIGS)
def test_config_passes_sklearn_checks(estimator, check):
    _run(estimator, check)


# The activations beyond scikit-learn's, and one activation per hidden layer
# (a list parameter: clone, get_params and set_params must handle it).
_TWO = dict(_FAST, hidden_layer_sizes=(12, 10))
ACTIVATION_CONFIGS = [
    BPClassifier(activation="leaky_relu", negative_slope=0.1, **_FAST),
    BPRegressor(activation="elu", **_FAST),
    BPClassifier(activation="selu", **_FAST),
    BPRegressor(activation="gelu", **_FAST),
    BPClassifier(activation="silu", **{**_FAST, "backend": "cython"}),
    BPClassifier(activation=["maxout", "gelu"], **{**_TWO, "backend": "cython"}),
    BPRegressor(activation=("tanh", "leaky_relu"), **_TWO),
]


@parametrize_with_checks(ACTIVATION_CONFIGS)
def test_activation_config_passes_sklearn_checks(estimator, check):
    _run(estimator, check)


def test_grid_search_over_activation_lists_in_a_pipeline():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    X, y = X[:300], y[:300]
    grid = [["relu", "tanh"], ("gelu", "maxout"), ["leaky_relu", "selu"]]
    clf = BPClassifier((12, 8), max_iter=30, learning_rate_init=0.02, random_state=0,
                       backend="numpy")
    pipe = make_pipeline(StandardScaler(), clf)
    search = GridSearchCV(pipe, {"bpclassifier__activation": grid}, cv=2).fit(X, y)
    assert [p["bpclassifier__activation"] for p in search.cv_results_["params"]] == grid
    assert search.best_params_["bpclassifier__activation"] in grid
    best = search.best_estimator_[-1]
    # the refitted model trained with the list it was given, layer by layer
    assert best.activation == search.best_params_["bpclassifier__activation"]
    assert best._net.activations == tuple(best.activation)
    assert best.coefs_[0].shape[1] == (24 if best.activation[0] == "maxout" else 12)
    assert search.score(X, y) > 0.5
