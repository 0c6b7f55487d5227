"""Backend selection: 'auto' falls back to NumPy with one warning, 'cython'
without the extension is an ImportError that says how to build it, and a
model predicts the same on either backend."""

import re
import time
import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification

from fastbp import BPClassifier, backends
from fastbp import _numpy_backend


@pytest.fixture
def no_extension(monkeypatch):
    def missing():
        raise ImportError("No module named 'fastbp._cython_backend'")

    monkeypatch.setattr(backends, "_import_cython", missing)
    monkeypatch.setattr(backends, "_warned_fallback", False)


def test_numpy_backend_is_the_reference_module():
    assert backends.get_backend("numpy") is _numpy_backend
    assert backends.get_backend("numpy").name == "numpy"


def test_unknown_backend_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="backend must be one of"):
        backends.get_backend("fortran")


def test_cython_without_extension_raises_import_error_with_build_hint(no_extension):
    with pytest.raises(ImportError, match="pip install"):
        backends.get_backend("cython")


def test_auto_without_extension_warns_once_and_uses_numpy(no_extension):
    with pytest.warns(RuntimeWarning, match="Falling back to the NumPy backend"):
        assert backends.get_backend("auto") is _numpy_backend
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert backends.get_backend("auto") is _numpy_backend


def test_estimator_records_the_fallback_in_backend_(no_extension):
    X, y = make_classification(60, 5, random_state=0)
    with pytest.warns(RuntimeWarning, match="Falling back"):
        clf = BPClassifier((4,), max_iter=3, random_state=0).fit(X, y)
    assert clf.backend_ == "numpy"
    with pytest.raises(ImportError, match="pip install"):
        clf.set_params(backend="cython").predict(X)


@pytest.mark.usefixtures("require_cython")
def test_auto_uses_the_extension_when_built():
    assert backends.get_backend("auto").name == "cython"


