"""Inverted dropout on the hidden units (``dropout``): the masks each backend
draws (fraction dropped, 1/(1-p) scaling, per layer), the exact gradient of
the masked network, no dropout outside training, determinism, nothing drawn
at rate 0, the errors, and the two backends reaching the same losses."""

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import fastbp._base as base_module
from fastbp import BPClassifier, BPRegressor
from fastbp import _numpy_backend as nb
from fastbp import activations as act
from fastbp.backends import get_backend
from fastbp.network import Network
from fastbp.solvers import Hyper, OptState

pytestmark = [
    pytest.mark.usefixtures("one_blas_thread"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]

# Every hidden activation the build has (the table grows with new ones).
HIDDEN = act.HIDDEN_ACTIVATIONS


def _cb():
    return pytest.importorskip("fastbp._cython_backend")


def _data(n=60, n_features=6, seed=0):
    X, y = make_classification(n, n_features, n_informative=4, random_state=seed)
    return X, y


def _net(activation="relu", units=(7, 6), dtype=np.float64, n_in=5, n_out=3):
    return Network([n_in, *units, n_out], activation, "softmax", "log_loss", 2, dtype)


def _batch(net, n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, net.layer_units[0])).astype(net.dtype)
    Y = np.eye(net.layer_units[-1], dtype=net.dtype)[rng.integers(0, net.layer_units[-1], n)]
    params = net.init_params(np.random.RandomState(seed))
    # Non-zero biases: no hidden output sits exactly at a kink.
    params[net.n_coefs:] = rng.normal(scale=0.3, size=net.n_params - net.n_coefs)
    return X, Y, params


# ------------------------------------------------------------ the masks


def _check_masks(masks, rates, n, units, dtype):
    """Each mask holds 0 or exactly dtype(1/(1-p)); the fraction of zeros is
    p within 5 binomial standard deviations; rate 0: no mask."""
    for M, p, u in zip(masks, rates, units, strict=True):
        if p == 0:
            assert M is None
            continue
        assert M.shape == (n, u) and M.dtype == dtype
        scale = np.dtype(dtype).type(1.0 / (1.0 - p))
        assert set(np.unique(M)) <= {0, scale}
        dropped = np.mean(M == 0)
        assert abs(dropped - p) <= 5 * np.sqrt(p * (1 - p) / M.size), (p, dropped)
        # Independent units: not whole rows or whole columns, and units 1, 2
        # or 32 apart in the order they are drawn (the compiled generator's
        # two halves of a draw, its neighbouring lanes, one lane's next
        # draw) both dropped with probability p^2.
        assert 0 < np.mean(M == 0, axis=0).min() and np.mean(M == 0, axis=0).max() < 1
        assert 0 < np.mean(M == 0, axis=1).mean() < 1
        flat = M.ravel() == 0
        for lag in (1, 2, 32):
            both = np.mean(flat[:-lag] & flat[lag:])
            sd = np.sqrt(p * p * (1 - p * p) / flat.size)
            assert abs(both - p * p) <= 5 * sd, (p, lag, both)


RATES = (0.2, 0.0, 0.6)
UNITS = (150, 40, 120)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_masks_drop_each_layers_rate_and_scale_the_kept_units(dtype):
    cb = _cb()
    net = _net("tanh", UNITS, dtype)
    X, Y, params = _batch(net, 400)
    out = cb._dropout_batch_shim(net, params, X, Y, RATES, seed=12345)
    _check_masks(out["masks"], RATES, 400, UNITS, dtype)
    for M, Z, Zm in zip(out["masks"], out["Z"], out["Zm"], strict=True):
        # What a layer passes on is its output times the mask; its own
        # output stays unmasked (the derivative needs it).
        np.testing.assert_array_equal(Zm, Z if M is None else Z * M)
        if M is not None:
            assert (Z[M == 0] != 0).any()
    # A new seed draws new masks; the same seed the same; the next batch of
    # the same generator new ones.
    again = cb._dropout_batch_shim(net, params, X, Y, RATES, seed=12345)
    other = cb._dropout_batch_shim(net, params, X, Y, RATES, seed=12346)
    second = cb._dropout_batch_shim(net, params, X, Y, RATES, seed=12345, batches=2)
    np.testing.assert_array_equal(again["masks"][0], out["masks"][0])
    assert (other["masks"][0] != out["masks"][0]).any()
    assert (second["masks"][0] != out["masks"][0]).any()
    assert (second["masks"][2] != out["masks"][2]).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_masks_drop_each_layers_rate_and_scale_the_kept_units(dtype):
    net = _net("tanh", UNITS, dtype)
    rng = np.random.Generator(np.random.PCG64(12345))
    _check_masks(nb._draw_masks(rng, net, 400, RATES), RATES, 400, UNITS, dtype)


