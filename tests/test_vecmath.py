"""The compiled backend's vectorized float32 exp, expm1, erf and sigmoid
(fastbp/_kernels.h) and the float32 activation loops built on them.

Each function is checked against float64 libm (NumPy, SciPy) rounded to
float32, in ulps, over a grid of bit patterns that covers every binade of
float32 (subnormals, +-0, +-inf and NaNs included).
"""

import numpy as np
import pytest
from scipy.special import erf, expit

from fastbp import activations as act

cb = pytest.importorskip("fastbp._cython_backend")

EXP, EXPM1, ERF, SIGMOID = range(4)
FUNCTIONS = {
    EXP: np.exp,
    EXPM1: np.expm1,
    ERF: erf,
    SIGMOID: expit,
}
NAMES = {EXP: "exp", EXPM1: "expm1", ERF: "erf", SIGMOID: "sigmoid"}
# Max ulp error: erf is computed in float (the others in double, rounded once)
ULPS = {EXP: 1, EXPM1: 1, ERF: 2, SIGMOID: 1}

SPECIAL = np.array(
    [
        0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan,
        1e-45, -1e-45, 1e-40, -1e-40, 1.1754942e-38, -1.1754942e-38,
        1.1754944e-38, 1e-30, -1e-30, 1e-8, -1e-8, 0.5, -0.5, 1.0, -1.0,
        1.5, -1.5, 1.4999999, 1.5000001, 4.0, -4.0, 3.9, 3.92, 3.93, 5.0,
        -5.0, 10.0, -10.0, 40.0, -40.0, 87.3, -87.3, 88.72, 88.7228, 88.7229,
        88.73, 89.0, -89.0, -100.0, -103.9, -104.0, -110.0, 199.0, 200.0,
        201.0, -199.0, -200.0, -201.0, 1e4, -1e4, 3.4028235e38,
        -3.4028235e38,
    ],
    dtype=np.float32,
)


def _bit_grid(stride=997):
    """Every stride-th float32 bit pattern (all signs and binades, NaNs
    included), the special values, and the floats on either side of each
    special value."""
    bits = np.arange(0, 2**32, stride, dtype=np.uint64).astype(np.uint32)
    finite = SPECIAL[np.isfinite(SPECIAL)]
    with np.errstate(over="ignore"):  # the neighbours of +-max are +-inf
        near = np.concatenate(
            [np.nextafter(finite, np.float32(np.inf)), np.nextafter(finite, np.float32(-np.inf))]
        )
    return np.concatenate([bits.view(np.float32), SPECIAL, near])


def _ordered(a):
    """float32 -> int64, monotonic, +0 and -0 both 0: ulp distance is the
    difference."""
    i = a.view(np.int32).astype(np.int64)
    return np.where(i < 0, -(i & 0x7FFFFFFF), i)


def _reference(which, x):
    with np.errstate(all="ignore"):
        return FUNCTIONS[which](x.astype(np.float64)).astype(np.float32)


@pytest.mark.parametrize("which", sorted(FUNCTIONS), ids=NAMES.get)
def test_float32_function_is_within_its_ulps_of_float64_libm_rounded(which):
    x = _bit_grid()
    got = cb._vecmath_shim(which, x)
    want = _reference(which, x)
    assert got.dtype == np.float32
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    ulps = np.abs(_ordered(got[~nan]) - _ordered(want[~nan]))
    worst = np.argmax(ulps)
    assert ulps[worst] <= ULPS[which], (NAMES[which], x[~nan][worst], got[~nan][worst], want[~nan][worst])


@pytest.mark.parametrize("which", sorted(FUNCTIONS), ids=NAMES.get)
def test_float32_function_is_within_its_ulps_on_a_dense_grid_where_it_varies(which):
    # every 7th float32 over the range where the function is neither
    # constant nor x itself once rounded (tens of millions of values would
    # be exhaustive; a dense uniform grid is enough to see a bad fit)
    lo, hi = {EXP: (-104.0, 89.0), EXPM1: (-18.0, 89.0), ERF: (-4.5, 4.5), SIGMOID: (-104.0, 18.0)}[which]
    x = np.linspace(lo, hi, 2_000_001, dtype=np.float64).astype(np.float32)
    got = cb._vecmath_shim(which, x)
    want = _reference(which, x)
    ulps = np.abs(_ordered(got) - _ordered(want))
    worst = np.argmax(ulps)
    assert ulps[worst] <= ULPS[which], (NAMES[which], x[worst], got[worst], want[worst])


def test_exact_values_at_zero_infinities_and_nan():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan], dtype=np.float32)
    exp = cb._vecmath_shim(EXP, x)
    expm1 = cb._vecmath_shim(EXPM1, x)
    erf_ = cb._vecmath_shim(ERF, x)
    sig = cb._vecmath_shim(SIGMOID, x)
    np.testing.assert_array_equal(exp, [1, 1, np.inf, 0, np.nan])
    np.testing.assert_array_equal(expm1, [0, 0, np.inf, -1, np.nan])
    np.testing.assert_array_equal(erf_, [0, 0, 1, -1, np.nan])
    np.testing.assert_array_equal(sig, [0.5, 0.5, 1, 0, np.nan])
    # the sign of zero: expm1 and erf are odd
    assert list(np.signbit(expm1[:2])) == [False, True]
    assert list(np.signbit(erf_[:2])) == [False, True]
    assert not np.signbit(exp[3]) and not np.signbit(sig[3])


