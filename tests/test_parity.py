"""The compiled backend gives the NumPy backend's numbers.

Random small networks (hypothesis, derandomized): every hidden activation,
one per layer too (maxout mixed with the others), every output/loss
pairing, every stochastic solver, both dtypes, dense X in C / Fortran /
non-contiguous layout and CSR X, with and without sample weights, batch
sizes from 1 to past the number of rows. Two epochs of
``train_epoch`` from the same start must give the same parameters and mean
losses; ``forward`` and ``loss_grad`` must agree too.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastbp import _numpy_backend as nb
from fastbp.network import Network
from fastbp.solvers import Hyper, OptState

cb = pytest.importorskip("fastbp._cython_backend")

# Relative tolerance per dtype: max|a - b| / max(max|b|, tiny).
RTOL = {np.float32: 1e-4, np.float64: 1e-9}  # docs/design.md: float64 <= 1e-9
TINY = 1e-30
# Absolute tolerance on losses: a squared error near zero is a difference of
# nearly equal numbers, exact only to a few ulps of the targets.
LOSS_ATOL = {np.float32: 1e-6, np.float64: 1e-12}

HIDDEN = (
    "identity", "logistic", "tanh", "relu", "softplus", "maxout",
    "leaky_relu", "elu", "selu", "gelu", "silu",
)
# (out_activation, loss, kind of targets)
PAIRINGS = (
    ("identity", "squared_error", "real"),
    ("logistic", "log_loss", "binary"),
    ("logistic", "log_loss", "multilabel"),
    ("softmax", "log_loss", "onehot"),
    ("exp", "poisson", "counts"),
    ("logistic", "squared_error", "unit"),
    ("tanh", "squared_error", "real"),
    ("relu", "squared_error", "real"),
    ("softplus", "squared_error", "positive"),
    ("exp", "squared_error", "positive"),
)
SOLVERS = (
    ("sgd", 0.9, True),
    ("sgd", 0.9, False),
    ("sgd", 0.0, False),
    ("adam", 0.9, True),
)
LAYOUTS = ("C", "F", "strided", "csr")


def rel_diff(a, b, floor=TINY):
    """max|a - b| / max(max|b|, floor) over the finite entries; +inf when the
    two disagree on which entries are inf (same sign) or nan (a diverging
    fit must diverge the same way in both backends)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    finite = np.isfinite(b)
    if not np.array_equal(np.isfinite(a), finite) or not np.array_equal(
        np.isnan(a), np.isnan(b)
    ):
        return np.inf
    if not np.array_equal(a[np.isinf(b)], b[np.isinf(b)]):
        return np.inf
    if not finite.any():
        return 0.0
    a, b = a[finite], b[finite]
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), floor)


def make_targets(kind, rng, n, n_outputs, dtype):
    if kind == "onehot":
        return np.eye(n_outputs, dtype=dtype)[rng.randint(n_outputs, size=n)]
    if kind == "binary":
        return (rng.rand(n, 1) > 0.5).astype(dtype)
    if kind in ("multilabel", "unit"):
        return (rng.rand(n, n_outputs) > 0.5).astype(dtype)
    if kind == "counts":
        return rng.poisson(1.5, size=(n, n_outputs)).astype(dtype)
    if kind == "positive":
        return rng.uniform(0.0, 2.0, size=(n, n_outputs)).astype(dtype)
    return rng.randn(n, n_outputs).astype(dtype)


def layout_X(X, layout, rng):
    if layout == "F":
        return np.asfortranarray(X)
    if layout == "strided":
        big = np.empty((X.shape[0], 2 * X.shape[1]), dtype=X.dtype)
        big[:, ::2] = X
        return big[:, ::2]
    if layout == "csr":
        X = X.copy()
        X[rng.rand(*X.shape) < 0.5] = 0
        return sp.csr_matrix(X)
    return np.ascontiguousarray(X)


@st.composite
def problems(draw):
    n_hidden = draw(st.integers(1, 3))
    hidden = draw(st.lists(st.integers(1, 64), min_size=n_hidden, max_size=n_hidden))
    if draw(st.booleans()):
        activation = draw(st.sampled_from(HIDDEN))
    else:  # one per hidden layer
        activation = draw(st.lists(st.sampled_from(HIDDEN), min_size=n_hidden,
                                   max_size=n_hidden))
    k = draw(st.sampled_from((2, 3)))
    out_activation, loss, kind = draw(st.sampled_from(PAIRINGS))
    if kind == "onehot":
        n_outputs = draw(st.integers(2, 5))
    elif kind == "binary":
        n_outputs = 1
    else:
        n_outputs = draw(st.integers(1, 4))
    n = draw(st.integers(1, 24))
    return dict(
        hidden=hidden,
        activation=activation,
        k=k,
        out_activation=out_activation,
        loss=loss,
        kind=kind,
        n_outputs=n_outputs,
        n_features=draw(st.integers(1, 8)),
        n=n,
        batch_size=draw(st.integers(1, n + 3)),
        dtype=draw(st.sampled_from((np.float32, np.float64))),
        layout=draw(st.sampled_from(LAYOUTS)),
        weighted=draw(st.booleans()),
        solver=draw(st.sampled_from(SOLVERS)),
        alpha=draw(st.sampled_from((0.0, 1e-4, 0.1))),
        subset=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
        weight_decay=draw(st.sampled_from((0.0, 0.0, 0.5))),
        max_grad_norm=draw(st.sampled_from((None, None, 0.05, 10.0))),
        lr_factor=draw(st.sampled_from((1.0, 1.0, 0.25))),
        negative_slope=draw(st.sampled_from((0.01, 0.3))),
    )


