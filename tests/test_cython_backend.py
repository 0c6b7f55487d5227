"""The compiled backend's pieces, through thin shims, and its runtime
behaviour: read-only inputs, non-finite values, the debug build, releasing
the GIL, and Ctrl-C during an epoch."""

import _thread
import os
import threading
import time
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

from fastbp import _numpy_backend as nb
from fastbp import activations as act
from fastbp.network import Network
from fastbp.solvers import Hyper, OptState

cb = pytest.importorskip("fastbp._cython_backend")

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
# Elementwise functions: libm vs NumPy's own SIMD implementations differ by
# a few ulps.
ELEM_RTOL = {np.float32: 1e-5, np.float64: 1e-13}


def read_only(a):
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


# ---------------------------------------------------------------- gemm


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("ro", [False, True])
def test_gemm_matches_numpy(dtype, trans_a, trans_b, ro):
    rng = np.random.RandomState(0)
    m, n, k = 5, 3, 4
    A = rng.randn(k, m) if trans_a else rng.randn(m, k)
    B = rng.randn(n, k) if trans_b else rng.randn(k, n)
    A, B = A.astype(dtype), B.astype(dtype)
    C = rng.randn(m, n).astype(dtype)
    expected = 2.0 * ((A.T if trans_a else A) @ (B.T if trans_b else B)) + 0.5 * C
    if ro:
        A, B = read_only(A), read_only(B)
    cb._gemm_shim(trans_a, trans_b, 2.0, A, B, 0.5, C)
    np.testing.assert_allclose(C, expected, rtol=RTOL[dtype] * 10, atol=RTOL[dtype] * 10)


def test_gemm_rejects_bad_shapes():
    A = np.zeros((2, 3))
    with pytest.raises(ValueError, match="shapes do not match"):
        cb._gemm_shim(False, False, 1.0, A, np.zeros((4, 2)), 0.0, np.zeros((2, 2)))


# --------------------------------------------------------- activations

H_VALUES = np.array(
    [[-1e4, -800.0, -50.0, -1.0, -1e-8, 0.0],
     [1e-8, 0.5, 3.0, 50.0, 800.0, 1e4]]
)
ELEMENTWISE = ["identity", "logistic", "tanh", "relu", "softplus", "exp"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE + ["softmax"])
def test_activation_matches_table(dtype, name):
    H = H_VALUES.astype(dtype)
    if name in ("exp", "softmax"):
        H = np.clip(H, -60, 60)  # exp overflows (to inf) by definition
    expected = act.FORWARD[name](H.copy())
    Z = np.empty_like(H)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hidden = cb._activation_shim(act.CODES[name], H.copy(), Z)
    np.testing.assert_allclose(Z, expected, rtol=ELEM_RTOL[dtype], atol=1e-300)
    if name != "softmax":
        # the fused bias+activation pass of hidden layers gives the same
        np.testing.assert_array_equal(hidden, Z)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["logistic", "tanh", "relu", "softplus", "identity"])
