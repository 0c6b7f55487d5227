"""fastbp inside scikit-learn's tooling (issue #5, point 3).

Pipeline, GridSearchCV, RandomizedSearchCV, cross_validate, clone, metadata
routing of sample_weight, and the notebook HTML repr.
"""


import numpy as np
import pytest
import sklearn
from scipy.stats import loguniform
from sklearn.base import clone
from sklearn.datasets import load_digits, make_regression
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    RandomizedSearchCV,
    cross_validate,
)
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import estimator_html_repr

from fastbp import BPClassifier, BPRegressor


pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:500], y[:500]


def small(**kw):
    params = dict(hidden_layer_sizes=(16,), max_iter=20, learning_rate_init=0.01,
                  random_state=0, backend="numpy")
    params.update(kw)
    return BPClassifier(**params)


def test_pipeline(digits):
    X, y = digits
    pipe = make_pipeline(StandardScaler(), small()).fit(X, y)
    assert pipe.score(X, y) > 0.8
    direct = small().fit(StandardScaler().fit_transform(X), y)
    np.testing.assert_array_equal(pipe.predict(X), direct.predict(
        StandardScaler().fit(X).transform(X)))
    assert pipe.predict_proba(X).shape == (len(X), 10)


def test_grid_search(digits):
    X, y = digits
    search = GridSearchCV(
        make_pipeline(StandardScaler(), small()),
        {"bpclassifier__hidden_layer_sizes": [(8,), (16,)],
         "bpclassifier__alpha": [1e-4, 1e-1]},
        cv=3,
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_estimator_[-1].hidden_layer_sizes in [(8,), (16,)]
    assert search.score(X, y) > 0.8


def test_randomized_search(digits):
    X, y = digits
    search = RandomizedSearchCV(
        small(),
        {"learning_rate_init": loguniform(3e-3, 3e-2), "activation": ["relu", "tanh"]},
        n_iter=3, cv=2, random_state=0,
    ).fit(X / 16, y)
    assert len(search.cv_results_["params"]) == 3
    assert search.best_score_ > 0.5


def test_cross_validate_regressor():
    X, y = make_regression(n_samples=240, n_features=6, noise=0.5, random_state=0)
    res = cross_validate(
        make_pipeline(StandardScaler(),
                      BPRegressor(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=200,
                                  random_state=0, backend="numpy")),
        X, y / y.std(), cv=KFold(3), scoring=["r2", "neg_mean_squared_error"],
        return_estimator=True,
    )
    assert res["test_r2"].min() > 0.8
    assert len(res["estimator"]) == 3


def test_clone(digits):
    X, y = digits
    clf = small(alpha=0.3, activation="softplus").fit(X, y)
    c = clone(clf)
    assert c.get_params() == clf.get_params()
    assert not hasattr(c, "coefs_")
    np.testing.assert_array_equal(c.fit(X, y).predict(X), clf.predict(X))


@pytest.fixture
def routing():
    sklearn.set_config(enable_metadata_routing=True)
    yield
    sklearn.set_config(enable_metadata_routing=False)


def test_sample_weight_metadata_routing(digits, routing):
    X, y = digits
    X = X / 16
    sw = np.where(y % 2 == 0, 3.0, 0.5)
    clf = small().set_fit_request(sample_weight=True).set_score_request(sample_weight=True)
    pipe = Pipeline([("scale", StandardScaler().set_fit_request(sample_weight=False)),
                     ("clf", clf)])
    pipe.fit(X, y, sample_weight=sw)
    Xs = StandardScaler().fit_transform(X)
    weighted = small().fit(Xs, y, sample_weight=sw)
    unweighted = small().fit(Xs, y)
    for a, b in zip(pipe[-1].coefs_, weighted.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(weighted.coefs_[0], unweighted.coefs_[0])

    # through a search and cross_validate, routed with `params=`
    search = GridSearchCV(clone(pipe), {"clf__alpha": [1e-4, 1e-2]}, cv=2)
    search.fit(X, y, sample_weight=sw)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    # the refit on all rows is weighted too, whichever alpha won
    best = small(alpha=search.best_params_["clf__alpha"]).fit(Xs, y, sample_weight=sw)
    for a, b in zip(search.best_estimator_[-1].coefs_, best.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)
    res = cross_validate(clone(pipe), X, y, cv=2, params={"sample_weight": sw})
    assert res["test_score"].shape == (2,)

    # not requested: passing sample_weight is an error, as for scikit-learn's own
    plain = Pipeline([("scale", StandardScaler().set_fit_request(sample_weight=False)),
                      ("clf", small().set_score_request(sample_weight=False))])
    with pytest.raises(Exception, match="sample_weight"):
        plain.fit(X, y, sample_weight=sw)


def test_partial_fit_request_exists(routing):
    reg = BPRegressor().set_partial_fit_request(sample_weight=True)
    assert reg.get_metadata_routing().consumes("partial_fit", ["sample_weight"]) == {
        "sample_weight"}


def test_html_repr(digits):
    X, y = digits
    clf = small(activation="maxout")
    html = estimator_html_repr(clf)
    assert "BPClassifier" in html and "maxout" in html
    # the notebook hook renders the same repr
    notebook = clf._repr_html_()
    assert "BPClassifier" in notebook and "maxout" in notebook
    # the status badge and the estimator boxes' style follow the fitted state
    fitted_box = 'class="sk-estimator fitted'
    assert "<span>Not fitted</span>" in html and fitted_box not in html
    pipe = make_pipeline(StandardScaler(), clf).fit(X / 16, y)
    html = estimator_html_repr(pipe)
    assert "BPClassifier" in html and "StandardScaler" in html
    assert "<span>Fitted</span>" in html and "<span>Not fitted</span>" not in html
    assert html.count(fitted_box) == 2  # both steps