def build(p):
    rng = np.random.RandomState(p["seed"])
    dtype = p["dtype"]
    net = Network(
        [p["n_features"], *p["hidden"], p["n_outputs"]],
        p["activation"],
        p["out_activation"],
        p["loss"],
        maxout_pieces=p["k"],
        dtype=dtype,
        negative_slope=p["negative_slope"],
    )
    params = net.init_params(rng)
    X = rng.randn(p["n"], p["n_features"]).astype(dtype)
    X = layout_X(X, p["layout"], rng)
    Y = make_targets(p["kind"], rng, p["n"], p["n_outputs"], dtype)
    sw = rng.uniform(0.1, 2.0, p["n"]).astype(dtype) if p["weighted"] else None
    if p["subset"] and p["n"] > 1:
        order = rng.choice(p["n"], size=p["n"] - 1, replace=False).astype(np.intp)
    else:
        order = rng.permutation(p["n"]).astype(np.intp)
    return net, params, X, Y, sw, order


def opt_state(p, net):
    solver = p["solver"][0]
    lr = 1e-3 if solver == "adam" else 1e-2
    state = OptState(solver, net.n_params, net.dtype, lr)
    state.lr_factor = p["lr_factor"]  # a warm-up epoch: the step rate is scaled
    return state


def hyper(p):
    solver, momentum, nesterov = p["solver"]
    return Hyper(alpha=p["alpha"], momentum=momentum, nesterov=nesterov,
                 weight_decay=p["weight_decay"], max_grad_norm=p["max_grad_norm"])