def test_activation_finite_for_huge_inputs(dtype, name):
    H = np.array([[-1e4, -1e30, 1e4, 1e30, -710.0, 710.0]], dtype=dtype)
    Z = np.empty_like(H)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            cb._activation_shim(act.CODES[name], H.copy(), Z)
    assert np.isfinite(Z).all()
    if name == "logistic":
        np.testing.assert_array_equal(Z[0, [0, 1, 2, 3]], [0, 0, 1, 1])
    if name == "softplus":
        np.testing.assert_array_equal(Z[0, [0, 1]], [0, 0])
        np.testing.assert_allclose(Z[0, [2, 3]], H[0, [2, 3]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_stable(dtype):
    H = np.array([[1e4, 1e4 - 1.0, -1e4], [-1e30, 0.0, 1e30]], dtype=dtype)
    Z = np.empty_like(H)
    cb._activation_shim(act.SOFTMAX, H.copy(), Z)
    assert np.isfinite(Z).all()
    np.testing.assert_allclose(Z.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(Z, act.softmax(H.copy()), rtol=ELEM_RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["identity", "logistic", "tanh", "relu", "softplus", "exp"])
def test_derivative_matches_table(dtype, name):
    rng = np.random.RandomState(1)
    H = rng.randn(4, 7).astype(dtype) * 3
    H[0, :3] = 0  # relu at its kink: derivative 0, as [Z > 0]
    Z = act.FORWARD[name](H.copy())
    D = rng.randn(4, 7).astype(dtype)
    expected = act.DERIVATIVE[name](Z, D.copy())
    cb._derivative_shim(act.CODES[name], read_only(Z), D)
    np.testing.assert_allclose(D, expected, rtol=ELEM_RTOL[dtype], atol=1e-300)


# -------------------------------------------------------------- maxout


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [2, 3])
def test_maxout_matches_numpy_and_routes_to_first_max(dtype, k):
    rng = np.random.RandomState(2)
    H = rng.randint(-2, 3, size=(6, 4 * k)).astype(dtype)  # many ties
    H[0] = 1.0  # every piece equal: the first wins
    Z, arg = cb._maxout_shim(read_only(H), k)
    Z_np, arg_np = nb._maxout(H, k)
    np.testing.assert_array_equal(Z, Z_np)
    np.testing.assert_array_equal(arg, arg_np)
    assert (arg[0] == 0).all()
    dZ = rng.randn(*Z.shape).astype(dtype)
    D = cb._maxout_backward_shim(dZ, arg, k)
    np.testing.assert_array_equal(D, nb._maxout_backward(dZ, arg_np, k))


def test_maxout_nan_wins_like_argmax():
    H = np.array([[1.0, np.nan, 5.0, 2.0]])
    Z, arg = cb._maxout_shim(H, 4)
    assert arg[0, 0] == np.argmax(H[0]) == 1
    assert np.isnan(Z[0, 0])


# ----------------------------------------------------- the full contract


def small_problem(dtype=np.float64, activation="relu", n=40, sparse=False):
    rng = np.random.RandomState(3)
    net = Network([6, 9, 7, 3], activation, "softmax", "log_loss", dtype=dtype)
    params = net.init_params(rng)
    X = rng.randn(n, 6).astype(dtype)
    if sparse:
        X[rng.rand(n, 6) < 0.5] = 0
        X = sp.csr_matrix(X)
    Y = np.eye(3, dtype=dtype)[rng.randint(3, size=n)]
    sw = rng.uniform(0.5, 2, n).astype(dtype)
    return net, params, X, Y, sw


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sparse", [False, True])
def test_read_only_inputs_accepted(dtype, sparse):
    net, params, X, Y, sw = small_problem(dtype, sparse=sparse)
    if sparse:
        X.data.setflags(write=False)
        X.indices.setflags(write=False)
        X.indptr.setflags(write=False)
    else:
        X = read_only(X)
    Y, sw, params_ro = read_only(Y), read_only(sw), read_only(params)
    order = read_only(np.arange(X.shape[0], dtype=np.intp))
    out = cb.forward(net, params_ro, X)
    np.testing.assert_allclose(out, nb.forward(net, params, X), rtol=RTOL[dtype])
    loss, grad = cb.loss_grad(net, params_ro, X, Y, sw, 1e-3)
    _, grad_np = nb.loss_grad(net, params, X, Y, sw, 1e-3)
    np.testing.assert_allclose(grad, grad_np, rtol=RTOL[dtype] * 10, atol=RTOL[dtype])
    p = params.copy()
    state = OptState("adam", net.n_params, dtype, 1e-3)
    cb.train_epoch(net, p, state, X, Y, sw, order, 8, Hyper(alpha=1e-3))
    assert state.t == 5


def test_train_epoch_mean_loss_and_partial_batch():
    net, params, X, Y, _ = small_problem(n=23)
    order = np.random.RandomState(0).permutation(23)
    state = OptState("sgd", net.n_params, net.dtype, 0.0)  # lr 0: params fixed
    mean = cb.train_epoch(net, params, state, X, Y, None, order, 10, Hyper(momentum=0.0))
    expected = sum(
        cb.loss_grad(net, params, X[idx], Y[idx])[0] * len(idx)
        for idx in (order[:10], order[10:20], order[20:])
    ) / 23
    assert mean == pytest.approx(expected, rel=1e-12)


def test_non_finite_params_do_not_crash():
    net, params, X, Y, sw = small_problem()
    params[0] = np.nan
    params[5] = np.inf
    params[net.n_coefs] = -np.inf
    out = cb.forward(net, params, X)
    assert out.shape == (X.shape[0], 3)
    loss, grad = cb.loss_grad(net, params, X, Y, sw, 1e-3)
    assert not np.isfinite(loss) or not np.isfinite(grad).all()
    state = OptState("adam", net.n_params, net.dtype, 1e-3)
    mean = cb.train_epoch(net, params, state, X, Y, sw, np.arange(40), 7, Hyper())
    assert not np.isfinite(mean) or not np.isfinite(params).all()


def test_non_finite_inputs_do_not_crash():
    net, params, X, Y, _ = small_problem(activation="maxout")
    X[0, 0] = np.nan
    X[1, 1] = np.inf
    out = cb.forward(net, params, X)
    assert np.isfinite(out[2:]).all()
    state = OptState("sgd", net.n_params, net.dtype, 0.1)
    mean = cb.train_epoch(net, params, state, X, Y, None, np.arange(40), 4, Hyper())
    # The epoch completes and reports the non-finite loss (the estimator's
    # divergence check relies on it) rather than hiding the bad rows.
    assert np.isnan(mean)
    assert not np.isfinite(params).all()


def test_bad_arguments_raise():
    net, params, X, Y, _ = small_problem()
    state = OptState("sgd", net.n_params, net.dtype, 0.1)
    with pytest.raises(ValueError, match="order holds row indices outside X"):
        cb.train_epoch(net, params, state, X, Y, None, np.array([0, 40]), 4, Hyper())
    with pytest.raises(ValueError, match="params must be .*float64"):
        cb.train_epoch(net, params.astype(np.float32), state, X, Y, None, np.arange(4), 4, Hyper())
    with pytest.raises(ValueError, match=r"X has shape \(40, 5\)"):
        cb.forward(net, params, X[:, :5])


# ---------------------------------------------------------- debug build


@pytest.mark.skipif(not cb.DEBUG, reason="release build (FASTBP_DEBUG=0)")
def test_debug_build_checks_bounds():
    with pytest.raises(IndexError, match="Out of bounds"):
        cb._debug_index_probe()


@pytest.mark.skipif(
    os.environ.get("FASTBP_EXPECT_DEBUG") != "1",
    reason="set FASTBP_EXPECT_DEBUG=1 when testing a FASTBP_DEBUG=1 build",
)
def test_expected_debug_build():
    assert cb.DEBUG, "FASTBP_EXPECT_DEBUG=1 but the extension is a release build"


# ------------------------------------------------ GIL and KeyboardInterrupt


def long_problem(n_repeats):
    """784-64-10 relu network on 500 rows; an epoch visits them n_repeats times."""
    rng = np.random.RandomState(0)
    net = Network([784, 64, 10], "relu", "softmax", "log_loss", dtype=np.float64)
    params = net.init_params(rng)
    X = rng.rand(500, 784)
    Y = np.eye(10)[rng.randint(10, size=500)]
    order = np.tile(np.arange(500, dtype=np.intp), n_repeats)
    return net, params, X, Y, order


def epoch_seconds(n_repeats):
    net, params, X, Y, order = long_problem(n_repeats)
    state = OptState("adam", net.n_params, net.dtype, 1e-4)
    t0 = time.perf_counter()
    cb.train_epoch(net, params, state, X, Y, None, order, 32, Hyper())
    return time.perf_counter() - t0


def test_train_epoch_releases_the_gil():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        per_repeat = epoch_seconds(2) / 2
        n_repeats = max(2, int(0.4 / per_repeat))  # an epoch of ~0.4 s
        net, params, X, Y, order = long_problem(n_repeats)
        state = OptState("adam", net.n_params, net.dtype, 1e-4)

        counter = [0]
        stop = threading.Event()

        def count():
            while not stop.is_set():
                counter[0] += 1

        # the counter's rate with the main thread idle
        thread = threading.Thread(target=count)
        thread.start()
        time.sleep(0.1)
        c0 = counter[0]
        time.sleep(0.2)
        idle_rate = (counter[0] - c0) / 0.2

        c0 = counter[0]
        t0 = time.perf_counter()
        cb.train_epoch(net, params, state, X, Y, None, order, 32, Hyper())
        elapsed = time.perf_counter() - t0
        during = counter[0] - c0
        stop.set()
        thread.join()
    # Holding the GIL, the counter would be stuck for the whole epoch. On a
    # busy 2-core machine the counter thread shares a core: ask for 10%.
    assert elapsed > 0.1
    assert during > 0.1 * idle_rate * elapsed, (during, idle_rate, elapsed)


@pytest.mark.usefixtures("ctrl_c_raises")
def test_keyboard_interrupt_stops_the_epoch():
    per_repeat = epoch_seconds(2) / 2
    n_repeats = max(4, int(4.0 / per_repeat))  # an epoch of ~4 s
    net, params, X, Y, order = long_problem(n_repeats)
    state = OptState("adam", net.n_params, net.dtype, 1e-4)
    timer = threading.Timer(0.2, _thread.interrupt_main)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        cb.train_epoch(net, params, state, X, Y, None, order, 32, Hyper())
        # (only reached when the epoch ended before the interrupt came)
        time.sleep(5)
    timer.join()
    # the optimizer state counts the batches that did run: some, not all
    n_batches = -(-len(order) // 32)
    assert 0 < state.t < n_batches


# ----------------------------------------------------------------- stub


def test_stub_matches_module():
    import ast
    import inspect
    from pathlib import Path

    stub = Path(cb.__file__).with_name("_cython_backend.pyi")
    if not stub.exists():
        stub = Path(__file__).parents[1] / "fastbp" / "_cython_backend.pyi"
    tree = ast.parse(stub.read_text())
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert {"forward", "loss_grad", "train_epoch"} <= set(functions)
    for fname, node in functions.items():
        params = [a.arg for a in node.args.args]
        assert params == list(inspect.signature(getattr(cb, fname)).parameters), fname
    public = {n for n in dir(cb) if not n.startswith("_") and callable(getattr(cb, n))}
    assert public <= set(functions) | {"np", "sp"}


# ------------------------------------------------------ chunked driving


@pytest.fixture
def one_unit_per_chunk():
    """Every chunk kernel returns to Python after each unit of work."""
    previous = cb._chunk_seconds_shim(0.0)
    yield
    cb._chunk_seconds_shim(previous)


def chunk_problem(dtype, sparse, n):
    rng = np.random.RandomState(7)
    net = Network([5, 8, 6, 3], "tanh", "softmax", "log_loss", dtype=dtype)
    params = net.init_params(rng)
    X = rng.randn(n, 5).astype(dtype)
    if sparse:
        X[rng.rand(n, 5) < 0.5] = 0
        X = sp.csr_matrix(X)
    Y = np.eye(3, dtype=dtype)[rng.randint(3, size=n)]
    sw = rng.uniform(0.5, 2, n).astype(dtype)
    return net, params, X, Y, sw


def run_all(net, params, X, Y, sw):
    order = np.random.RandomState(1).permutation(X.shape[0])
    p = params.copy()
    state = OptState("adam", net.n_params, net.dtype, 1e-3)
    mean = cb.train_epoch(net, p, state, X, Y, sw, order, 16, Hyper(alpha=1e-3))
    loss, grad = cb.loss_grad(net, params, X, Y, sw, 1e-3)
    return p, mean, state.t, state.m, loss, grad, cb.forward(net, params, X)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sparse", [False, True])
def test_chunk_boundaries_leave_the_numbers_unchanged(dtype, sparse, request):
    # several forward blocks (1024 rows) and loss_grad blocks (2048 rows)
    net, params, X, Y, sw = chunk_problem(dtype, sparse, n=4500)
    whole = run_all(net, params, X, Y, sw)
    request.getfixturevalue("one_unit_per_chunk")
    chunked = run_all(net, params, X, Y, sw)
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("sparse", [False, True])
def test_loss_grad_in_row_blocks_matches_numpy(sparse):
    net, params, X, Y, sw = chunk_problem(np.float64, sparse, n=4500)
    for weights in (None, sw):
        loss, grad = cb.loss_grad(net, params, X, Y, weights, 1e-3)
        loss_np, grad_np = nb.loss_grad(net, params, X, Y, weights, 1e-3)
        assert loss == pytest.approx(loss_np, rel=1e-12)
        np.testing.assert_allclose(grad, grad_np, rtol=1e-9, atol=1e-12 * np.abs(grad_np).max())


# ------------------------------------------- small batches: blocked first layer


@pytest.fixture
def restore_block_knobs():
    fuse, small = cb._fuse_bytes_shim(32768), cb._small_gemm_shim(10**6)
    yield
    cb._fuse_bytes_shim(fuse)
    cb._small_gemm_shim(small)


def blocked_problem(dtype, solver, weighted, n=70, n_features=50, hidden=48):
    rng = np.random.RandomState(11)
    net = Network([n_features, hidden, 3], "relu", "softmax", "log_loss", dtype=dtype)
    X = rng.rand(n, n_features).astype(dtype)
    Y = np.eye(3, dtype=dtype)[rng.randint(3, size=n)]
    sw = rng.uniform(0.5, 2, n).astype(dtype) if weighted else None
    return net, net.init_params(rng), X, Y, sw


def epoch_result(backend, net, params, X, Y, sw, solver, nesterov=True):
    order = np.random.RandomState(2).permutation(X.shape[0])
    p = params.copy()
    state = OptState(solver, net.n_params, net.dtype, 1e-2)
    hyper = Hyper(alpha=1e-3, nesterov=nesterov)
    mean = [backend.train_epoch(net, p, state, X, Y, sw, order, 8, hyper) for _ in range(2)]
    return p, state.m, state.v, state.t, mean


# (float32 only: train_epoch keeps one GEMM per product in float64)
@pytest.mark.parametrize("dtype", [np.float32])
@pytest.mark.parametrize("solver, nesterov", [("adam", True), ("sgd", True), ("sgd", False)])
@pytest.mark.parametrize("weighted", [False, True])
def test_fused_first_layer_step_matches_one_gemm_then_the_optimizer_pass(
        dtype, solver, nesterov, weighted, restore_block_knobs):
    # batch 8, 48 hidden units: no split forward; the fused step in blocks of
    # 16 rows of W_1 (50 rows: 16, 16, 16, 2) must give the very same numbers
    # as one GEMM for dJ/dW_1 followed by one optimizer pass
    net, params, X, Y, sw = blocked_problem(dtype, solver, weighted)
    cb._fuse_bytes_shim(0)
    whole = epoch_result(cb, net, params, X, Y, sw, solver, nesterov)
    cb._fuse_bytes_shim(16 * 48 * np.dtype(dtype).itemsize)
    fused = epoch_result(cb, net, params, X, Y, sw, solver, nesterov)
    for a, b in zip(whole, fused, strict=True):
        np.testing.assert_array_equal(a, b)


class _FixedThreads:
    """A BLAS-thread session whose chunks all get ``n`` threads, on a
    machine where they could get ``most``."""

    def __init__(self, n, most=2):
        self.n = n
        self.most = most
        self.limits = []
        self.own_threads = False

    def most_threads(self):
        return self.most

    def runs_own_threads(self):
        self.own_threads = True

    def limit_blas(self, n):
        self.limits.append(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def begin(self):
        return self.n

    def end(self, units):
        pass


@pytest.mark.parametrize("solver, nesterov", [("adam", True), ("sgd", True), ("sgd", False)])
@pytest.mark.parametrize("weighted", [False, True])
def test_the_helper_thread_changes_no_number(solver, nesterov, weighted, restore_block_knobs,
                                             monkeypatch):
    # Chunks given two threads share the blocked first layer's blocks with a
    # helper thread (3 forward column blocks: 2 here, 1 there; 4 row blocks
    # of dJ/dW_1 with their optimizer pass: 2 and 2; the last batch of 70
    # rows is 6 rows): the very same parameters, moments and losses.
    from fastbp import _backend_input

    net, params, X, Y, sw = blocked_problem(np.float32, solver, weighted)
    cb._small_gemm_shim(8 * 16 * 50)
    results, jobs, limits = [], [], []
    for threads in (1, 2):
        sessions = []

        def session(*a, n=threads):
            sessions.append(_FixedThreads(n))
            return sessions[-1]

        monkeypatch.setattr(_backend_input, "session", session)
        before = cb._helper_jobs_shim()[0]
        results.append(epoch_result(cb, net, params, X, Y, sw, solver, nesterov))
        jobs.append(cb._helper_jobs_shim()[0] - before)
        limits.append(sorted({n for s in sessions for n in s.limits}))
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)
    has_helper = cb._helper_jobs_shim()[1]
    # 2 epochs x 9 batches x 2 jobs (forward, dJ/dW_1) on two threads, none on one
    assert jobs == [0, 36 if has_helper else 0]
    # while the helper runs, BLAS runs on the calling thread only
    assert limits == [[], [1] if has_helper else []]


@pytest.mark.parametrize("case", ["float64", "sparse", "no split"])
def test_no_helper_thread_where_the_first_layer_is_not_split(case, restore_block_knobs,
                                                              monkeypatch):
    # ... nor a two-thread step at this batch of 8 rows (shares under 16 rows)
    # or on sparse input: OpenBLAS keeps the threads the policy gave the chunk
    from fastbp import _backend_input

    dtype = np.float64 if case == "float64" else np.float32
    net, params, X, Y, sw = blocked_problem(dtype, "adam", False)
    if case == "sparse":
        X = sp.csr_matrix(X)
    cb._small_gemm_shim(0 if case == "no split" else 8 * 16 * 50)
    sessions = []
    monkeypatch.setattr(_backend_input, "session",
                        lambda *a: sessions.append(_FixedThreads(2)) or sessions[-1])
    before = cb._helper_jobs_shim()[0]
    epoch_result(cb, net, params, X, Y, sw, "adam")
    assert cb._helper_jobs_shim()[0] == before
    assert all(s.limits == [] for s in sessions)


# The two-thread step (dense input, no dropout, batches that do not take the
# small-batch blocks): each minibatch in shares of rows, then of dJ/dW_1's rows.
TWO_STEP_CASES = {
    # name: (hidden, activation, out activation, loss, n_out, maxout pieces)
    "relu": ((24,), "relu", "softmax", "log_loss", 3, 2),
    "two layers tanh": ((24, 17), "tanh", "softmax", "log_loss", 3, 2),
    "gelu, squared error": ((24,), "gelu", "identity", "squared_error", 2, 2),
    "maxout then silu": ((12, 9), ["maxout", "silu"], "logistic", "log_loss", 1, 3),
    "poisson": ((20,), "elu", "exp", "poisson", 1, 2),
}


def two_step_problem(dtype, case, weighted, n=150, n_features=37):
    hidden, activation, out, loss, n_out, k = TWO_STEP_CASES[case]
    rng = np.random.RandomState(5)
    net = Network([n_features, *hidden, n_out], activation, out, loss,
                  maxout_pieces=k, dtype=dtype)
    X = rng.rand(n, n_features).astype(dtype)
    if loss == "log_loss" and n_out > 1:
        Y = np.eye(n_out, dtype=dtype)[rng.randint(n_out, size=n)]
    elif loss == "log_loss":
        Y = rng.randint(2, size=(n, 1)).astype(dtype)
    else:
        Y = rng.rand(n, n_out).astype(dtype)
    sw = rng.uniform(0.5, 2, n).astype(dtype) if weighted else None
    return net, net.init_params(rng), X, Y, sw


def two_step_epochs(backend, net, params, X, Y, sw, solver, batch, clip=None,
                    dropout=()):
    order = np.random.RandomState(2).permutation(X.shape[0])
    p = params.copy()
    state = OptState(solver, net.n_params, net.dtype, 1e-2)
    mean = [backend.train_epoch(net, p, state, X, Y, sw, order, batch,
                                Hyper(alpha=1e-3, max_grad_norm=clip,
                                      dropout=dropout,
                                      dropout_seed=7 + epoch if dropout else None))
            for epoch in range(2)]
    return p, state.m, state.v, state.t, mean


def _run_with_threads(monkeypatch, n, most, fn):
    """``fn()`` with every chunk given ``n`` threads on a machine where
    ``most`` could be; returns (result, helper jobs, BLAS limits taken)."""
    from fastbp import _backend_input

    sessions = []

    def session(*a):
        sessions.append(_FixedThreads(n, most))
        return sessions[-1]

    monkeypatch.setattr(_backend_input, "session", session)
    before = cb._helper_jobs_shim()[0]
    out = fn()
    return (out, cb._helper_jobs_shim()[0] - before,
            sorted({k for s in sessions for k in s.limits}))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(TWO_STEP_CASES))
@pytest.mark.parametrize("solver, weighted, clip", [
    ("adam", False, None), ("sgd", True, None), ("adam", True, 0.05)])
@pytest.mark.parametrize("blocks", [False, True, "sparse"])
def test_the_two_thread_step_gives_the_same_numbers_on_one_thread_or_two(
        dtype, case, solver, weighted, clip, blocks, restore_block_knobs, monkeypatch):
    # batches of 64 (the last of 22 rows: shares under 16 rows, one thread):
    # two epochs with every chunk on one thread, then on two, must agree bit
    # for bit (parameters, moments, losses), and agree with the NumPy backend.
    # ``blocks`` (float32): each share's forward product in blocks of 16
    # columns and dJ/dW_1 in fused blocks of 16 rows, as at small batches;
    # "sparse": X as CSR (each share's rows read in place, each thread's rows
    # of dJ/dW_1 from the whole batch)
    net, params, X, Y, sw = two_step_problem(dtype, case, weighted)
    if blocks == "sparse":
        X = sp.csr_matrix(np.where(X > 0.6, X, 0))
        blocks = False
    cb._small_gemm_shim(64 * 24 * 16 if blocks else 0)
    runs = [_run_with_threads(monkeypatch, n, 2, lambda: two_step_epochs(
        cb, net, params, X, Y, sw, solver, 64, clip)) for n in (1, 2)]
    (one, jobs_one, limits_one), (two, jobs_two, limits_two) = runs
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)
    has_helper = cb._helper_jobs_shim()[1]
    # 2 epochs x 2 batches of 64 rows x 2 shares on the helper (3 with
    # clipping: the optimizer pass after the norm too); with blocks, the
    # last batch of 22 rows shares its blocks too (the forward's, and
    # dJ/dW_1's unless clipping turns the fusion off); none on one thread
    small = (1 if clip else 2) * 2 if blocks and dtype == np.float32 else 0
    assert jobs_one == 0
    assert jobs_two == ((12 if clip else 8) + small if has_helper else 0)
    assert limits_one == [] and limits_two == ([1] if has_helper else [])
    want = two_step_epochs(nb, net, params, X, Y, sw, solver, 64, clip)
    rtol = 2e-4 if dtype == np.float32 else 1e-10
    for got, ref in zip(two[:3] + (two[4],), want[:3] + (want[4],), strict=True):
        np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * 1e-2)
    assert two[3] == want[3]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_two_thread_step_runs_only_where_a_chunk_may_get_two_threads(
        dtype, restore_block_knobs, monkeypatch):
    # the step follows what the machine allows (most_threads), not the
    # count a chunk is given: where the most is 1 (the user's setting), the
    # batch stays one product per layer, even in a chunk given two threads
    # (no helper, no BLAS limit)
    net, params, X, Y, sw = two_step_problem(dtype, "relu", False)
    cb._small_gemm_shim(0)
    _, jobs, limits = _run_with_threads(monkeypatch, 2, 1, lambda: two_step_epochs(
        cb, net, params, X, Y, sw, "adam", 64))
    assert jobs == 0 and limits == []


