"""Training controls beyond scikit-learn's MLP: class weights, decoupled
weight decay (AdamW / SGDW), gradient clipping, learning-rate schedules
(cosine, warm-up, invscaling for adam), on both backends."""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_classification, make_regression
from sklearn.neural_network import MLPRegressor
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight

from fastbp import BPClassifier, BPRegressor
from fastbp import _numpy_backend as nb
from fastbp.network import Network

pytestmark = [
    pytest.mark.usefixtures("one_blas_thread"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]

# Imbalanced three-class problem (about 70% / 20% / 10%).
Xc, yc = make_classification(
    150, 5, n_informative=3, n_redundant=0, n_classes=3, weights=[0.7, 0.2, 0.1],
    random_state=0,
)
Xr, yr = make_regression(40, 4, noise=1.0, random_state=0)
yr = yr / np.std(yr)
SMALL = dict(hidden_layer_sizes=(6,), random_state=0, max_iter=8, batch_size=32,
             learning_rate_init=0.01)


def _coefs(est):
    return est.coefs_ + est.intercepts_


def _assert_same_model(a, b):
    for u, v in zip(_coefs(a), _coefs(b), strict=True):
        assert_array_equal(u, v)


# ------------------------------------------------------------ class_weight


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_balanced_class_weight_equals_balanced_sample_weight(backend, solver):
    weighted = BPClassifier(class_weight="balanced", solver=solver, backend=backend, **SMALL)
    weighted.fit(Xc, yc)
    by_hand = BPClassifier(solver=solver, backend=backend, **SMALL)
    by_hand.fit(Xc, yc, sample_weight=compute_sample_weight("balanced", yc))
    _assert_same_model(weighted, by_hand)


def test_dict_class_weight_multiplies_sample_weight(backend):
    cw = {0: 0.5, 2: 4.0}  # class 1 weighs 1
    sw = np.linspace(0.5, 2.0, len(yc))
    weighted = BPClassifier(class_weight=cw, backend=backend, **SMALL).fit(Xc, yc, sample_weight=sw)
    per_row = np.array([cw.get(c, 1.0) for c in yc])
    by_hand = BPClassifier(backend=backend, **SMALL).fit(Xc, yc, sample_weight=sw * per_row)
    _assert_same_model(weighted, by_hand)


def test_binary_string_labels_class_weight(backend):
    y = np.where(yc == 0, "common", "rare")
    cw = {"common": 1.0, "rare": 3.0}
    weighted = BPClassifier(class_weight=cw, backend=backend, **SMALL).fit(Xc, y)
    by_hand = BPClassifier(backend=backend, **SMALL).fit(
        Xc, y, sample_weight=np.where(y == "rare", 3.0, 1.0)
    )
    _assert_same_model(weighted, by_hand)


def test_partial_fit_dict_class_weight_equals_sample_weight(backend):
    classes = np.unique(yc)
    cw = dict(zip(classes, compute_class_weight("balanced", classes=classes, y=yc)))
    weighted = BPClassifier(class_weight=cw, backend=backend, **SMALL)
    by_hand = BPClassifier(backend=backend, **SMALL)
    for rows in (slice(0, 70), slice(70, 150)):
        weighted.partial_fit(Xc[rows], yc[rows], classes=classes)
        sw = np.array([cw[c] for c in yc[rows]])
        by_hand.partial_fit(Xc[rows], yc[rows], sample_weight=sw, classes=classes)
    _assert_same_model(weighted, by_hand)


def test_partial_fit_balanced_weights_come_from_the_first_batch(backend):
    classes = np.unique(yc)
    first, second = slice(0, 70), slice(70, 150)
    cw = dict(zip(classes, compute_class_weight("balanced", classes=classes, y=yc[first])))
    balanced = BPClassifier(class_weight="balanced", backend=backend, **SMALL)
    by_dict = BPClassifier(class_weight=cw, backend=backend, **SMALL)
    for rows in (first, second):
        balanced.partial_fit(Xc[rows], yc[rows], classes=classes)
        by_dict.partial_fit(Xc[rows], yc[rows], classes=classes)
    _assert_same_model(balanced, by_dict)


def test_partial_fit_balanced_needs_every_class_in_the_first_batch():
    clf = BPClassifier(class_weight="balanced", **SMALL)
    rows = yc != 2
    with pytest.raises(ValueError, match=r"first batch, which has no sample of the classes \[2\]"):
        clf.partial_fit(Xc[rows], yc[rows], classes=np.unique(yc))


def test_class_weight_is_kept_in_the_early_stopping_split(backend):
    params = dict(SMALL, early_stopping=True, validation_fraction=0.2, max_iter=6)
    weighted = BPClassifier(class_weight="balanced", backend=backend, **params).fit(Xc, yc)
    by_hand = BPClassifier(backend=backend, **params).fit(
        Xc, yc, sample_weight=compute_sample_weight("balanced", yc)
    )
    _assert_same_model(weighted, by_hand)
    assert weighted.validation_scores_ == by_hand.validation_scores_


def test_multilabel_balanced_class_weight_balances_each_label(backend):
    Y = np.column_stack([yc == 0, yc == 1]).astype(int)
    weighted = BPClassifier(class_weight="balanced", backend=backend, **SMALL).fit(Xc, Y)
    by_hand = BPClassifier(backend=backend, **SMALL).fit(
        Xc, Y, sample_weight=compute_sample_weight("balanced", Y)
    )
    _assert_same_model(weighted, by_hand)


def test_multilabel_dict_class_weight_raises():
    Y = np.column_stack([yc == 0, yc == 1]).astype(int)
    with pytest.raises(ValueError, match="dict is not supported for multilabel"):
        BPClassifier(class_weight={0: 1.0}, **SMALL).fit(Xc, Y)


def test_class_weight_unknown_class_raises():
    with pytest.raises(ValueError, match="not in class_weight"):
        BPClassifier(class_weight={0: 1.0, 7: 2.0}, **SMALL).fit(Xc, yc)


def test_class_weight_all_zero_raises():
    with pytest.raises(ValueError, match="class_weight sums to zero"):
        BPClassifier(class_weight={0: 0.0, 1: 0.0, 2: 0.0}, **SMALL).fit(Xc, yc)


# ------------------------------------------------- one optimizer step by hand


def _first_step_setup(dtype=np.float64):
    """Initial parameters, gradient and the number of weights of the
    regressor ``BPRegressor(hidden_layer_sizes=(5,), random_state=0)`` on
    (Xr, yr), as its fit draws them."""
    net = Network([Xr.shape[1], 5, 1], "relu", "identity", "squared_error", dtype=dtype)
    params = net.init_params(np.random.RandomState(0))
    _, grad = nb.loss_grad(net, params, Xr, yr.reshape(-1, 1), None, 0.0)
    return net, params, grad


def _one_step(backend, **params):
    reg = BPRegressor(
        hidden_layer_sizes=(5,), random_state=0, max_iter=1, batch_size=len(yr),
        shuffle=False, alpha=0.0, backend=backend, **params,
    )
    reg.fit(Xr, yr)
    return np.concatenate([a.ravel() for a in reg.coefs_ + reg.intercepts_])


def _flat(net, params):
    coefs, intercepts = net.views(params)
    return np.concatenate([a.ravel() for a in coefs + intercepts])


def test_adamw_one_step_equals_hand_computation(backend):
    lr, wd, b1, b2, eps = 0.01, 0.5, 0.9, 0.999, 1e-8
    got = _one_step(backend, solver="adam", learning_rate_init=lr, weight_decay=wd)
    net, p, g = _first_step_setup()
    m, v = (1 - b1) * g, (1 - b2) * g * g
    step = lr * math.sqrt(1 - b2) / (1 - b1)
    expected = p - step * m / (np.sqrt(v) + eps)
    expected[: net.n_coefs] -= lr * wd * p[: net.n_coefs]  # weights only
    assert_allclose(got, _flat(net, expected), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("nesterov", [True, False])
def test_decoupled_sgd_decay_one_step_equals_hand_computation(backend, nesterov):
    lr, wd, mu = 0.05, 0.3, 0.9
    got = _one_step(backend, solver="sgd", learning_rate_init=lr, weight_decay=wd,
                    momentum=mu, nesterovs_momentum=nesterov)
    net, p, g = _first_step_setup()
    vel = -lr * g
    expected = p + (mu * vel - lr * g if nesterov else vel)
    expected[: net.n_coefs] -= lr * wd * p[: net.n_coefs]
    assert_allclose(got, _flat(net, expected), rtol=1e-12, atol=1e-15)


def test_weight_decay_shrinks_weights_not_biases(backend):
    # Without momentum the decayed step is the plain one minus lr * wd * p,
    # on the weights only.
    lr, wd = 0.05, 0.3
    plain = _one_step(backend, solver="sgd", learning_rate_init=lr, momentum=0.0)
    decayed = _one_step(backend, solver="sgd", learning_rate_init=lr, momentum=0.0, weight_decay=wd)
    net, p, _ = _first_step_setup()
    p = _flat(net, p)
    n_coefs = net.n_coefs
    assert_allclose(decayed[:n_coefs], plain[:n_coefs] - lr * wd * p[:n_coefs], rtol=1e-12)
    assert_array_equal(decayed[n_coefs:], plain[n_coefs:])


def test_zero_weight_decay_keeps_sklearn_agreement(backend):
    common = dict(hidden_layer_sizes=(5,), random_state=0, max_iter=5, learning_rate_init=0.01)
    ours = BPRegressor(weight_decay=0.0, max_grad_norm=None, warmup_fraction=0.0,
                       backend=backend, **common).fit(Xr, yr)
    theirs = MLPRegressor(**common).fit(Xr, yr)
    for a, b in zip(_coefs(ours), theirs.coefs_ + theirs.intercepts_, strict=True):
        assert_allclose(a, b, rtol=1e-7, atol=1e-12)


# ---------------------------------------------------------------- clipping


def test_clipping_scales_a_large_gradient_to_the_bound(backend):
    net, p, g = _first_step_setup()
    norm = np.linalg.norm(g)
    bound = norm / 4
    got = _one_step(backend, solver="sgd", learning_rate_init=1.0, momentum=0.0,
                    max_grad_norm=bound)
    delta = got - _flat(net, p)
    assert_allclose(np.linalg.norm(delta), bound, rtol=1e-12)
    assert_allclose(delta, -_flat(net, g) * (bound / norm), rtol=1e-10, atol=1e-15)


def test_clipping_leaves_a_small_gradient_unchanged(backend):
    net, p, g = _first_step_setup()
    bound = 2 * np.linalg.norm(g)
    clipped = _one_step(backend, solver="sgd", learning_rate_init=1.0, momentum=0.0,
                        max_grad_norm=bound)
    plain = _one_step(backend, solver="sgd", learning_rate_init=1.0, momentum=0.0)
    assert_array_equal(clipped, plain)


def test_clipping_applies_to_adam_before_the_moments(backend):
    net, p, g = _first_step_setup()
    bound = np.linalg.norm(g) / 10
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    got = _one_step(backend, solver="adam", learning_rate_init=lr, max_grad_norm=bound)
    g = g * (bound / np.linalg.norm(g))
    m, v = (1 - b1) * g, (1 - b2) * g * g
    expected = p - lr * math.sqrt(1 - b2) / (1 - b1) * m / (np.sqrt(v) + eps)
    assert_allclose(got, _flat(net, expected), rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("bad", [0, -1.0, "1"])
def test_max_grad_norm_must_be_positive(bad):
    with pytest.raises(ValueError, match="max_grad_norm"):
        BPRegressor(max_grad_norm=bad).fit(Xr, yr)


# --------------------------------------------------------------- schedules


def test_cosine_schedule_with_warmup_follows_the_formula(backend):
    lr, epochs, frac = 0.02, 10, 0.2
    reg = BPRegressor(solver="sgd", learning_rate="cosine", warmup_fraction=frac,
                      learning_rate_init=lr, max_iter=epochs, tol=0.0, n_iter_no_change=epochs + 1,
                      hidden_layer_sizes=(5,), random_state=0, backend=backend).fit(Xr, yr)
    w = math.ceil(frac * epochs)
    expected = [
        lr * (e + 1) / w if e < w
        else lr * 0.5 * (1 + math.cos(math.pi * (e - w) / (epochs - w)))
        for e in range(epochs)
    ]
    assert_allclose(reg.learning_rate_curve_, expected, rtol=1e-15)


def test_cosine_without_warmup_starts_at_the_initial_rate(backend):
    reg = BPRegressor(solver="adam", learning_rate="cosine", learning_rate_init=0.01,
                      max_iter=4, tol=0.0, hidden_layer_sizes=(5,), random_state=0,
                      backend=backend).fit(Xr, yr)
    expected = [0.01 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    assert_allclose(reg.learning_rate_curve_, expected, rtol=1e-15)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_warmup_first_epoch_steps_with_the_reduced_rate(backend, solver):
    # The first epoch of a 4-epoch warm-up (of 8 planned) uses lr / 4: the
    # same step as a constant rate of lr / 4 (one partial_fit = one epoch).
    reg = BPRegressor(hidden_layer_sizes=(5,), random_state=0, max_iter=8, batch_size=len(yr),
                      shuffle=False, alpha=0.0, backend=backend, solver=solver,
                      learning_rate_init=0.04, warmup_fraction=0.5)
    reg.partial_fit(Xr, yr)
    got = np.concatenate([a.ravel() for a in reg.coefs_ + reg.intercepts_])
    constant = _one_step(backend, solver=solver, learning_rate_init=0.01)
    assert_array_equal(got, constant)
    assert reg.learning_rate_curve_ == [0.01]


def test_invscaling_applies_to_adam(backend):
    n = len(yr)
    reg = BPRegressor(solver="adam", learning_rate="invscaling", power_t=0.5,
                      learning_rate_init=0.01, max_iter=3, tol=0.0, hidden_layer_sizes=(5,),
                      random_state=0, backend=backend).fit(Xr, yr)
    expected = [0.01 / (e * n + 1) ** 0.5 for e in range(3)]
    assert_allclose(reg.learning_rate_curve_, expected, rtol=1e-15)


def test_adaptive_divides_adams_rate_by_five(backend):
    # tol so large that no epoch improves: from epoch 2 on the count grows;
    # when it exceeds n_iter_no_change (after epoch 3) the rate drops to a
    # fifth instead of stopping.
    reg = BPRegressor(solver="adam", learning_rate="adaptive", learning_rate_init=0.01,
                      max_iter=5, tol=1e6, n_iter_no_change=1, hidden_layer_sizes=(5,),
                      random_state=0, backend=backend).fit(Xr, yr)
    assert reg.n_iter_ == 5
    assert_allclose(reg.learning_rate_curve_, [0.01, 0.01, 0.01, 0.002, 0.002], rtol=1e-15)


def test_constant_schedule_records_the_initial_rate(backend):
    reg = BPRegressor(learning_rate_init=0.003, max_iter=3, tol=0.0, hidden_layer_sizes=(5,),
                      random_state=0, backend=backend).fit(Xr, yr)
    assert reg.learning_rate_curve_ == [0.003] * 3


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_warmup_fraction_must_be_in_0_1(bad):
    with pytest.raises(ValueError, match="warmup_fraction"):
        BPRegressor(warmup_fraction=bad).fit(Xr, yr)


def test_schedules_survive_pickling_mid_partial_fit(backend):
    import pickle

    reg = BPRegressor(solver="sgd", learning_rate="cosine", warmup_fraction=0.25, max_iter=8,
                      hidden_layer_sizes=(5,), random_state=0, backend=backend)
    for _ in range(3):
        reg.partial_fit(Xr, yr)
    copy = pickle.loads(pickle.dumps(reg))
    for _ in range(3):
        reg.partial_fit(Xr, yr)
        copy.partial_fit(Xr, yr)
    assert copy.learning_rate_curve_ == reg.learning_rate_curve_
    _assert_same_model(copy, reg)


# ------------------------------------------ a validation set of your own, scoring

Xb, yb = make_classification(240, 6, n_informative=4, random_state=1)
Xb_train, yb_train, Xb_val, yb_val = Xb[:160], yb[:160], Xb[160:], yb[160:]
ES = dict(hidden_layer_sizes=(6,), random_state=0, batch_size=32, learning_rate_init=0.01,
          early_stopping=True, n_iter_no_change=10)


def _epoch_models(cls, backend, epochs, X, y, **params):
    """The models after 1, 2, .. ``epochs`` epochs of training on all of X."""
    params = {**ES, **params, "early_stopping": False}
    return [cls(max_iter=k, backend=backend, **params).fit(X, y) for k in range(1, epochs + 1)]


def _log_loss_score(model, X, y):
    from sklearn.metrics import log_loss

    return -log_loss(y, model.predict_proba(X))


def _balanced_accuracy(model, X, y):
    from sklearn.metrics import balanced_accuracy_score

    return balanced_accuracy_score(y, model.predict(X))


def _neg_mean_abs_proba_error(model, X, y):
    return -float(np.mean(np.abs(model.predict_proba(X)[:, 1] - y)))


@pytest.mark.parametrize(
    "scoring, expected",
    [
        (None, lambda m, X, y: m.score(X, y)),
        ("loss", _log_loss_score),
        ("balanced_accuracy", _balanced_accuracy),
        (_neg_mean_abs_proba_error, _neg_mean_abs_proba_error),
    ],
    ids=["default", "loss", "string", "callable"],
)
def test_validation_scores_are_the_score_on_X_val_after_each_epoch(backend, scoring, expected):
    clf = BPClassifier(max_iter=4, scoring=scoring, backend=backend, **ES)
    clf.fit(Xb_train, yb_train, X_val=Xb_val, y_val=yb_val)
    assert len(clf.validation_scores_) == 4
    by_epoch = _epoch_models(BPClassifier, backend, 4, Xb_train, yb_train)
    assert_allclose(
        clf.validation_scores_, [expected(m, Xb_val, yb_val) for m in by_epoch], rtol=1e-9
    )


def test_regressor_validation_scores_are_r2_on_X_val(backend):
    Xv, yv = Xr[:12] + 0.1, yr[:12]
    reg = BPRegressor(max_iter=3, backend=backend, **ES).fit(Xr, yr, X_val=Xv, y_val=yv)
    by_epoch = _epoch_models(BPRegressor, backend, 3, Xr, yr)
    assert_allclose(reg.validation_scores_, [m.score(Xv, yv) for m in by_epoch], rtol=1e-9)


def test_sample_weight_val_weighs_the_validation_score(backend):
    sw_val = np.linspace(0.1, 3.0, len(yb_val))
    clf = BPClassifier(max_iter=3, backend=backend, **ES)
    clf.fit(Xb_train, yb_train, X_val=Xb_val, y_val=yb_val, sample_weight_val=sw_val)
    by_epoch = _epoch_models(BPClassifier, backend, 3, Xb_train, yb_train)
    assert_allclose(
        clf.validation_scores_,
        [m.score(Xb_val, yb_val, sample_weight=sw_val) for m in by_epoch], rtol=1e-12,
    )


def test_a_validation_set_it_cannot_fit_stops_earlier(backend):
    params = dict(ES, max_iter=60, n_iter_no_change=3, learning_rate_init=0.003)
    good = BPClassifier(backend=backend, **params).fit(
        Xb_train, yb_train, X_val=Xb_val, y_val=yb_val)
    bad = BPClassifier(backend=backend, **params).fit(
        Xb_train, yb_train, X_val=Xb_val, y_val=1 - yb_val)  # every label wrong
    assert bad.n_iter_ < good.n_iter_


def test_best_epoch_is_the_kept_epoch(backend):
    params = dict(ES, max_iter=60, n_iter_no_change=3, learning_rate_init=0.003)
    clf = BPClassifier(backend=backend, **params).fit(
        Xb_train, yb_train, X_val=Xb_val, y_val=1 - yb_val)
    assert clf.best_epoch_ < clf.n_iter_
    assert clf.validation_scores_[clf.best_epoch_ - 1] == clf.best_validation_score_
    # the best epoch's weights are restored
    assert clf.score(Xb_val, 1 - yb_val) == clf.best_validation_score_
    plain = BPClassifier(backend=backend, **{**params, "early_stopping": False})
    assert plain.fit(Xb_train, yb_train).best_epoch_ is None


def test_validation_set_passes_through_a_pipeline_with_metadata_routing(backend):
    import sklearn
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    with sklearn.config_context(enable_metadata_routing=True):
        clf = BPClassifier(max_iter=3, backend=backend, **ES).set_fit_request(
            X_val=True, y_val=True)
        pipe = Pipeline([("scale", StandardScaler()), ("clf", clf)], transform_input=["X_val"])
        pipe.fit(Xb_train * 10 + 3, yb_train, X_val=Xb_val * 10 + 3, y_val=yb_val)
    scaler = StandardScaler().fit(Xb_train * 10 + 3)
    direct = BPClassifier(max_iter=3, backend=backend, **ES).fit(
        scaler.transform(Xb_train * 10 + 3), yb_train,
        X_val=scaler.transform(Xb_val * 10 + 3), y_val=yb_val)
    assert_allclose(pipe[-1].validation_scores_, direct.validation_scores_, rtol=1e-12)
    _assert_same_model(pipe[-1], direct)


@pytest.mark.parametrize(
    "params, fit_params, match",
    [
        ({}, dict(X_val=Xb_val), "X_val is provided, but y_val was not provided"),
        ({}, dict(y_val=yb_val), "y_val is provided, but X_val was not provided"),
        ({"early_stopping": False}, dict(X_val=Xb_val, y_val=yb_val), "early_stopping is False"),
        ({"solver": "lbfgs"}, dict(X_val=Xb_val, y_val=yb_val), "does not do"),
        ({}, dict(sample_weight_val=np.ones(80)), "sample_weight_val is provided"),
        ({}, dict(X_val=Xb_val, y_val=yb_val + 5), "y_val has classes not in y"),
        ({}, dict(X_val=Xb_val[:, :3], y_val=yb_val), "features"),
        ({}, dict(X_val=Xb_val, y_val=yb_val[:10]), "inconsistent numbers of samples"),
    ],
)
def test_bad_validation_arguments_raise(params, fit_params, match):
    clf = BPClassifier(**{**ES, "max_iter": 2, **params})
    with pytest.raises(ValueError, match=match):
        clf.fit(Xb_train, yb_train, **fit_params)


def test_training_state_survives_a_skops_round_trip(tmp_path, backend):
    pytest.importorskip("skops")
    import fastbp

    clf = BPClassifier(class_weight="balanced", learning_rate="cosine", warmup_fraction=0.3,
                       weight_decay=0.01, max_grad_norm=1.0, backend=backend, **SMALL)
    classes = np.unique(yc)
    clf.partial_fit(Xc[:80], yc[:80], classes=classes)
    fastbp.save(clf, tmp_path / "model.skops")
    copy = fastbp.load(tmp_path / "model.skops")
    clf.partial_fit(Xc[80:], yc[80:])
    copy.partial_fit(Xc[80:], yc[80:])
    assert copy.learning_rate_curve_ == clf.learning_rate_curve_
    _assert_same_model(copy, clf)


def test_regressor_loss_scoring_is_the_negative_half_squared_error(backend):
    Xv, yv = Xr[:12] + 0.1, yr[:12]
    reg = BPRegressor(max_iter=3, scoring="loss", backend=backend, **ES)
    reg.fit(Xr, yr, X_val=Xv, y_val=yv)
    by_epoch = _epoch_models(BPRegressor, backend, 3, Xr, yr)
    expected = [-0.5 * np.mean((m.predict(Xv) - yv) ** 2) for m in by_epoch]
    assert_allclose(reg.validation_scores_, expected, rtol=1e-9)


def test_unknown_scoring_name_raises():
    clf = BPClassifier(**{**ES, "max_iter": 2, "scoring": "no_such_score"})
    with pytest.raises(ValueError, match="no_such_score"):
        clf.fit(Xb_train, yb_train)