def test_compiled_masks_of_maxout_layers_act_on_the_unit_outputs(require_cython):
    cb = _cb()
    net = _net("maxout", (50, 30))
    X, Y, params = _batch(net, 200)
    out = cb._dropout_batch_shim(net, params, X, Y, (0.5, 0.3), seed=3)
    _check_masks(out["masks"], (0.5, 0.3), 200, (50, 30), np.float64)
    np.testing.assert_array_equal(out["Zm"][0], out["Z"][0] * out["masks"][0])


# ------------------------------------------------- gradient of the masked net


def _masked_loss(net, params, X, Y, masks, alpha):
    return nb._loss_grad_into(net, params, X, Y, None, alpha, np.empty_like(params), masks)


def _finite_differences(net, params, X, Y, masks, alpha, h=1e-6):
    fd = np.empty_like(params)
    for i in range(params.size):
        e = np.zeros_like(params)
        e[i] = h
        fd[i] = (_masked_loss(net, params + e, X, Y, masks, alpha)
                 - _masked_loss(net, params - e, X, Y, masks, alpha)) / (2 * h)
    return fd


@pytest.mark.parametrize("activation", HIDDEN)
def test_gradient_with_a_fixed_mask_matches_finite_differences(activation, backend):
    net = _net(activation, (6, 5))
    X, Y, params = _batch(net, 11, seed=1)
    alpha = 0.1
    if backend == "cython":
        # The masks the compiled generator drew, and its gradient with them.
        out = _cb()._dropout_batch_shim(net, params, X, Y, (0.3, 0.5), seed=7, alpha=alpha)
        masks, loss, grad = out["masks"], out["loss"], out["grad"]
    else:
        masks = nb._draw_masks(np.random.Generator(np.random.PCG64(7)), net, 11, (0.3, 0.5))
        grad = np.empty_like(params)
        loss = nb._loss_grad_into(net, params, X, Y, None, alpha, grad, masks)
    assert all((M == 0).any() for M in masks)
    assert loss == pytest.approx(_masked_loss(net, params, X, Y, masks, alpha), rel=1e-12)
    fd = _finite_differences(net, params, X, Y, masks, alpha)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)
    # ... and it is not the gradient of the network without dropout.
    _, plain = get_backend(backend).loss_grad(net, params, X, Y, None, alpha)
    assert np.abs(plain - grad).max() > 1e-3


@pytest.mark.parametrize("activation", HIDDEN)
def test_compiled_gradient_with_given_masks_equals_numpy(activation, require_cython):
    net = _net(activation, (6, 5))
    X, Y, params = _batch(net, 13, seed=2)
    masks = nb._draw_masks(np.random.Generator(np.random.PCG64(1)), net, 13, (0.4, 0.25))
    grad = np.empty_like(params)
    loss = nb._loss_grad_into(net, params, X, Y, None, 0.01, grad, masks)
    out = _cb()._dropout_batch_shim(net, params, X, Y, (0.4, 0.25), masks=masks, alpha=0.01)
    assert out["loss"] == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(out["grad"], grad, rtol=1e-10, atol=1e-14)


# ------------------------------------------------------ nothing drawn at 0