@pytest.mark.skipif(not cb._helper_jobs_shim()[1], reason="a build without threads")
@pytest.mark.parametrize("most", [1, 2])
@pytest.mark.parametrize("call", ["train_epoch", "loss_grad", "forward"])
def test_the_two_thread_step_tells_the_thread_policy_it_runs_threads_of_its_own(
        call, most, restore_block_knobs, monkeypatch):
    # a chunk of the step given two threads runs fastbp's helper beside a
    # one-thread BLAS, so other runnable threads of the process (OpenBLAS's,
    # spinning after a NumPy product) hold a core it needs: the policy must
    # count them (runs_own_threads); not where the step cannot run
    from fastbp import _backend_input

    net, params, X, Y, sw = two_step_problem(np.float64, "relu", False)
    cb._small_gemm_shim(0)
    monkeypatch.setattr(cb, "_LOSS_GRAD_BLOCK", 64)
    monkeypatch.setattr(cb, "_FORWARD_BLOCK", 64)
    sessions = []
    monkeypatch.setattr(_backend_input, "session", lambda *a: sessions.append(
        _FixedThreads(2, most)) or sessions[-1])
    run = {"train_epoch": lambda: two_step_epochs(cb, net, params, X, Y, sw, "adam", 64),
           "loss_grad": lambda: cb.loss_grad(net, params, X, Y, sw, alpha=1e-3),
           "forward": lambda: cb.forward(net, params, X)}[call]
    run()
    assert sessions and all(s.own_threads == (most == 2) for s in sessions)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["relu", "two layers tanh"])
