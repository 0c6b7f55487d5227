"""``fastbp.backprop``: central finite-difference checks of the gradient for
every hidden activation (and per-layer lists of them) x every (output
activation, loss) pairing, with an L2 penalty and sample weights, plus an
independent check of the loss value.

The seeded problems keep every pre-activation well away (>> eps) from the
kinks of relu, leaky_relu, elu, selu and maxout's ties, so central
differences see one side only."""

import functools

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose

from fastbp import backprop

HIDDEN = [
    ("identity", 2),
    ("logistic", 2),
    ("sigmoid", 2),
    ("tanh", 2),
    ("relu", 2),
    ("softplus", 2),
    ("maxout", 2),
    ("maxout", 3),
    ("leaky_relu", 2),  # negative_slope=0.3 below
    ("elu", 2),
    ("selu", 2),
    ("gelu", 2),
    ("silu", 2),
    ("swish", 2),
    # one activation per hidden layer (HID has two)
    (("maxout", "gelu"), 3),
    (("silu", "maxout"), 2),
    (("leaky_relu", "selu"), 2),
    (("elu", "tanh"), 2),
]
SLOPE = 0.3

PAIRS = [
    ("identity", "squared_error"),
    ("logistic", "squared_error"),
    ("tanh", "squared_error"),
    ("relu", "squared_error"),
    ("softplus", "squared_error"),
    ("exp", "squared_error"),
    ("logistic", "log_loss"),
    ("softmax", "log_loss"),
    ("exp", "poisson"),
]

N, N_IN, HID, N_OUT = 7, 4, (5, 3), 3


def _problem(activation, k, out_activation, loss, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(N, N_IN))
    if out_activation == "softmax":
        y = np.eye(N_OUT)[rng.randint(N_OUT, size=N)]
    elif loss == "log_loss":
        y = (rng.uniform(size=(N, N_OUT)) < 0.5).astype(float)
    elif loss == "poisson":
        y = rng.poisson(2.0, size=(N, N_OUT)).astype(float)
    else:
        y = rng.normal(size=(N, N_OUT))
    per_layer = [activation] * len(HID) if isinstance(activation, str) else activation
    units = [N_IN, *HID, N_OUT]
    coefs, intercepts = [], []
    for i in range(len(units) - 1):
        pieces = k if i < len(HID) and per_layer[i] == "maxout" else 1
        cols = units[i + 1] * pieces
        coefs.append(rng.uniform(-0.8, 0.8, size=(units[i], cols)))
        intercepts.append(rng.uniform(-0.5, 0.5, size=cols))
    sw = rng.uniform(0.2, 3.0, size=N)
    return X, y, coefs, intercepts, sw


def _fd_gradients(X, y, coefs, intercepts, eps=1e-6, **kw):
    def f(cs, bs):
        return backprop(X, y, cs, bs, backend="numpy", **kw)[0]

    out_c, out_b = [], []
    for group, out in ((coefs, out_c), (intercepts, out_b)):
        for j, A in enumerate(group):
            G = np.zeros_like(A)
            for idx in np.ndindex(A.shape):
                cs = [c.copy() for c in coefs]
                bs = [b.copy() for b in intercepts]
                tgt = (cs if group is coefs else bs)[j]
                tgt[idx] += eps
                up = f(cs, bs)
                tgt[idx] -= 2 * eps
                down = f(cs, bs)
                G[idx] = (up - down) / (2 * eps)
            out.append(G)
    return out_c, out_b


@functools.lru_cache(maxsize=None)
def _fd_weighted(activation, k, out_activation, loss):
    """Finite differences (NumPy), computed once and shared by the backends."""
    X, y, coefs, intercepts, sw = _problem(activation, k, out_activation, loss)
    return _fd_gradients(X, y, coefs, intercepts, activation=activation,
                         out_activation=out_activation, loss=loss, alpha=0.3,
                         sample_weight=sw, maxout_pieces=k, negative_slope=SLOPE)