@pytest.mark.parametrize("dropout", [0.0, (0.0, 0.0), [0, 0.0]])
def test_rate_zero_fits_the_same_model_and_draws_nothing(dropout, backend):
    X, y = _data()
    kw = dict(hidden_layer_sizes=(5, 4), max_iter=4, batch_size=16, backend=backend)
    plain = BPClassifier(random_state=0, **kw).fit(X, y)
    rs = np.random.RandomState(0)
    with_zero = BPClassifier(random_state=rs, dropout=dropout, **kw).fit(X, y)
    for a, b in zip(plain.coefs_ + plain.intercepts_,
                    with_zero.coefs_ + with_zero.intercepts_, strict=True):
        np.testing.assert_array_equal(a, b)
    # random_state's stream is consumed exactly as scikit-learn's MLP does
    # (initialisation and shuffling only).
    reference = np.random.RandomState(0)
    MLPClassifier(hidden_layer_sizes=(5, 4), max_iter=4, batch_size=16,
                  random_state=reference).fit(X, y)
    assert rs.randint(2**30) == reference.randint(2**30)


def test_a_positive_rate_draws_from_random_state(backend):
    X, y = _data()
    rs = np.random.RandomState(0)
    reference = np.random.RandomState(0)
    kw = dict(hidden_layer_sizes=(5,), max_iter=3, backend=backend)
    BPClassifier(random_state=rs, dropout=0.2, **kw).fit(X, y)
    BPClassifier(random_state=reference, **kw).fit(X, y)
    assert rs.randint(2**30) != reference.randint(2**30)


# --------------------------------------------------------- determinism


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_same_random_state_same_fit_per_backend(solver, backend):
    X, y = _data()
    kw = dict(hidden_layer_sizes=(8, 6), dropout=[0.3, 0.1], solver=solver, max_iter=5,
              batch_size=8, backend=backend)
    a = BPClassifier(random_state=1, **kw).fit(X, y)
    b = BPClassifier(random_state=1, **kw).fit(X, y)
    c = BPClassifier(random_state=1, **{**kw, "dropout": 0.0}).fit(X, y)
    np.testing.assert_array_equal(a._params, b._params)
    assert a.loss_curve_ == b.loss_curve_
    assert np.abs(a._params - c._params).max() > 1e-4  # the masks did something


def test_compiled_masks_continue_across_chunks(require_cython):
    """The generator's state lives in the workspace: one batch per chunk (the
    kernel returning to Python after each) gives the same fit."""
    cb = _cb()
    X, y = _data(200)
    kw = dict(hidden_layer_sizes=(8,), dropout=0.4, max_iter=3, batch_size=10,
              random_state=0, backend="cython")
    whole = BPClassifier(**kw).fit(X, y)
    previous = cb._chunk_seconds_shim(0.0)
    try:
        chunked = BPClassifier(**kw).fit(X, y)
    finally:
        cb._chunk_seconds_shim(previous)
    np.testing.assert_array_equal(whole._params, chunked._params)


class _SeedSpy:
    def __init__(self, backend):
        self._b = get_backend(backend)
        self.name = self._b.name
        self.seeds = []

    def forward(self, *args, **kw):
        return self._b.forward(*args, **kw)

    def train_epoch(self, *args):
        self.seeds.append(args[-1].dropout_seed)
        return self._b.train_epoch(*args)


def test_each_epoch_and_each_partial_fit_call_gets_new_masks(backend, monkeypatch):
    X, y = _data(20)
    spy = _SeedSpy(backend)
    monkeypatch.setattr(base_module, "get_backend", lambda name: spy)
    kw = dict(hidden_layer_sizes=(5,), dropout=0.5, random_state=0, backend=backend)
    BPClassifier(max_iter=3, **kw).fit(X, y)
    assert len(set(spy.seeds)) == 3
    # An int random_state restarts its stream at each partial_fit call; the
    # masks must still change from call to call, and repeat for a clone.
    runs = []
    for _ in range(2):
        spy.seeds = []
        clf = BPClassifier(**kw)
        for _ in range(3):
            clf.partial_fit(X, y, classes=[0, 1])
        runs.append(spy.seeds)
    assert len(set(runs[0])) == 3
    assert runs[0] == runs[1]


# ------------------------------------------------ never outside training


def _manual_forward(clf, X):
    Z = X
    for i, (W, b) in enumerate(zip(clf.coefs_, clf.intercepts_, strict=True)):
        Z = Z @ W + b
        if i < len(clf.coefs_) - 1:
            Z = np.maximum(Z, 0)
    return Z