def test_the_two_thread_step_draws_the_masks_one_thread_would(dtype, case,
                                                              restore_block_knobs,
                                                              monkeypatch):
    # with dropout the step draws the whole minibatch's masks first, layer
    # after layer, then each share applies its rows': on one thread or two the
    # same numbers, and the masks of the one-product path (where no chunk can
    # get two threads), so the numbers agree with it but for the products' sums
    net, params, X, Y, sw = two_step_problem(dtype, case, True)
    rates = (0.3,) * (net.n_layers - 2)
    cb._small_gemm_shim(0)
    (one, _, _), (two, jobs, _), (whole, whole_jobs, _) = [
        _run_with_threads(monkeypatch, n, most, lambda: two_step_epochs(
            cb, net, params, X, Y, sw, "adam", 64, dropout=rates))
        for n, most in ((1, 2), (2, 2), (1, 1))]
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)
    assert jobs == (8 if cb._helper_jobs_shim()[1] else 0) and whole_jobs == 0
    rtol = 1e-4 if dtype == np.float32 else 1e-11
    for a, b in zip(two[:3] + (two[4],), whole[:3] + (whole[4],), strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-2)


def _on_one_thread_and_two(monkeypatch, fn, jobs):
    """``fn()`` with its chunks given one thread, then two (on a machine
    where two may be): both results, after checking that one thread ran no
    helper job and two ran ``jobs`` of them with BLAS on one thread (where
    the build has the helper)."""
    (one, jobs_one, _), (two, jobs_two, limits) = [
        _run_with_threads(monkeypatch, n, 2, fn) for n in (1, 2)]
    has_helper = cb._helper_jobs_shim()[1]
    assert jobs_one == 0 and jobs_two == (jobs if has_helper else 0)
    assert limits == ([1] if has_helper else [])
    return one, two


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(TWO_STEP_CASES))
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("sparse", [False, True])
def test_loss_grad_gives_the_same_numbers_on_one_thread_or_two(dtype, case, weighted,
                                                               sparse, monkeypatch):
    # L-BFGS's loss and gradient in blocks of 64 rows (150 rows: 64, 64, 22),
    # each block of 32 rows or more as the two-thread step without its
    # optimizer pass: on one thread or two, bit for bit; as the NumPy backend
    net, params, X, Y, sw = two_step_problem(dtype, case, weighted)
    if sparse:
        X = sp.csr_matrix(np.where(X > 0.6, X, 0))
    monkeypatch.setattr(cb, "_LOSS_GRAD_BLOCK", 64)
    one, two = _on_one_thread_and_two(monkeypatch, lambda: cb.loss_grad(
        net, params, X, Y, sw, alpha=1e-3), jobs=4)
    assert one[0] == two[0]
    np.testing.assert_array_equal(one[1], two[1])
    want = nb.loss_grad(net, params, X, Y, sw, alpha=1e-3)
    rtol = 2e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(two[0], want[0], rtol=rtol)
    np.testing.assert_allclose(two[1], want[1], rtol=rtol, atol=rtol * 1e-2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(TWO_STEP_CASES))
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("logits", [False, True])
def test_forward_gives_the_same_outputs_on_one_thread_or_two(dtype, case, sparse, logits,
                                                             monkeypatch):
    # the predict path in blocks of 64 rows (150 rows: 64, 64, 22), each block
    # of 32 rows or more in two shares of rows: the same outputs on one
    # thread or two, bit for bit; as the NumPy backend
    net, params, X, Y, sw = two_step_problem(dtype, case, False)
    if sparse:
        X = sp.csr_matrix(np.where(X > 0.6, X, 0))
    monkeypatch.setattr(cb, "_FORWARD_BLOCK", 64)
    one, two = _on_one_thread_and_two(monkeypatch, lambda: cb.forward(
        net, params, X, logits=logits), jobs=2)
    np.testing.assert_array_equal(one, two)
    want = nb.forward(net, params, X, logits=logits)
    rtol = 2e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(two, want, rtol=rtol, atol=rtol * 1e-2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_size", [100, 256])
def test_a_fit_gives_the_same_numbers_whatever_threads_it_runs_on(dtype, batch_size,
                                                                   monkeypatch):
    # OpenBLAS's own threads sum some products in another order than one
    # thread: a fit must not depend on the threads the policy picks (nor on
    # FASTBP_BLAS_THREADS), or the same random_state would give other numbers
    # on a busy machine
    from fastbp import BPClassifier

    rng = np.random.RandomState(0)
    X = rng.rand(600, 784).astype(dtype)
    y = rng.randint(10, size=600)
    # (L-BFGS too, its loss and gradient in blocks of 256 rows)
    monkeypatch.setattr(cb, "_LOSS_GRAD_BLOCK", 256)
    fits = []
    for forced in ("1", "2", ""):
        monkeypatch.setenv("FASTBP_BLAS_THREADS", forced)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = BPClassifier(hidden_layer_sizes=(64,), batch_size=batch_size,
                               max_iter=3, random_state=0).fit(X, y)
            fit = clf.coefs_ + clf.intercepts_ + [np.array(clf.loss_curve_)]
            clf = BPClassifier(hidden_layer_sizes=(64,), solver="lbfgs", max_iter=5,
                               random_state=0).fit(X, y)
        fits.append(fit + clf.coefs_ + [np.array(clf.loss_)])
    for other in fits[1:]:
        for a, b in zip(fits[0], other, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32])
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_split_first_layer_forward_agrees_with_numpy(dtype, solver, restore_block_knobs):
    # 8 x 16 x 50 multiply-adds per block: the first layer's forward product
    # in 3 blocks of columns (16, 16, 16) and the fused step in blocks of 16 rows
    net, params, X, Y, sw = blocked_problem(dtype, solver, True)
    cb._small_gemm_shim(8 * 16 * 50)
    got = epoch_result(cb, net, params, X, Y, sw, solver)
    want = epoch_result(nb, net, params, X, Y, sw, solver)
    rtol = 1e-4
    for a, b in zip(got, want, strict=True):
        scale = np.abs(b).max(initial=0.0)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