@pytest.mark.parametrize("out_activation,loss", PAIRS)
@pytest.mark.parametrize("activation,k", HIDDEN)
def test_gradient_matches_central_differences_with_alpha_and_sample_weight(
    backend, activation, k, out_activation, loss
):
    X, y, coefs, intercepts, sw = _problem(activation, k, out_activation, loss)
    kw = dict(activation=activation, out_activation=out_activation, loss=loss,
              alpha=0.3, sample_weight=sw, maxout_pieces=k, negative_slope=SLOPE)
    _, dW, db = backprop(X, y, coefs, intercepts, backend=backend, **kw)
    fdW, fdb = _fd_weighted(activation, k, out_activation, loss)
    for g, fd in zip(dW + db, fdW + fdb, strict=True):
        assert g.shape == fd.shape
        assert_allclose(g, fd, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("activation,k", [("tanh", 2), ("relu", 2), ("maxout", 3)])
@pytest.mark.parametrize("out_activation,loss", [("softmax", "log_loss"), ("identity", "squared_error")])
def test_gradient_matches_central_differences_unweighted(backend, activation, k, out_activation, loss):
    X, y, coefs, intercepts, _ = _problem(activation, k, out_activation, loss, seed=1)
    kw = dict(activation=activation, out_activation=out_activation, loss=loss,
              maxout_pieces=k)
    _, dW, db = backprop(X, y, coefs, intercepts, backend=backend, **kw)
    fdW, fdb = _fd_gradients(X, y, coefs, intercepts, **kw)
    for g, fd in zip(dW + db, fdW + fdb, strict=True):
        assert_allclose(g, fd, rtol=1e-5, atol=1e-8)


def _reference_loss(X, y, coefs, intercepts, activation, out_activation, loss, alpha, sw, k):
    """The loss written out independently, the slow obvious way."""
    f = {
        "identity": lambda h: h,
        "logistic": lambda h: 1 / (1 + np.exp(-h)),
        "sigmoid": lambda h: 1 / (1 + np.exp(-h)),
        "tanh": np.tanh,
        "relu": lambda h: np.maximum(h, 0),
        "softplus": lambda h: np.log1p(np.exp(h)),
        "exp": np.exp,
        "softmax": lambda h: np.exp(h) / np.exp(h).sum(axis=1, keepdims=True),
    }
    Z = X
    for i, (W, b) in enumerate(zip(coefs, intercepts, strict=True)):
        H = Z @ W + b
        if i == len(coefs) - 1:
            Z = f[out_activation](H)
        elif activation == "maxout":
            Z = H.reshape(H.shape[0], -1, k).max(axis=2)
        else:
            Z = f[activation](H)
    if loss == "squared_error":
        per = 0.5 * ((Z - y) ** 2).sum(axis=1)
    elif loss == "poisson":
        with np.errstate(divide="ignore", invalid="ignore"):
            ylogy = np.where(y > 0, y * np.log(y / Z), 0.0)
        per = (ylogy - y + Z).sum(axis=1)
    elif out_activation == "softmax":
        per = -(y * np.log(Z)).sum(axis=1)
    else:
        per = -(y * np.log(Z) + (1 - y) * np.log(1 - Z)).sum(axis=1)
    s = np.ones(len(X)) if sw is None else sw
    penalty = 0.5 * alpha * sum((W**2).sum() for W in coefs) / s.sum()
    return (per * s).sum() / s.sum() + penalty


@pytest.mark.parametrize("out_activation,loss", PAIRS)
@pytest.mark.parametrize("activation,k", [("softplus", 2), ("maxout", 3), ("logistic", 2)])
@pytest.mark.parametrize("weighted", [False, True])
def test_loss_value_matches_independent_formula(backend, activation, k, out_activation, loss, weighted):
    X, y, coefs, intercepts, sw = _problem(activation, k, out_activation, loss, seed=2)
    sw = sw if weighted else None
    got, _, _ = backprop(X, y, coefs, intercepts, activation=activation,
                         out_activation=out_activation, loss=loss, alpha=0.7,
                         sample_weight=sw, maxout_pieces=k, backend=backend)
    want = _reference_loss(X, y, coefs, intercepts, activation, out_activation,
                           loss, 0.7, sw, k)
    assert got == pytest.approx(want, rel=1e-10)


def test_squared_error_sums_over_outputs_and_averages_over_samples(backend):
    # J = 1/(2n) sum_i sum_k (z_ik - y_ik)^2, with zero weights: z = b.
    X = np.zeros((4, 2))
    y = np.array([[1.0, 2.0], [3.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    coefs = [np.zeros((2, 3)), np.zeros((3, 2))]
    intercepts = [np.zeros(3), np.zeros(2)]
    loss, _, db = backprop(X, y, coefs, intercepts, activation="identity", backend=backend)
    assert loss == pytest.approx((1 + 4 + 9 + 0 + 0 + 0 + 1 + 1) / (2 * 4))
    assert_allclose(db[1], -y.mean(axis=0))


def test_unit_sample_weights_equal_no_weights(backend):
    X, y, coefs, intercepts, _ = _problem("tanh", 2, "softmax", "log_loss", seed=3)
    kw = dict(activation="tanh", out_activation="softmax", loss="log_loss", alpha=0.2)
    a = backprop(X, y, coefs, intercepts, backend=backend, **kw)
    b = backprop(X, y, coefs, intercepts, sample_weight=np.ones(N), backend=backend, **kw)
    assert a[0] == pytest.approx(b[0], rel=1e-12)
    for g, h in zip(a[1] + a[2], b[1] + b[2], strict=True):
        assert_allclose(g, h, rtol=1e-12)


def test_integer_sample_weights_equal_repeated_rows(backend):
    X, y, coefs, intercepts, _ = _problem("relu", 2, "identity", "squared_error", seed=4)
    w = np.array([1, 2, 0, 3, 1, 1, 2])
    kw = dict(activation="relu", alpha=0.5)
    a = backprop(X, y, coefs, intercepts, sample_weight=w, backend=backend, **kw)
    b = backprop(np.repeat(X, w, axis=0), np.repeat(y, w, axis=0), coefs,
                 intercepts, backend=backend, **kw)
    assert a[0] == pytest.approx(b[0], rel=1e-12)
    for g, h in zip(a[1] + a[2], b[1] + b[2], strict=True):
        assert_allclose(g, h, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_X_gives_the_dense_gradient(backend, fmt):
    X, y, coefs, intercepts, sw = _problem("softplus", 2, "logistic", "log_loss", seed=5)
    X[np.abs(X) < 0.7] = 0.0
    kw = dict(activation="softplus", out_activation="logistic", loss="log_loss",
              alpha=0.1, sample_weight=sw)
    a = backprop(X, y, coefs, intercepts, backend=backend, **kw)
    b = backprop(sp.csr_matrix(X).asformat(fmt), y, coefs, intercepts, backend=backend, **kw)
    assert a[0] == pytest.approx(b[0], rel=1e-12)
    for g, h in zip(a[1] + a[2], b[1] + b[2], strict=True):
        assert_allclose(g, h, rtol=1e-10, atol=1e-14)


def test_float32_input_computes_in_float32(backend):
    X, y, coefs, intercepts, _ = _problem("tanh", 2, "softmax", "log_loss", seed=6)
    kw = dict(activation="tanh", out_activation="softmax", loss="log_loss", alpha=0.1)
    a = backprop(X, y, coefs, intercepts, backend=backend, **kw)
    b = backprop(X.astype(np.float32), y, coefs, intercepts, backend=backend, **kw)
    for g, h in zip(a[1] + a[2], b[1] + b[2], strict=True):
        assert h.dtype == np.float32
        assert_allclose(h, g, rtol=2e-4, atol=1e-6)


def test_single_hidden_layer_and_no_hidden_layer(backend):
    rng = np.random.RandomState(7)
    X = rng.normal(size=(5, 3))
    y = rng.normal(size=(5, 2))
    W = rng.normal(size=(3, 2))
    b = rng.normal(size=2)
    # No hidden layer: linear least squares, gradient X^T (XW + b - y) / n.
    loss, dW, db = backprop(X, y, [W], [b], backend=backend)
    R = X @ W + b - y
    assert loss == pytest.approx(0.5 * (R**2).sum() / 5)
    assert_allclose(dW[0], X.T @ R / 5)
    assert_allclose(db[0], R.mean(axis=0))


def test_maxout_gradient_goes_to_first_argmax_piece_on_ties(backend):
    # Two pieces with identical weights: every unit is tied.
    X = np.array([[1.0, -2.0], [0.5, 3.0]])
    y = np.array([[1.0], [0.0]])
    Wp = np.array([[0.3, -0.2], [0.1, 0.4]])
    W1 = np.repeat(Wp, 2, axis=1)  # columns (u0p0, u0p1, u1p0, u1p1)
    b1 = np.zeros(4)
    W2 = np.array([[1.0], [-1.0]])
    b2 = np.zeros(1)
    _, dW, db = backprop(X, y, [W1, W2], [b1, b2], activation="maxout",
                         maxout_pieces=2, backend=backend)
    assert np.any(dW[0][:, 0::2] != 0)
    assert_allclose(dW[0][:, 1::2], 0.0, atol=0)
    assert_allclose(db[0][1::2], 0.0, atol=0)


@pytest.mark.parametrize("out_activation,loss", PAIRS)
@pytest.mark.parametrize(
    "activation,k",
    [("leaky_relu", 2), ("elu", 2), ("selu", 2), ("gelu", 2), ("silu", 2), (("maxout", "silu"), 2)],
)
def test_float32_gradient_of_new_activations_agrees_with_float64(backend, activation, k, out_activation, loss):
    X, y, coefs, intercepts, sw = _problem(activation, k, out_activation, loss, seed=8)
    kw = dict(activation=activation, out_activation=out_activation, loss=loss,
              alpha=0.3, sample_weight=sw, maxout_pieces=k, negative_slope=SLOPE)
    a = backprop(X, y, coefs, intercepts, backend=backend, **kw)
    b = backprop(X.astype(np.float32), y, coefs, intercepts, backend=backend, **kw)
    assert b[0] == pytest.approx(a[0], rel=1e-5)
    for g, h in zip(a[1] + a[2], b[1] + b[2], strict=True):
        assert h.dtype == np.float32
        assert_allclose(h, g, rtol=2e-4, atol=2e-5 * np.abs(g).max())


def test_backprop_activation_list_must_match_the_hidden_layers(backend):
    X, y, coefs, intercepts, _ = _problem("relu", 2, "identity", "squared_error")
    with pytest.raises(ValueError, match="activation has 3 entries, but the network has 2 hidden layers"):
        backprop(X, y, coefs, intercepts, activation=["relu"] * 3, backend=backend)
    with pytest.raises(ValueError, match=r"activation\[1\] must be one of"):
        backprop(X, y, coefs, intercepts, activation=["relu", "softmax"], backend=backend)