def test_predict_is_deterministic_and_drops_nothing(backend):
    X, y = make_regression(80, 5, random_state=0)
    reg = BPRegressor(hidden_layer_sizes=(10, 10), dropout=0.5, max_iter=5,
                      random_state=0, backend=backend).fit(X, y)
    first = reg.predict(X)
    np.testing.assert_array_equal(first, reg.predict(X))
    np.testing.assert_allclose(first, _manual_forward(reg, X).ravel(), rtol=1e-10)


def test_early_stopping_scores_without_dropout(backend):
    """The validation score of an epoch is that of the unmasked network: with
    one epoch, the score of the fitted model on the validation set."""
    X, y = make_regression(120, 5, noise=1.0, random_state=0)
    reg = BPRegressor(hidden_layer_sizes=(10,), dropout=0.5, early_stopping=True, max_iter=1,
                      learning_rate_init=0.01, random_state=0, backend=backend)
    reg.fit(X[:100], y[:100], X_val=X[100:], y_val=y[100:])
    assert reg.validation_scores_[0] == pytest.approx(reg.score(X[100:], y[100:]), rel=1e-12)


def test_loss_grad_and_backprop_never_drop(backend):
    X, y = _data(30)
    clf = BPClassifier(hidden_layer_sizes=(6,), dropout=0.5, max_iter=2, random_state=0,
                       backend=backend).fit(X, y)
    be = get_backend(backend)
    Y = np.eye(2)[y][:, 1:]
    first = be.loss_grad(clf._net, clf._params, X, Y)
    second = be.loss_grad(clf._net, clf._params, X, Y)
    assert first[0] == second[0]
    np.testing.assert_array_equal(first[1], second[1])


# ------------------------------------------------------------- errors


def test_lbfgs_with_dropout_is_an_error_naming_dropout():
    X, y = _data()
    with pytest.raises(ValueError, match="dropout=0.2 needs a stochastic solver"):
        BPClassifier(solver="lbfgs", dropout=0.2).fit(X, y)
    with pytest.raises(ValueError, match=r"dropout=\[0.0, 0.1\] needs a stochastic"):
        BPRegressor(solver="lbfgs", hidden_layer_sizes=(3, 3), dropout=[0.0, 0.1]).fit(
            X, y.astype(float))
    # all rates 0: no dropout, lbfgs is fine
    BPClassifier(solver="lbfgs", hidden_layer_sizes=(3, 3), dropout=[0, 0.0], max_iter=5).fit(X, y)


@pytest.mark.parametrize(
    "dropout, match",
    [
        ([0.1], r"dropout has 1 values, but the network has 2 hidden layers"),
        ((0.1, 0.2, 0.3), r"dropout has 3 values, but the network has 2 hidden layers"),
        ([0.1, 1.0], r"dropout values must be numbers in \[0, 1\)"),
        ([-0.1, 0.1], r"dropout values must be numbers in \[0, 1\)"),
        ([True, 0.1], r"dropout values must be numbers in \[0, 1\)"),
        (["0.1", 0.1], r"dropout values must be numbers in \[0, 1\)"),
        (1.0, r"'dropout' parameter"),
        (-0.5, r"'dropout' parameter"),
    ],
)
def test_bad_dropout_is_a_value_error_naming_it(dropout, match):
    X, y = _data()
    clf = BPClassifier(hidden_layer_sizes=(4, 3), dropout=dropout)
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)
    with pytest.raises(ValueError, match=match):
        clf.partial_fit(X, y, classes=[0, 1])


def test_backends_check_the_dropout_they_are_given(backend):
    net = _net("relu", (4, 3))
    X, Y, params = _batch(net, 10)
    be = get_backend(backend)

    def epoch(hyper):
        state = OptState("adam", net.n_params, net.dtype, 1e-3)
        return be.train_epoch(net, params.copy(), state, X, Y, None, np.arange(10), 4, hyper)

    with pytest.raises(ValueError, match="one rate per hidden layer"):
        epoch(Hyper(dropout=(0.1,), dropout_seed=0))
    with pytest.raises(ValueError, match=r"numbers in \[0, 1\)"):
        epoch(Hyper(dropout=(0.1, 1.0), dropout_seed=0))
    with pytest.raises(ValueError, match="dropout_seed"):
        epoch(Hyper(dropout=(0.1, 0.0)))
    # all zero: nothing to seed
    assert np.isfinite(epoch(Hyper(dropout=(0.0, 0.0))))


