"""Shared fixtures: the ``backend`` every backend-sensitive test runs on, and
``require_cython`` for tests that need the compiled extension.

Without the compiled extension those tests are skipped, unless
FASTBP_REQUIRE_CYTHON=1 (set in CI): then a missing extension fails the run.
"""

import os

import pytest

from fastbp.backends import cython_available

_REQUIRED = os.environ.get("FASTBP_REQUIRE_CYTHON") == "1"
_MISSING = (
    "FASTBP_REQUIRE_CYTHON=1 but fastbp._cython_backend is not importable: "
    "build the extension."
)


def pytest_configure(config):
    # Modules that importorskip the extension would otherwise be skipped
    # silently; with the variable set a missing extension stops the run.
    if _REQUIRED and not cython_available():
        pytest.exit(_MISSING, returncode=1)


def _skip_without_cython():
    if not cython_available():
        if _REQUIRED:
            pytest.fail(_MISSING)
        pytest.skip("compiled backend not built")


@pytest.fixture
def require_cython():
    """Skip the requesting test without the compiled backend (fail in CI)."""
    _skip_without_cython()


@pytest.fixture(params=["numpy", "cython"])
def backend(request):
    if request.param == "cython":
        _skip_without_cython()
    return request.param


@pytest.fixture
def one_blas_thread():
    """Small problems: OpenBLAS threads only add overhead (L-BFGS-B's own BLAS
    calls ran ~15x slower with 2 threads on 100-parameter fits)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture
def ctrl_c_raises():
    """Ctrl-C raises KeyboardInterrupt in the main thread during the test.

    A process started in the background of a non-interactive shell (as CI may
    start it) inherits SIGINT ignored, and then ``_thread.interrupt_main()``
    does nothing; the tests that simulate Ctrl-C install Python's default
    handler for their duration.
    """
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