def test_subnormal_arguments_and_results():
    tiny = np.array([1e-45, -1e-45, 1e-40, -3e-39], dtype=np.float32)
    # expm1 and erf of a subnormal: x and 2/sqrt(pi) x, correctly rounded
    np.testing.assert_array_equal(cb._vecmath_shim(EXPM1, tiny), tiny)
    np.testing.assert_array_equal(cb._vecmath_shim(ERF, tiny), _reference(ERF, tiny))
    np.testing.assert_array_equal(cb._vecmath_shim(EXP, tiny), np.ones(4, np.float32))
    # exp and sigmoid with subnormal results: not flushed to zero
    x = np.array([-88.0, -90.0, -100.0, -103.0], dtype=np.float32)
    for which in (EXP, SIGMOID):
        got = cb._vecmath_shim(which, x)
        np.testing.assert_array_equal(got, _reference(which, x))
        assert (got[1:] > 0).all() and (got[1:] < np.finfo(np.float32).tiny).all()


def test_shim_rejects_an_unknown_function():
    with pytest.raises(ValueError, match="which"):
        cb._vecmath_shim(4, np.zeros(3, np.float32))


# ------------------------------------------------- the float32 activations

H32 = np.concatenate([np.linspace(-12, 12, 4802), [-1e4, -200, -100, -90, 0.0, -0.0, 90, 1e4, 3e38, -3e38]])
H32 = H32.astype(np.float32).reshape(3, -1)


def _forward(name, H):
    Z = np.empty_like(H)
    return cb._activation_shim(act.CODES[name], H.copy(), Z, 0.01)


def test_float32_elu_and_selu_are_expm1_in_numpys_operations():
    h = H32
    em1 = cb._vecmath_shim(EXPM1, h.ravel()).reshape(h.shape)
    with np.errstate(all="ignore"):
        elu = np.where(h > 0, h, em1)
        selu = np.where(h > 0, h * np.float32(act.SELU_SCALE), em1 * np.float32(act.SELU_SCALE_ALPHA))
    np.testing.assert_array_equal(_forward("elu", h), elu)
    np.testing.assert_array_equal(_forward("selu", h), selu)


def test_float32_gelu_is_erf_in_numpys_operations_and_its_derivative_is_exact_to_2_ulp():
    h = H32
    f32 = np.float32
    erf_ = cb._vecmath_shim(ERF, (h * f32(act.INV_SQRT2)).ravel()).reshape(h.shape)
    p = (erf_ + f32(1)) * f32(0.5)
    np.testing.assert_array_equal(_forward("gelu", h), h * p)
    Z, G = cb._activation_grad_shim(act.GELU, h)
    np.testing.assert_array_equal(Z, h * p)
    # f'(h) = Phi(h) + h phi(h): the e^(-h^2/2) in phi is the one erf
    # computes, e^(-y^2) of y = h / sqrt(2) in float32, not a second exp
    x = h.astype(np.float64)
    with np.errstate(all="ignore"):
        g = 0.5 * (1 + erf(x / np.sqrt(2))) + x * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)
    assert np.all(np.abs(G - g) <= 2.0**-22 * (1 + np.abs(g)))


def test_float32_silu_and_its_derivative_are_sigmoid_in_numpys_operations():
    h = H32
    f32 = np.float32
    s = cb._vecmath_shim(SIGMOID, h.ravel()).reshape(h.shape)
    g = ((f32(1) - s) * h + f32(1)) * s
    np.testing.assert_array_equal(_forward("silu", h), h * s)
    Z, G = cb._activation_grad_shim(act.SILU, h)
    np.testing.assert_array_equal(Z, h * s)
    np.testing.assert_array_equal(G, g)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_derivative_is_numpys_bit_for_bit_with_nan_and_signed_zeros(dtype):
    special = np.array([np.nan, -np.nan, 0.0, -0.0, np.inf, -np.inf, 1e-45, -1e-45, 1.0, -1.0])
    Z = np.repeat(special, special.size).reshape(-1, 10).astype(dtype)
    D = np.tile(special, special.size).reshape(-1, 10).astype(dtype) * 3
    D = np.hstack([D, D[:, :7]])  # 17 columns: a vector body and a tail
    Z = np.hstack([Z, Z[:, :7]])
    want = act.relu_derivative(Z, D.copy())
    got = D.copy()
    cb._derivative_shim(act.RELU, Z, got)
    uint = np.uint32 if dtype == np.float32 else np.uint64
    np.testing.assert_array_equal(got.view(uint), want.view(uint))


@pytest.mark.parametrize("name", ["elu", "selu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elu_and_selu_derivatives_are_numpys_bit_for_bit(name, dtype):
    # Z = f(H): NaN, +-0, -inf (elu/selu of -inf is the finite limit, but
    # a diverged fit can hold anything), the limit itself, ordinary values
    special = np.array(
        [np.nan, 0.0, -0.0, np.inf, -np.inf, -1.0, -act.SELU_SCALE_ALPHA, -0.5, -1e-45, 1e-45, 2.0, -1e-3]
    )
    Z = np.repeat(special, special.size).reshape(-1, special.size).astype(dtype)
    D = np.tile(special, special.size).reshape(-1, special.size).astype(dtype) * 3
    Z = np.hstack([Z, Z[:, :5]])  # a vector body and a tail
    D = np.hstack([D, D[:, :5]])
    with np.errstate(all="ignore"):
        want = act.DERIVATIVE[name](Z, D.copy())
    got = D.copy()
    cb._derivative_shim(act.CODES[name], Z, got)
    uint = np.uint32 if dtype == np.float32 else np.uint64
    np.testing.assert_array_equal(got.view(uint), want.view(uint))