# ---------------------------------------- the backends' loss distributions


def _final_losses(backend, seeds, dropout):
    X, y = make_classification(120, 8, n_informative=5, random_state=0)
    out = []
    for seed in seeds:
        clf = BPClassifier(hidden_layer_sizes=(16,), dropout=dropout, backend=backend,
                           random_state=seed, max_iter=15, batch_size=16,
                           learning_rate_init=0.01).fit(X, y)
        # the last epoch's (masked) training loss, and the unmasked one
        out.append((clf.loss_, log_loss(y, clf.predict_proba(X))))
    return np.array(out)


def test_both_backends_reach_the_same_loss_distribution(require_cython):
    """Different masks, same law: over 20 seeds the mean final losses of the
    two backends agree within 4 standard errors of their difference (a fixed
    set of seeds: deterministic). Without dropout, or at a rate the other
    backend does not use, the means are far apart on the same scale."""
    seeds = range(20)
    numpy_losses = _final_losses("numpy", seeds, 0.5)
    cython_losses = _final_losses("cython", seeds, 0.5)

    def z(a, b):
        se = np.sqrt(a.var(axis=0, ddof=1) / len(a) + b.var(axis=0, ddof=1) / len(b))
        return np.abs(a.mean(axis=0) - b.mean(axis=0)) / se

    assert (z(numpy_losses, cython_losses) < 4).all(), z(numpy_losses, cython_losses)
    # The test can tell: a quarter of the rate is a different distribution.
    assert (z(numpy_losses, _final_losses("cython", seeds, 0.125)) > 4).all()


# ------------------------------------------------ model selection, dtypes


def test_grid_search_over_dropout_in_a_pipeline(backend):
    X, y = _data(80)
    pipe = make_pipeline(
        StandardScaler(),
        BPClassifier(hidden_layer_sizes=(6, 4), max_iter=5, random_state=0, backend=backend),
    )
    grid = {"bpclassifier__dropout": [0.0, 0.3, [0.5, 0.1], (0.0, 0.2)]}
    search = GridSearchCV(pipe, grid, cv=2, error_score="raise").fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_params_["bpclassifier__dropout"] in grid["bpclassifier__dropout"]
    assert search.best_estimator_[-1].dropout == search.best_params_["bpclassifier__dropout"]


def test_float32_draws_the_masks_of_float64(backend):
    """Each backend draws the same masks in both dtypes: a float32 fit
    follows the float64 one to float32 rounding."""
    X, y = _data(100)
    kw = dict(hidden_layer_sizes=(12, 8), activation="tanh", dropout=[0.2, 0.4], max_iter=3,
              batch_size=20, learning_rate_init=0.01, random_state=0, backend=backend)
    single = BPClassifier(**kw).fit(X.astype(np.float32), y)
    double = BPClassifier(**kw).fit(X, y)
    assert single.coefs_[0].dtype == np.float32
    np.testing.assert_allclose(single._params, double._params, rtol=1e-3, atol=1e-4)
    # (not a fit without dropout)
    plain = BPClassifier(**{**kw, "dropout": 0.0}).fit(X, y)
    assert np.abs(plain._params - double._params).max() > 1e-2


def test_sparse_input_draws_the_masks_of_dense_input(backend):
    """The masks do not depend on how X is stored: a CSR fit is the dense
    fit (to rounding)."""
    import scipy.sparse as sp

    X, y = _data(90)
    X[np.abs(X) < 0.8] = 0
    kw = dict(hidden_layer_sizes=(10, 6), dropout=[0.3, 0.2], max_iter=3, batch_size=16,
              random_state=0, backend=backend)
    dense = BPClassifier(**kw).fit(X, y)
    sparse = BPClassifier(**kw).fit(sp.csr_matrix(X), y)
    np.testing.assert_allclose(sparse._params, dense._params, rtol=1e-9, atol=1e-12)
