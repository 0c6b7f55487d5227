"""Shared fixtures: the ``backend`` every backend-sensitive test runs on.

"cython" is skipped when the compiled extension is not importable, unless
FASTBP_REQUIRE_CYTHON=1 (set in CI), where a missing extension fails.
"""

import os

import pytest

from fastbp.backends import cython_available


def require_cython():
    """Skip the calling test without the compiled backend (fail in CI)."""
    if not cython_available():
        if os.environ.get("FASTBP_REQUIRE_CYTHON") == "1":
            pytest.fail(
                "FASTBP_REQUIRE_CYTHON=1 but fastbp._cython_backend is not "
                "importable: build the extension."
            )
        pytest.skip("compiled backend not built")


@pytest.fixture(params=["numpy", "cython"])
def backend(request):
    if request.param == "cython":
        require_cython()
    return request.param


@pytest.fixture
def one_blas_thread():
    """Small problems: OpenBLAS threads only add overhead (L-BFGS-B's own BLAS
    calls ran ~15x slower with 2 threads on 100-parameter fits)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