@pytest.mark.parametrize("fit_on, predict_on", [("cython", "numpy"), ("numpy", "cython")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.usefixtures("require_cython")
def test_model_predicts_the_same_on_the_other_backend(fit_on, predict_on, dtype):
    X, y = make_classification(200, 8, n_classes=3, n_informative=5, random_state=1)
    X = X.astype(dtype)
    clf = BPClassifier((16, 8), max_iter=20, random_state=0, backend=fit_on)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    proba = clf.predict_proba(X)
    labels = clf.predict(X)
    clf.set_params(backend=predict_on)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(clf.predict_proba(X), proba, rtol=rtol, atol=rtol * 1e-2)
    np.testing.assert_array_equal(clf.predict(X), labels)


# ------------------------------------------------ the contract, both backends


def _backend_module(name):
    # "cython" comes from the `backend` fixture or a test that requires the
    # compiled backend: both skip (fail in CI) when it isn't built
    return backends.get_backend(name)


def _problem(n=30, dtype=np.float64):
    from fastbp.network import Network

    rng = np.random.RandomState(0)
    net = Network([4, 6, 3], "relu", "softmax", "log_loss", dtype=dtype)
    params = net.init_params(rng)
    X = rng.randn(n, 4).astype(dtype)
    Y = np.eye(3, dtype=dtype)[rng.randint(3, size=n)]
    return net, params, X, Y


def _error(call):
    with pytest.raises((ValueError, TypeError)) as excinfo:
        call()
    return type(excinfo.value), str(excinfo.value)


@pytest.mark.usefixtures("require_cython")
def test_bad_arguments_get_the_same_error_from_both_backends():
    from fastbp.solvers import Hyper, OptState

    net, params, X, Y = _problem()
    errors = {}
    for name in ("numpy", "cython"):
        be = backends.get_backend(name)
        state = OptState("adam", net.n_params, net.dtype, 1e-3)
        order = np.arange(30)
        calls = {
            "params length": lambda: be.forward(net, params[:-1], X),
            "n_features": lambda: be.forward(net, params, X[:, :3]),
            "Y shape": lambda: be.loss_grad(net, params, X, Y[:, :2]),
            "sample_weight": lambda: be.loss_grad(net, params, X, Y, np.ones(29)),
            "grad_out dtype": lambda: be.loss_grad(
                net, params, X, Y, grad_out=np.empty(net.n_params, np.float32)
            ),
            "order": lambda: be.train_epoch(
                net, params.copy(), state, X, Y, None, np.array([0, 30]), 4, Hyper()
            ),
            "batch_size": lambda: be.train_epoch(
                net, params.copy(), state, X, Y, None, order, 0, Hyper()
            ),
            "params in place": lambda: be.train_epoch(
                net, params.astype(np.float32), state, X, Y, None, order, 4, Hyper()
            ),
            "opt_state.m": lambda: be.train_epoch(
                net, params.copy(), OptState("adam", 3, net.dtype, 1e-3), X, Y,
                None, order, 4, Hyper(),
            ),
        }
        errors[name] = {what: _error(call) for what, call in calls.items()}
    assert errors["numpy"] == errors["cython"]
    expected = {
        "params length": "params must have length",
        "n_features": r"X has shape \(30, 3\); the network expects \(n_samples, 4\)",
        "Y shape": r"Y has shape \(30, 2\); expected \(30, 3\)",
        "sample_weight": r"sample_weight has shape \(29,\)",
        "grad_out dtype": "grad_out must be a writeable contiguous 1-D float64",
        "order": "order holds row indices outside X",
        "batch_size": "batch_size must be >= 1",
        "params in place": "params must be a writeable contiguous 1-D float64",
        "opt_state.m": "opt_state.m must be",
    }
    for what, pattern in expected.items():
        assert re.search(pattern, errors["numpy"][what][1]), (what, errors["numpy"][what])


class _Recorder:
    """Stands in for fastbp._blas_threads.blas_session and records how a
    backend call drives its work."""

    def __init__(self):
        self.sessions = []

    def __call__(self, key, largest_gemm):
        recorder = self

        class Session:
            def __enter__(self):
                self.record = {"key": key, "largest_gemm": largest_gemm,
                               "begins": 0, "units": [], "open": True}
                recorder.sessions.append(self.record)
                return self

            def begin(self):
                assert self.record["begins"] == len(self.record["units"])
                self.record["begins"] += 1

            def most_threads(self):
                return 0  # as a session with no BLAS library to control

            def runs_own_threads(self):
                pass

            def end(self, units):
                assert self.record["begins"] == len(self.record["units"]) + 1
                self.record["units"].append(units)

            def __exit__(self, *exc):
                self.record["open"] = False
                return False

        return Session()


@pytest.fixture
def recorder(monkeypatch):
    from fastbp import _blas_threads

    rec = _Recorder()
    monkeypatch.setattr(_blas_threads, "blas_session", rec)
    return rec


def test_each_call_drives_its_work_through_one_blas_session(backend, recorder):
    from fastbp.solvers import Hyper, OptState

    name = backend
    be = _backend_module(name)
    net, params, X, Y = _problem(n=30)
    largest = 4 * 6  # largest fan_in * fan_out of the network

    state = OptState("sgd", net.n_params, net.dtype, 0.1)
    be.train_epoch(net, params.copy(), state, X, Y, None, np.arange(30), 7, Hyper())
    (epoch,) = recorder.sessions
    assert epoch["key"][0] == "train_epoch" and not epoch["open"]
    assert epoch["largest_gemm"] == 7 * largest
    assert sum(epoch["units"]) == 5  # batches of 7, 7, 7, 7, 2
    assert all(u >= 1 for u in epoch["units"])

    recorder.sessions.clear()
    be.loss_grad(net, params, X, Y)
    (call,) = recorder.sessions
    assert call["key"][0] == "loss_grad" and not call["open"]
    assert call["largest_gemm"] == call["key"][-1] * largest
    assert sum(call["units"]) >= 1

    recorder.sessions.clear()
    be.forward(net, params, X)
    (call,) = recorder.sessions
    assert call["key"][0] == "forward" and not call["open"]
    rows = call["key"][-1]
    assert call["largest_gemm"] == rows * largest
    assert sum(call["units"]) == -(-30 // rows)


def _wide_problem(n):
    """A forward pass of ~1M multiply-adds per row: n = 200k rows take many
    seconds on any machine."""
    from fastbp.network import Network

    rng = np.random.RandomState(0)
    net = Network([20, 1024, 1024, 10], "relu", "softmax", "log_loss")
    params = net.init_params(rng)
    X = rng.randn(n, 20)
    Y = np.eye(10)[rng.randint(10, size=n)]
    return net, params, X, Y


@pytest.fixture
def units_done(monkeypatch):
    """Sessions that record the units of work each chunk reports. Their
    ``begin``/``end`` are built-in callables, so calling them runs no Python
    code (which would handle a pending Ctrl-C before the units are recorded)."""
    import itertools

    from fastbp import _blas_threads

    done = []

    class Recording:
        def __init__(self, key, largest_gemm):
            self.begin = itertools.count().__next__
            self.end = done.append

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def most_threads(self):
            return 0  # as a session with no BLAS library to control

        def runs_own_threads(self):
            pass

    monkeypatch.setattr(_blas_threads, "blas_session", Recording)
    return done


def interrupt_after_first_chunk(call, done):
    """Run ``call``; Ctrl-C (from another thread) as soon as its first chunk
    of work has ended."""
    import _thread
    import threading

    stop = threading.Event()

    def interrupter():
        while not done and not stop.is_set():
            time.sleep(0.001)
        if not stop.is_set():
            _thread.interrupt_main()

    thread = threading.Thread(target=interrupter)
    thread.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            call()
            # (only reached when the call ignored Ctrl-C until it was done)
            time.sleep(1)
    finally:
        stop.set()
        thread.join()


@pytest.mark.usefixtures("ctrl_c_raises")
def test_keyboard_interrupt_stops_a_large_predict(backend, units_done):
    name = backend
    be = _backend_module(name)
    net, params, X, _ = _wide_problem(200_000)
    rows = be._FORWARD_BLOCK if name == "cython" else be._forward_block(net)
    interrupt_after_first_chunk(lambda: be.forward(net, params, X), units_done)
    # stopped between two chunks, long before the last block
    assert 0 < sum(units_done) < 200_000 // rows - 2


@pytest.mark.usefixtures("require_cython", "ctrl_c_raises")
def test_keyboard_interrupt_stops_a_large_compiled_loss_grad(units_done):
    be = _backend_module("cython")
    net, params, X, Y = _wide_problem(200_000)
    interrupt_after_first_chunk(
        lambda: be.loss_grad(net, params, X, Y, alpha=1e-4), units_done
    )
    assert 0 < sum(units_done) < 200_000 // be._LOSS_GRAD_BLOCK - 2
