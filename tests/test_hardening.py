"""No silently wrong model, drop-in behaviour at the edges, and a consistent
state after Ctrl-C: user-assigned weights, divergence, zero-weight
minibatches, the early-stopping split, interrupted fits."""

import functools
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_iris, make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor

import fastbp._base as base_module
from fastbp import BPClassifier, BPRegressor, backprop
from fastbp.backends import get_backend

RNG = np.random.RandomState(0)
X = RNG.uniform(size=(30, 3))
Y_REG = RNG.normal(size=30)
FAST = dict(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
quiet = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# ------------------------------------------------ user-assigned weights


@quiet
def test_integer_coefs_assigned_by_the_user_are_cast_to_float(backend):
    reg = BPRegressor(**FAST, backend=backend).fit(X, Y_REG)
    as_int = [np.round(10 * c).astype(np.int64) for c in reg.coefs_]
    b_int = [np.round(10 * b).astype(np.int64) for b in reg.intercepts_]
    ref = BPRegressor(**FAST, backend=backend).fit(X, Y_REG)
    ref.coefs_ = [c.astype(np.float64) for c in as_int]
    ref.intercepts_ = [b.astype(np.float64) for b in b_int]
    reg.coefs_, reg.intercepts_ = as_int, b_int
    pred = reg.predict(X)
    assert pred.dtype == np.float64
    assert_allclose(pred, ref.predict(X), rtol=1e-12)


@quiet
def test_coefs_of_the_wrong_shape_are_reported_as_coefs_not_as_X(backend):
    reg = BPRegressor(**FAST, backend=backend).fit(X, Y_REG)
    reg.coefs_ = [np.zeros((5, 4)), reg.coefs_[1]]
    with pytest.raises(ValueError, match=r"coefs_\[0\] has 5 rows, but X has 3 features"):
        reg.predict(X)
    reg.fit(X, Y_REG)
    reg.intercepts_ = [reg.intercepts_[0], np.zeros(2)]
    with pytest.raises(ValueError, match=r"coefs_\[1\] of shape \(4, 1\) and intercepts_\[1\] of shape \(2,\)"):
        reg.predict(X)
    reg.fit(X, Y_REG)
    reg.coefs_ = [reg.coefs_[0], np.zeros((4, 2))]
    reg.intercepts_ = [reg.intercepts_[0], np.zeros(2)]
    with pytest.raises(ValueError, match=r"coefs_\[1\] has 2 columns, but the model has 1 outputs"):
        reg.predict(X)


@pytest.mark.parametrize("sizes", [(True,), True, (3, True)])
@pytest.mark.parametrize("cls", [BPClassifier, BPRegressor])
def test_boolean_layer_sizes_are_rejected_like_sklearn(cls, sizes):
    y = np.arange(30) % 2
    sk_cls = MLPClassifier if cls is BPClassifier else MLPRegressor
    with pytest.raises(TypeError):  # scikit-learn's own reaction
        sk_cls(hidden_layer_sizes=sizes, max_iter=2).fit(X, y)
    with pytest.raises(TypeError, match="hidden_layer_sizes must contain integers"):
        cls(**{**FAST, "hidden_layer_sizes": sizes}).fit(X, y)


# --------------------------------------------------- backprop arguments

W1, B1 = np.ones((3, 4)) * 0.1, np.zeros(4)
W2, B2 = np.ones((4, 1)) * 0.1, np.zeros(1)


def test_backprop_rejects_complex_X(backend):
    with pytest.raises(ValueError, match="Complex data not supported"):
        backprop(X + 1j, Y_REG[:, None], [W1, W2], [B1, B2], backend=backend)


def test_backprop_rejects_nan_alpha(backend):
    with pytest.raises(ValueError, match="'alpha' parameter of backprop"):
        backprop(X, Y_REG[:, None], [W1, W2], [B1, B2], alpha=np.nan, backend=backend)


# ------------------------------------------------------------ divergence


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_finite_divergence_of_a_classifier_warns_naming_learning_rate_init(backend, solver):
    Xc, yc = make_classification(200, 8, random_state=0)
    clf = BPClassifier(solver=solver, learning_rate_init=1e6, max_iter=50,
                       hidden_layer_sizes=(100,), random_state=0, backend=backend)
    with np.errstate(all="ignore"), pytest.warns(ConvergenceWarning, match="diverged.*learning_rate_init"):
        clf.fit(Xc, yc)


def test_finite_divergence_of_a_poisson_regressor_warns(backend):
    Xr, yr = make_regression(200, 8, random_state=0)
    reg = BPRegressor(loss="poisson", solver="adam", learning_rate_init=1.0, max_iter=50,
                      random_state=0, backend=backend)
    with np.errstate(all="ignore"), pytest.warns(ConvergenceWarning, match="diverged.*learning_rate_init"):
        reg.fit(Xr, np.abs(yr) / 10)
    assert np.isfinite(reg.loss_)


class _ExplodingLastEpoch:
    """The real backend, but the last epoch leaves finite weights whose exp
    output overflows (as a diverging poisson fit can)."""

    def __init__(self, backend, n):
        self._b = get_backend(backend)
        self.name = self._b.name
        self.calls = 0
        self.n = n

    def forward(self, *args, **kw):
        return self._b.forward(*args, **kw)

    def train_epoch(self, net, params, *args, **kw):
        loss = self._b.train_epoch(net, params, *args, **kw)
        self.calls += 1
        if self.calls == self.n:
            params[-1] = 1e3  # the output bias: exp(1e3) = inf
        return loss


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_finite_weights_predicting_inf_on_the_training_data_warn(backend, solver, monkeypatch):
    Xr, yr = make_regression(50, 4, random_state=0)
    fake = _ExplodingLastEpoch(backend, n=3)
    monkeypatch.setattr(base_module, "get_backend", lambda name: fake)
    reg = BPRegressor(loss="poisson", solver=solver, max_iter=3, hidden_layer_sizes=(3,),
                      random_state=0, backend=backend)
    with pytest.warns(ConvergenceWarning, match="predicts non-finite values.*learning_rate_init"):
        reg.fit(Xr, np.abs(yr) / 100)
    assert np.isinf(reg.predict(Xr)).all()


@pytest.mark.parametrize(
    "cls,params", [(BPClassifier, {}), (BPRegressor, {}), (BPRegressor, {"loss": "poisson"})]
)
def test_a_converging_fit_does_not_warn_of_divergence(backend, cls, params):
    Xc, yc = make_classification(200, 8, random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cls(max_iter=30, random_state=0, backend=backend, **params).fit(Xc, yc)
    assert not [w for w in caught if "diverged" in str(w.message)]


def _diverging_regressor(backend, **kw):
    # scikit-learn's test_mlp_diverging_loss
    params = dict(hidden_layer_sizes=100, activation="identity", solver="sgd",
                  learning_rate_init=1, max_iter=20, early_stopping=True,
                  n_iter_no_change=10, random_state=0, backend=backend)
    return BPRegressor(**{**params, **kw})


def test_divergence_with_early_stopping_keeps_the_best_epoch_and_warns(backend):
    iris = load_iris()
    reg = _diverging_regressor(backend)
    with np.errstate(all="ignore"), pytest.warns(ConvergenceWarning, match="Training diverged"):
        reg.fit(iris.data, iris.target)
    scores = reg.validation_scores_
    assert np.isnan(scores[-1]) and isinstance(scores[-1], float)
    assert len(scores) == reg.n_iter_ == len(reg.loss_curve_)
    best = int(np.nanargmax(scores)) + 1
    assert reg.best_validation_score_ == scores[best - 1]
    # the weights are those of the best epoch: a fit stopped there has them
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = _diverging_regressor(backend, max_iter=best).fit(iris.data, iris.target)
    for a, b in zip(reg.coefs_ + reg.intercepts_, ref.coefs_ + ref.intercepts_, strict=True):
        assert_array_equal(a, b)
    assert np.isfinite(reg.predict(iris.data)).all()


# ------------------------------------------------- zero-weight minibatches


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_a_minibatch_whose_weights_sum_to_zero_is_an_error_saying_so(backend, solver):
    w = np.ones(30)
    w[10:14] = 0.0  # minibatches of 2 without shuffling: 5 and 6 weigh nothing
    reg = BPRegressor(**FAST, solver=solver, batch_size=2, shuffle=False, backend=backend)
    with pytest.raises(ValueError, match="Weights sum to zero, can't be normalized: .*minibatch 5"):
        reg.fit(X, Y_REG, sample_weight=w)


def test_weights_summing_to_zero_over_the_data_are_an_error_saying_so(backend):
    w = np.r_[np.ones(15), -np.ones(15)]
    with pytest.raises(ValueError, match="Weights sum to zero, can't be normalized"):
        BPRegressor(**FAST, solver="lbfgs", backend=backend).fit(X, Y_REG, sample_weight=w)


# ------------------------------------------------- early-stopping split


def test_binary_early_stopping_split_fails_exactly_as_sklearn_does(backend):
    Xs, ys = [[1, 2], [2, 3], [3, 4], [4, 5]], [0, 0, 0, 1]
    msg = r"The least populated classes in y have only 1 member.*Classes with too few members are: \['True'\]"
    with pytest.raises(ValueError, match=msg):
        MLPClassifier(early_stopping=True).fit(Xs, ys)
    with pytest.raises(ValueError, match=msg):
        BPClassifier(early_stopping=True, backend=backend).fit(Xs, ys)


@quiet
@pytest.mark.parametrize(
    "counts,fraction",
    [([20, 20, 1], 0.2),  # a class with one member
     ([3] * 10, 0.1)],  # 3 validation rows for 10 classes
    ids=["one-member class", "fewer validation rows than classes"],
)
def test_multiclass_early_stopping_falls_back_to_sklearns_split(backend, counts, fraction):
    y = np.repeat(np.arange(len(counts)), counts)
    Xm = np.random.RandomState(1).normal(size=(len(y), 4)) + y[:, None]
    params = dict(hidden_layer_sizes=(5,), early_stopping=True, validation_fraction=fraction,
                  max_iter=4, random_state=0, solver="sgd")
    sk = MLPClassifier(**params).fit(Xm, y)
    bp = BPClassifier(**params, backend=backend).fit(Xm, y)
    assert_allclose(bp.validation_scores_, sk.validation_scores_, rtol=1e-7)
    for a, b in zip(bp.coefs_ + bp.intercepts_, sk.coefs_ + sk.intercepts_, strict=True):
        assert_allclose(a, b, rtol=1e-7, atol=1e-12)


# ------------------------------------------------------------------ Ctrl-C


class _InterruptAfterEpoch:
    """Runs the real epoch ``n`` (so weights and optimizer state move), then
    raises KeyboardInterrupt as a Ctrl-C at its very end would."""

    def __init__(self, backend, n):
        self._b = get_backend(backend)
        self.name = self._b.name
        self.calls = 0
        self.n = n

    def forward(self, *args, **kw):
        return self._b.forward(*args, **kw)

    def train_epoch(self, *args, **kw):
        loss = self._b.train_epoch(*args, **kw)
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return loss


@quiet
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_ctrl_c_rolls_back_the_optimizer_state_with_the_weights(backend, solver, monkeypatch):
    Xc, yc = make_classification(60, 5, n_classes=3, n_informative=3, random_state=0)
    params = dict(hidden_layer_sizes=(6,), batch_size=16, random_state=0, solver=solver,
                  learning_rate="invscaling" if solver == "sgd" else "constant",
                  backend=backend)
    fake = _InterruptAfterEpoch(backend, n=4)
    monkeypatch.setattr(base_module, "get_backend", lambda name: fake)
    bp = BPClassifier(**params, max_iter=10)
    with pytest.warns(UserWarning, match="Training interrupted by user."):
        bp.fit(Xc, yc)
    monkeypatch.undo()
    ref = BPClassifier(**params, max_iter=3).fit(Xc, yc)
    assert bp.n_iter_ == 3
    s, r = bp._opt_state, ref._opt_state
    assert (s.t, s.learning_rate) == (r.t, r.learning_rate)
    assert_array_equal(s.m, r.m)
    assert_array_equal(s.v, r.v)
    # ... so a following partial_fit continues from one consistent epoch
    bp.partial_fit(Xc, yc)
    ref.partial_fit(Xc, yc)
    for a, b in zip(bp.coefs_ + bp.intercepts_, ref.coefs_ + ref.intercepts_, strict=True):
        assert_array_equal(a, b)


# --------------------------------------- scikit-learn's own tests, on fastbp


@pytest.mark.parametrize("name", ["test_mlp_diverging_loss", "test_early_stopping_stratified"])
def test_sklearns_own_mlp_test_passes_with_fastbp(backend, name, monkeypatch):
    from sklearn.neural_network.tests import test_mlp

    monkeypatch.setattr(test_mlp, "MLPClassifier", functools.partial(BPClassifier, backend=backend))
    monkeypatch.setattr(test_mlp, "MLPRegressor", functools.partial(BPRegressor, backend=backend))
    getattr(test_mlp, name)()


@quiet
def test_a_warm_start_on_larger_targets_is_not_mistaken_for_divergence(backend):
    Xr, yr = make_regression(200, 8, random_state=0)
    reg = BPRegressor(warm_start=True, max_iter=20, random_state=0, backend=backend)
    reg.fit(Xr, yr / 1000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg.fit(Xr, yr)  # a far larger loss than the first fit's, and converging
    assert reg.loss_curve_[-1] > 100 * reg.loss_curve_[0]
    assert not [w for w in caught if "diverged" in str(w.message)]