@settings(
    derandomize=True,
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(problems())
def test_train_epoch_parity(p):
    # Some draws diverge (e.g. an exp output with squared error); NumPy then
    # warns about overflow, and the two backends must still agree.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        check_train_epoch_parity(p)


def check_train_epoch_parity(p):
    net, params0, X, Y, sw, order = build(p)
    results = {}
    for backend in (nb, cb):
        params = params0.copy()
        state = opt_state(p, net)
        h = hyper(p)
        losses = [
            backend.train_epoch(net, params, state, X, Y, sw, order, p["batch_size"], h)
            for _ in range(2)
        ]
        results[backend.name] = (params, losses, state)
    params_np, losses_np, state_np = results["numpy"]
    params_cy, losses_cy, state_cy = results["cython"]
    rtol = RTOL[p["dtype"]]
    assert params_cy.dtype == net.dtype
    assert rel_diff(params_cy, params_np) <= rtol
    np.testing.assert_allclose(
        losses_cy, losses_np, rtol=rtol, atol=LOSS_ATOL[p["dtype"]], equal_nan=True
    )
    assert state_cy.t == state_np.t
    # The moments are made of the last gradients, which near a fit are
    # differences of nearly equal numbers: compare them above a floor.
    assert rel_diff(state_cy.m, state_np.m, floor=1e-3) <= rtol
    if p["solver"][0] == "adam":
        assert rel_diff(state_cy.v, state_np.v, floor=1e-6) <= rtol


@settings(
    derandomize=True,
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(problems())
def test_forward_and_loss_grad_parity(p):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        check_forward_and_loss_grad_parity(p)


def check_forward_and_loss_grad_parity(p):
    net, params, X, Y, sw, _ = build(p)
    rtol = RTOL[p["dtype"]]
    for logits in (False, True):
        out_cy = cb.forward(net, params, X, logits=logits)
        out_np = nb.forward(net, params, X, logits=logits)
        assert out_cy.shape == (p["n"], p["n_outputs"])
        assert out_cy.dtype == net.dtype
        assert rel_diff(out_cy, out_np) <= rtol
    loss_cy, grad_cy = cb.loss_grad(net, params, X, Y, sw, p["alpha"])
    loss_np, grad_np = nb.loss_grad(net, params, X, Y, sw, p["alpha"])
    assert grad_cy.dtype == net.dtype and grad_cy.shape == params.shape
    np.testing.assert_allclose(
        loss_cy, loss_np, rtol=rtol, atol=LOSS_ATOL[p["dtype"]], equal_nan=True
    )
    assert rel_diff(grad_cy, grad_np) <= rtol


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_grad_writes_grad_out(dtype):
    net = Network([3, 4, 2], "tanh", "softmax", "log_loss", dtype=dtype)
    rng = np.random.RandomState(0)
    params = net.init_params(rng)
    X = rng.randn(5, 3).astype(dtype)
    Y = np.eye(2, dtype=dtype)[rng.randint(2, size=5)]
    grad = np.full(net.n_params, np.nan, dtype=dtype)
    loss, out = cb.loss_grad(net, params, X, Y, alpha=0.1, grad_out=grad)
    assert out is grad
    _, expected = nb.loss_grad(net, params, X, Y, alpha=0.1)
    assert rel_diff(grad, expected) <= RTOL[dtype]


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_formats_match_dense(fmt):
    net = Network([6, 5, 3], "relu", "softmax", "log_loss", dtype=np.float64)
    rng = np.random.RandomState(1)
    params = net.init_params(rng)
    X = rng.randn(9, 6)
    X[rng.rand(9, 6) < 0.6] = 0
    Y = np.eye(3)[rng.randint(3, size=9)]
    Xs = sp.csr_matrix(X).asformat(fmt)
    np.testing.assert_allclose(cb.forward(net, params, Xs), cb.forward(net, params, X), rtol=1e-12)
    l1, g1 = cb.loss_grad(net, params, Xs, Y)
    l2, g2 = cb.loss_grad(net, params, X, Y)
    np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-15)
    assert l1 == pytest.approx(l2, rel=1e-12)


@pytest.mark.parametrize(
    "activation", ["tanh", "maxout", "gelu", ["maxout", "silu", "selu", "leaky_relu"] * 17 + ["elu"]]
)
def test_networks_deeper_than_64_layers_match(activation):
    # 70 weight layers: the kernels' per-layer arrays are sized by the network
    net = Network([5] + [4] * 69 + [3], activation, "softmax", "log_loss", dtype=np.float64)
    assert net.n_layers - 1 == 70
    rng = np.random.RandomState(0)
    params = net.init_params(rng)
    X = rng.randn(20, 5)
    Y = np.eye(3)[rng.randint(3, size=20)]
    assert rel_diff(cb.forward(net, params, X), nb.forward(net, params, X)) <= 1e-9
    loss_cy, grad_cy = cb.loss_grad(net, params, X, Y, alpha=1e-3)
    loss_np, grad_np = nb.loss_grad(net, params, X, Y, alpha=1e-3)
    assert loss_cy == pytest.approx(loss_np, rel=1e-9)
    assert rel_diff(grad_cy, grad_np) <= 1e-9
    results = []
    for backend in (nb, cb):
        p = params.copy()
        state = OptState("adam", net.n_params, net.dtype, 1e-2)
        mean = backend.train_epoch(net, p, state, X, Y, None, np.arange(20), 8, Hyper())
        results.append((p, mean))
    assert rel_diff(results[1][0], results[0][0]) <= 1e-9
    assert results[1][1] == pytest.approx(results[0][1], rel=1e-9)


def test_estimator_fits_70_layers_on_the_compiled_backend():
    from sklearn.datasets import make_classification

    from fastbp import BPClassifier

    X, y = make_classification(40, 5, random_state=0)
    kwargs = dict(hidden_layer_sizes=(4,) * 69, max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = {b: BPClassifier(backend=b, **kwargs).fit(X, y) for b in ("cython", "numpy")}
    assert fitted["cython"].n_layers_ == 71
    np.testing.assert_allclose(
        fitted["cython"].predict_proba(X), fitted["numpy"].predict_proba(X), rtol=1e-9
    )


MIXED = [
    ["maxout", "gelu", "relu"],
    ["silu", "maxout", "maxout"],
    ["leaky_relu", "elu", "maxout"],
    ["selu", "tanh", "gelu"],
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", MIXED)
def test_per_layer_activations_match(activation, dtype):
    # whatever hypothesis draws: maxout first, in the middle and last, next
    # to layers that keep H (gelu, silu) and layers that don't
    p = dict(hidden=[7, 5, 6], activation=activation, k=3, out_activation="softmax",
             loss="log_loss", kind="onehot", n_outputs=3, n_features=4, n=30,
             batch_size=8, dtype=dtype, layout="C", weighted=True,
             solver=("adam", 0.9, True), alpha=1e-4, subset=False, seed=3,
             weight_decay=0.0, max_grad_norm=None, lr_factor=1.0, negative_slope=0.3)
    check_forward_and_loss_grad_parity(p)
    check_train_epoch_parity(p)
