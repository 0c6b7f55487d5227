"""Agreement with scikit-learn's MLP: same initial weights, same shuffling,
same updates, same stopping rules. After a few epochs of sgd, adam or lbfgs
on float64 data the parameters agree to rtol 1e-7. Also the documented
deliberate differences."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.datasets import make_classification, make_multilabel_classification, make_regression
from sklearn.neural_network import MLPClassifier, MLPRegressor

import fastbp._base as est_module
import fastbp._early_stopping as split_module
from fastbp import BPClassifier, BPRegressor, backprop
from fastbp.backends import get_backend

pytestmark = [
    pytest.mark.usefixtures("one_blas_thread"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]

RTOL = 1e-7


def _data(task, n=60, seed=0):
    if task == "binary":
        X, y = make_classification(n, 6, n_informative=4, random_state=seed)
    elif task == "multiclass":
        X, y = make_classification(n, 6, n_informative=4, n_classes=3, random_state=seed)
    elif task == "multilabel":
        X, y = make_multilabel_classification(n, 6, n_classes=3, random_state=seed)
        X = X / 4.0
    elif task == "regression":
        X, y = make_regression(n, 6, n_informative=4, noise=0.5, random_state=seed)
        y = y / 50.0
    elif task == "multioutput":
        X, y = make_regression(n, 6, n_informative=4, n_targets=3, noise=0.5, random_state=seed)
        y = y / 50.0
    return X.astype(np.float64), y


def _models(task, backend, **params):
    if task in ("regression", "multioutput"):
        return MLPRegressor(**params), BPRegressor(backend=backend, **params)
    return MLPClassifier(**params), BPClassifier(backend=backend, **params)


def assert_same_parameters(sk, bp, rtol=RTOL):
    assert len(sk.coefs_) == len(bp.coefs_)
    for a, b in zip(sk.coefs_ + sk.intercepts_, bp.coefs_ + bp.intercepts_, strict=True):
        assert a.shape == b.shape
        assert_allclose(b, a, rtol=rtol, atol=1e-12)


def assert_same_fit_state(sk, bp):
    assert_same_parameters(sk, bp)
    assert bp.n_iter_ == sk.n_iter_
    assert bp.n_layers_ == sk.n_layers_ and bp.n_outputs_ == sk.n_outputs_
    assert bp.out_activation_ == sk.out_activation_
    assert bp.loss_ == pytest.approx(sk.loss_, rel=RTOL)
    if hasattr(sk, "t_"):
        assert bp.t_ == sk.t_
    if getattr(sk, "loss_curve_", None) is not None and sk.solver != "lbfgs":
        assert_allclose(bp.loss_curve_, sk.loss_curve_, rtol=RTOL)
        assert bp.best_loss_ == (None if sk.best_loss_ is None else pytest.approx(sk.best_loss_, rel=RTOL))


COMMON = dict(hidden_layer_sizes=(7, 5), random_state=3, max_iter=5, batch_size=16, alpha=1e-3)
SOLVER_PARAMS = {
    "sgd": dict(solver="sgd", learning_rate_init=0.05),
    "adam": dict(solver="adam", learning_rate_init=0.01),
    "lbfgs": dict(solver="lbfgs"),
}


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel", "regression"])
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_five_epochs_give_sklearns_parameters(backend, solver, task):
    X, y = _data(task)
    sk, bp = _models(task, backend, **COMMON, **SOLVER_PARAMS[solver])
    sk.fit(X, y)
    bp.fit(X, y)
    assert_same_fit_state(sk, bp)
    method = "predict" if task == "regression" else "predict_proba"
    assert_allclose(getattr(bp, method)(X), getattr(sk, method)(X), rtol=1e-6, atol=1e-12)
    assert_allclose(bp.predict(X), sk.predict(X))


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh"])
def test_other_sklearn_activations_agree(backend, activation):
    X, y = _data("multiclass")
    sk, bp = _models("multiclass", backend, activation=activation, **COMMON, **SOLVER_PARAMS["adam"])
    assert_same_fit_state(sk.fit(X, y), bp.fit(X, y))


@pytest.mark.parametrize("task", ["multiclass", "regression"])
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_sample_weight_fits_agree(backend, solver, task):
    X, y = _data(task)
    sw = np.random.RandomState(1).uniform(0.1, 3.0, size=len(y))
    sk, bp = _models(task, backend, **COMMON, **SOLVER_PARAMS[solver])
    sk.fit(X, y, sample_weight=sw)
    bp.fit(X, y, sample_weight=sw)
    assert_same_fit_state(sk, bp)


@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_momentum_and_nesterov_agree(backend, nesterov, momentum):
    X, y = _data("multiclass")
    sk, bp = _models("multiclass", backend, **COMMON, **SOLVER_PARAMS["sgd"],
                     nesterovs_momentum=nesterov, momentum=momentum)
    assert_same_fit_state(sk.fit(X, y), bp.fit(X, y))


def test_invscaling_counts_samples_as_sklearn(backend):
    X, y = _data("regression")
    sk, bp = _models("regression", backend, **{**COMMON, "max_iter": 6}, solver="sgd",
                     learning_rate="invscaling", learning_rate_init=0.5, power_t=0.3)
    sk.fit(X, y)
    bp.fit(X, y)
    assert_same_fit_state(sk, bp)
    # learning_rate_init / (t_ + 1) ** power_t with t_ counting samples.
    assert bp._opt_state.learning_rate == pytest.approx(0.5 / (6 * 60 + 1) ** 0.3)


def test_adaptive_schedule_divides_the_rate_as_sklearn(backend):
    X, y = _data("multiclass")
    params = {**COMMON, "max_iter": 12}
    sk, bp = _models("multiclass", backend, **params, solver="sgd", learning_rate="adaptive",
                     learning_rate_init=0.05, tol=0.5, n_iter_no_change=2)
    sk.fit(X, y)
    bp.fit(X, y)
    assert_same_fit_state(sk, bp)
    assert bp._opt_state.learning_rate == pytest.approx(sk._optimizer.learning_rate)
    assert bp._opt_state.learning_rate < 0.05  # the schedule did act


def test_adam_uses_the_epsilon_hat_form(backend):
    # With a large epsilon the two textbook forms of Adam differ visibly.
    X, y = _data("regression")
    sk, bp = _models("regression", backend, **COMMON, solver="adam", learning_rate_init=0.05, epsilon=0.1)
    assert_same_fit_state(sk.fit(X, y), bp.fit(X, y))


def test_patience_count_stops_at_the_same_epoch(backend):
    X, y = _data("binary")
    sk, bp = _models("binary", backend, **{**COMMON, "max_iter": 50}, solver="adam",
                     tol=10.0, n_iter_no_change=3)
    sk.fit(X, y)
    bp.fit(X, y)
    # Epoch 1 improves on inf; epochs 2..5 don't; stop once count > 3.
    assert sk.n_iter_ == 5
    assert_same_fit_state(sk, bp)
    assert bp._no_improvement_count == sk._no_improvement_count


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_early_stopping_binary_agrees(backend, solver):
    X, y = _data("binary", n=80)
    sk, bp = _models("binary", backend, **{**COMMON, "max_iter": 30}, **SOLVER_PARAMS[solver],
                     early_stopping=True, n_iter_no_change=3, validation_fraction=0.25)
    sk.fit(X, y)
    bp.fit(X, y)
    assert_same_fit_state(sk, bp)
    assert_allclose(bp.validation_scores_, sk.validation_scores_)
    assert bp.best_validation_score_ == sk.best_validation_score_
    assert bp.best_loss_ is None and sk.best_loss_ is None


def test_early_stopping_regression_agrees(backend):
    X, y = _data("regression", n=80)
    sk, bp = _models("regression", backend, **{**COMMON, "max_iter": 8}, solver="adam",
                     learning_rate_init=0.01, early_stopping=True)
    sk.fit(X, y)
    bp.fit(X, y)
    assert_same_fit_state(sk, bp)
    assert_allclose(bp.validation_scores_, sk.validation_scores_, rtol=1e-6)


@pytest.mark.parametrize("task", ["multiclass", "regression"])
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_warm_start_agrees_and_starts_a_fresh_optimizer(backend, solver, task):
    X, y = _data(task)
    sk, bp = _models(task, backend, **{**COMMON, "max_iter": 3}, **SOLVER_PARAMS[solver], warm_start=True)
    for _ in range(3):
        sk.fit(X, y)
        bp.fit(X, y)
        assert_same_fit_state(sk, bp)
    if solver == "adam":
        # A fresh optimizer per fit: t counts only the last fit's batches.
        assert bp._opt_state.t == sk._optimizer.t == 3 * 4


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_partial_fit_sequence_agrees_classifier(backend, solver):
    X, y = _data("multiclass", n=90)
    sk, bp = _models("multiclass", backend, **COMMON, **SOLVER_PARAMS[solver])
    classes = np.unique(y)
    for chunk in np.array_split(np.arange(90), 4):
        sk.partial_fit(X[chunk], y[chunk], classes=classes)
        bp.partial_fit(X[chunk], y[chunk], classes=classes)
        assert bp.n_iter_ == sk.n_iter_ == 1
        assert_same_fit_state(sk, bp)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_partial_fit_sequence_agrees_regressor_with_sample_weight(backend, solver):
    X, y = _data("regression", n=90)
    sw = np.random.RandomState(2).uniform(0.5, 2.0, size=90)
    sk, bp = _models("regression", backend, **COMMON, **SOLVER_PARAMS[solver])
    for chunk in np.array_split(np.arange(90), 3):
        sk.partial_fit(X[chunk], y[chunk], sample_weight=sw[chunk])
        bp.partial_fit(X[chunk], y[chunk], sample_weight=sw[chunk])
        assert bp.n_iter_ == 1
        assert_same_fit_state(sk, bp)


def test_partial_fit_multilabel_agrees(backend):
    X, y = _data("multilabel", n=60)
    sk, bp = _models("multilabel", backend, **COMMON, **SOLVER_PARAMS["adam"])
    for chunk in np.array_split(np.arange(60), 2):
        sk.partial_fit(X[chunk], y[chunk], classes=np.arange(3))
        bp.partial_fit(X[chunk], y[chunk], classes=np.arange(3))
    assert_same_fit_state(sk, bp)


def test_unshuffled_fit_agrees(backend):
    X, y = _data("multiclass")
    sk, bp = _models("multiclass", backend, **COMMON, **SOLVER_PARAMS["sgd"], shuffle=False)
    assert_same_fit_state(sk.fit(X, y), bp.fit(X, y))


# ---------------------------------------------------------------- Ctrl-C


class _InterruptingBackend:
    """Delegates to a real backend; raises KeyboardInterrupt on call ``n``."""

    def __init__(self, backend, n):
        self._b = get_backend(backend)
        self.name = self._b.name
        self.calls = 0
        self.n = n

    def forward(self, *args, **kw):
        return self._b.forward(*args, **kw)

    def _count(self):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt

    def train_epoch(self, *args, **kw):
        self._count()
        return self._b.train_epoch(*args, **kw)

    def loss_grad(self, *args, **kw):
        self._count()
        return self._b.loss_grad(*args, **kw)


def test_ctrl_c_during_sgd_keeps_the_model_of_the_last_complete_epoch(backend, monkeypatch):
    X, y = _data("multiclass")
    fake = _InterruptingBackend(backend, n=4)
    monkeypatch.setattr(est_module, "get_backend", lambda name: fake)
    bp = BPClassifier(**COMMON, solver="sgd", backend=backend)
    with pytest.warns(UserWarning, match="Training interrupted by user."):
        bp.fit(X, y)
    monkeypatch.undo()
    ref = BPClassifier(**{**COMMON, "max_iter": 3}, solver="sgd", backend=backend).fit(X, y)
    assert bp.n_iter_ == 3
    assert_same_parameters(ref, bp, rtol=1e-12)
    assert bp.predict(X).shape == y.shape


def test_ctrl_c_during_lbfgs_keeps_a_finite_usable_model(backend, monkeypatch):
    X, y = _data("regression")
    fake = _InterruptingBackend(backend, n=6)
    monkeypatch.setattr(est_module, "get_backend", lambda name: fake)
    bp = BPRegressor(hidden_layer_sizes=(5,), solver="lbfgs", random_state=0, backend=backend)
    with pytest.warns(UserWarning, match="Training interrupted by user."):
        bp.fit(X, y)
    monkeypatch.undo()
    assert all(np.isfinite(c).all() for c in bp.coefs_ + bp.intercepts_)
    assert np.isfinite(bp.predict(X)).all()
    assert bp.n_iter_ == len(bp.loss_curve_) >= 1


# ------------------------------------------------- deliberate differences


def test_multioutput_squared_error_loss_is_consistent_with_its_gradient(backend):
    X, y = _data("multioutput")
    params = dict(COMMON, alpha=0.0, solver="sgd", learning_rate_init=0.05)
    sk, bp = _models("multioutput", backend, **params)
    sk.fit(X, y)
    bp.fit(X, y)
    # Same gradient, so the same parameters ...
    assert_same_parameters(sk, bp)
    # ... but the reported loss is 1/(2n) sum_i sum_k (z - y)^2, n_outputs times
    # scikit-learn's, which divides its loss but not its gradient by n_outputs.
    assert_allclose(bp.loss_curve_, 3 * np.asarray(sk.loss_curve_), rtol=RTOL)
    full_loss, _, _ = backprop(X, y, bp.coefs_, bp.intercepts_, activation="relu", backend=backend)
    Z = bp.predict(X)
    assert full_loss == pytest.approx(0.5 * ((Z - y) ** 2).sum() / len(y), rel=1e-12)


def test_multioutput_lbfgs_loss_matches_gradient_by_finite_differences(backend):
    X, y = _data("multioutput", n=20)
    bp = BPRegressor(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=3, random_state=0,
                     backend=backend).fit(X, y)
    coefs = [c.copy() for c in bp.coefs_]
    loss, dW, _ = backprop(X, y, coefs, bp.intercepts_, alpha=bp.alpha, backend=backend)
    eps = 1e-6
    coefs[1][0, 0] += eps
    up = backprop(X, y, coefs, bp.intercepts_, alpha=bp.alpha, backend=backend)[0]
    coefs[1][0, 0] -= 2 * eps
    down = backprop(X, y, coefs, bp.intercepts_, alpha=bp.alpha, backend=backend)[0]
    assert dW[1][0, 0] == pytest.approx((up - down) / (2 * eps), rel=1e-5)


@pytest.mark.parametrize("cls", [BPClassifier, BPRegressor])
def test_partial_fit_is_unavailable_with_lbfgs(cls):
    assert not hasattr(cls(solver="lbfgs"), "partial_fit")
    assert hasattr(cls(solver="sgd"), "partial_fit")
    assert hasattr(cls(solver="adam"), "partial_fit")
    with pytest.raises(AttributeError, match="partial_fit") as info:
        cls(solver="lbfgs").partial_fit
    assert "lbfgs is not stochastic" in str(info.value.__cause__)


def test_sklearn_regressor_partial_fit_difference_is_real():
    # The difference we document: scikit-learn's regressor advertises
    # partial_fit under lbfgs (its available_if check is always truthy).
    assert hasattr(MLPRegressor(solver="lbfgs"), "partial_fit")
    assert not hasattr(BPRegressor(solver="lbfgs"), "partial_fit")


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_predict_log_proba_is_finite_when_saturated_and_equals_log_proba_elsewhere(backend, task):
    X, y = _data(task)
    sk, bp = _models(task, backend, hidden_layer_sizes=(6,), solver="lbfgs", max_iter=20, random_state=0)
    sk.fit(X, y)
    bp.fit(X, y)
    for m in (sk, bp):
        m.coefs_[-1] *= 1e3  # push the outputs far into saturation
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log_p = bp.predict_log_proba(X)
    assert np.isfinite(log_p).all()
    with np.errstate(divide="ignore"):
        sk_log = np.log(sk.predict_proba(X))
    p = sk.predict_proba(X)
    assert np.isneginf(sk_log).any() or (p < 1e-200).any()  # really saturated
    ok = p > 1e-300
    assert_allclose(log_p[ok], sk_log[ok], rtol=1e-6, atol=1e-12)
    assert_allclose(np.log(bp.predict_proba(X)), log_p, rtol=1e-6, atol=1e-12)


def test_early_stopping_stratifies_multiclass(backend, monkeypatch):
    calls = []
    real = split_module.train_test_split

    def spy(*arrays, **kw):
        out = real(*arrays, **kw)
        calls.append((kw.get("stratify"), out))
        return out

    monkeypatch.setattr(split_module, "train_test_split", spy)
    rng = np.random.RandomState(0)
    y = np.repeat([0, 1, 2], [60, 30, 10])
    X = rng.normal(size=(100, 4)) + y[:, None]
    bp = BPClassifier(hidden_layer_sizes=(5,), early_stopping=True, validation_fraction=0.2,
                      max_iter=3, random_state=0, backend=backend).fit(X, y)
    assert len(calls) == 1
    stratify, (_, _, _, Y_val) = calls[0]
    assert stratify is not None
    # Stratified: the validation set has the classes in proportion 6:3:1.
    assert_allclose(Y_val.sum(axis=0), [12, 6, 2])
    assert len(bp.validation_scores_) == bp.n_iter_