def test_block_knobs_reject_negative_sizes():
    with pytest.raises(ValueError, match="n_bytes"):
        cb._fuse_bytes_shim(-1)
    with pytest.raises(ValueError, match="madds"):
        cb._small_gemm_shim(-2)


@pytest.mark.parametrize("libs, expected", [
    ([{"user_api": "blas", "internal_api": "openblas", "architecture": "SkylakeX"}], True),
    ([{"user_api": "blas", "internal_api": "openblas", "architecture": "SapphireRapids"},
      {"user_api": "openmp", "internal_api": "openmp"}], True),
    ([{"user_api": "blas", "internal_api": "openblas", "architecture": "Haswell"}], False),
    ([{"user_api": "blas", "internal_api": "openblas", "architecture": "SkylakeX"},
      {"user_api": "blas", "internal_api": "mkl"}], False),
    ([], False),
    # SciPy's own OpenBLAS decides; another BLAS (torch's MKL) does not matter
    ([{"user_api": "blas", "internal_api": "openblas", "architecture": "SkylakeX",
       "filepath": os.path.join("site-packages", "scipy.libs", "libscipy_openblas.so")},
      {"user_api": "blas", "internal_api": "mkl",
       "filepath": os.path.join("site-packages", "torch", "lib", "libmkl.so")}], True),
    ([{"user_api": "blas", "internal_api": "openblas", "architecture": "Haswell",
       "filepath": os.path.join("site-packages", "scipy.libs", "libscipy_openblas.so")},
      {"user_api": "blas", "internal_api": "openblas", "architecture": "SkylakeX",
       "filepath": os.path.join("site-packages", "numpy.libs", "libscipy_openblas64_.so")}],
     False),
])
def test_blocked_first_layer_only_where_openblas_has_direct_small_kernels(
        monkeypatch, libs, expected, restore_block_knobs):
    import threadpoolctl

    monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: libs)
    assert cb._has_direct_small_kernels() is expected
    cb._small_gemm_shim(-1)
    cb._decide_small_gemm()
    assert (cb._small_gemm_shim(-1) > 0) is expected


@pytest.mark.parametrize("params", [
    dict(weight_decay=0.01),
    dict(solver="sgd", weight_decay=0.01),
    dict(max_grad_norm=0.5),
])
def test_fused_first_layer_applies_decay_and_clipping_like_the_unfused_pass(params):
    # The first layer's gradient fused with the optimizer pass (small float32
    # batches) must decay W_1 and clip exactly as the plain pass does.
    from fastbp import BPClassifier

    rng = np.random.RandomState(0)
    X = rng.rand(96, 784).astype(np.float32)
    y = rng.randint(10, size=96)
    previous = cb._small_gemm_shim(1_000_000)  # the blocked path on any BLAS
    coefs = []
    try:
        for fuse_bytes in (32768, 0):
            old = cb._fuse_bytes_shim(fuse_bytes)
            try:
                clf = BPClassifier((256,), batch_size=32, max_iter=1, random_state=0,
                                   backend="cython", **params)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    clf.fit(X, y)
            finally:
                cb._fuse_bytes_shim(old)
            coefs.append(clf.coefs_)
    finally:
        cb._small_gemm_shim(previous)
    for fused, plain in zip(coefs[0], coefs[1], strict=True):
        np.testing.assert_array_equal(fused, plain)
