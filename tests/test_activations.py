"""The activation table: values, derivatives, overflow safety, aliases."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

from fastbp import activations as act
from fastbp import backprop

H_EXTREME = np.array([[-1e4, -800.0, -710.0, -40.0, -1.0, -1e-300, 0.0, 1e-300, 1.0, 40.0, 710.0, 800.0, 1e4]])

SMOOTH = ["identity", "logistic", "tanh", "softplus"]


def _reference(name, h):
    with np.errstate(all="ignore"):
        return {
            "identity": h,
            "logistic": np.where(h >= 0, 1 / (1 + np.exp(-h)), np.exp(h) / (1 + np.exp(h))),
            "tanh": np.tanh(h),
            "relu": np.maximum(h, 0),
            "softplus": np.where(h > 30, h + np.log1p(np.exp(-np.abs(h))), np.log1p(np.exp(np.minimum(h, 30)))),
        }[name]


def _reference_derivative(name, h):
    with np.errstate(all="ignore"):
        sig = np.where(h >= 0, 1 / (1 + np.exp(-h)), np.exp(h) / (1 + np.exp(h)))
        return {
            "identity": np.ones_like(h),
            "logistic": sig * (1 - sig),
            "tanh": 1 - np.tanh(h) ** 2,
            "relu": (h > 0).astype(float),
            "softplus": sig,
        }[name]


@pytest.mark.parametrize("name", ["identity", "logistic", "tanh", "relu", "softplus"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_and_derivative_are_finite_without_warnings_for_huge_inputs(name, dtype):
    H = H_EXTREME.astype(dtype)
    with warnings.catch_warnings(), np.errstate(all="raise", under="ignore"):
        warnings.simplefilter("error")
        Z = act.FORWARD[name](H.copy())
        D = act.DERIVATIVE[name](Z, np.ones_like(Z))
    assert Z.dtype == dtype and D.dtype == dtype
    assert np.isfinite(Z).all() and np.isfinite(D).all()
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    assert_allclose(Z, _reference(name, H.astype(np.float64)).astype(dtype), rtol=rtol, atol=1e-300)
    assert_allclose(D, _reference_derivative(name, H.astype(np.float64)).astype(dtype), rtol=max(rtol, 1e-9), atol=1e-300)


def test_logistic_saturates_to_exact_limits():
    Z = act.logistic(H_EXTREME.copy())
    assert Z[0, 0] == 0.0 and Z[0, -1] == 1.0
    assert Z[0, 6] == 0.5


def test_softplus_is_h_for_large_h_and_exp_h_for_very_negative_h():
    Z = act.softplus(np.array([[1e4, 50.0, -50.0, -800.0]]))
    assert Z[0, 0] == 1e4
    assert Z[0, 1] == pytest.approx(50.0, rel=1e-15)
    assert Z[0, 2] == pytest.approx(np.exp(-50.0), rel=1e-12)
    assert Z[0, 3] == 0.0


def test_softplus_derivative_is_accurate_for_small_outputs():
    # sigmoid(h) for h = -30 is ~9.4e-14; 1 - exp(-Z) loses it, -expm1(-Z) not.
    h = np.array([[-30.0]])
    Z = act.softplus(h.copy())
    D = act.softplus_derivative(Z, np.ones_like(Z))
    assert D[0, 0] == pytest.approx(1 / (1 + np.exp(30.0)), rel=1e-12)


def test_softmax_is_overflow_safe_and_sums_to_one():
    H = np.array([[1e4, 0.0, -1e4], [800.0, 800.0, 799.0], [-1e4, -1e4, -1e4]])
    with warnings.catch_warnings(), np.errstate(all="raise", under="ignore"):
        warnings.simplefilter("error")
        P = act.softmax(H.copy())
    assert np.isfinite(P).all()
    assert_allclose(P.sum(axis=1), 1.0)
    assert_allclose(P[0], [1.0, 0.0, 0.0])
    assert_allclose(P[2], [1 / 3] * 3)


def test_log_losses_clip_probabilities_at_dtype_eps():
    y = np.array([[1.0, 0.0]])
    z = np.array([[0.0, 1.0]])
    with np.errstate(all="raise", under="ignore"):
        mc = act.multiclass_log_loss(y, z.copy(), None)
        bl = act.binary_log_loss(y, z.copy(), None)
    eps = np.finfo(np.float64).eps
    assert mc[0] == pytest.approx(-np.log(eps))
    assert bl[0] == pytest.approx(-2 * np.log(eps))
    z32 = z.astype(np.float32)
    assert act.multiclass_log_loss(y.astype(np.float32), z32, None)[0] == pytest.approx(
        -np.log(np.finfo(np.float32).eps), rel=1e-6
    )


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu", "softplus", "maxout"])
@pytest.mark.parametrize(
    "out_activation,loss,n_out",
    [("softmax", "log_loss", 2), ("logistic", "log_loss", 1), ("logistic", "log_loss", 2),
     ("logistic", "squared_error", 1), ("logistic", "squared_error", 2)],
)
def test_backprop_with_huge_preactivations_is_finite_and_silent(backend, activation, out_activation, loss, n_out):
    # |h| reaches ~1e4 in both layers.
    X = np.array([[1.0, -1.0], [-2.0, 0.5], [0.3, 2.0]]) * 100.0
    k = 2 if activation == "maxout" else 1
    W1 = np.array([[30.0, -25.0, 10.0, -40.0], [-20.0, 35.0, -30.0, 15.0]])[:, : 2 * k]
    W2 = np.array([[40.0, -40.0], [-35.0, 30.0]])[:, :n_out]
    y = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])[:, :n_out]
    with warnings.catch_warnings(), np.errstate(all="raise", under="ignore"):
        warnings.simplefilter("error")
        loss_value, dW, db = backprop(
            X, y, [W1, W2], [np.zeros(2 * k), np.zeros(n_out)], activation=activation,
            out_activation=out_activation, loss=loss, alpha=1e-3,
            maxout_pieces=2, backend=backend,
        )
    assert np.isfinite(loss_value)
    for g in dW + db:
        assert np.isfinite(g).all()


def test_sigmoid_is_an_alias_of_logistic():
    assert act.canonical("sigmoid") == "logistic"
    assert act.canonical("tanh") == "tanh"
    X = np.random.RandomState(0).normal(size=(4, 3))
    y = np.random.RandomState(1).normal(size=(4, 1))
    coefs = [np.full((3, 2), 0.3), np.full((2, 1), -0.2)]
    intercepts = [np.zeros(2), np.zeros(1)]
    a = backprop(X, y, coefs, intercepts, activation="sigmoid", out_activation="sigmoid", backend="numpy")
    b = backprop(X, y, coefs, intercepts, activation="logistic", out_activation="logistic", backend="numpy")
    assert a[0] == b[0]
    for g, h in zip(a[1] + a[2], b[1] + b[2], strict=True):
        assert_allclose(g, h, rtol=0, atol=0)


def test_tables_cover_every_public_activation():
    for name in act.HIDDEN_ACTIVATIONS:
        assert name in act.CODES
        if name != "maxout":
            assert name in act.FORWARD
            assert (name in act.DERIVATIVE) != (name in act.DERIVATIVE_AT)
    assert set(act.DERIVATIVE_AT) == set(act.NEEDS_PRE_ACTIVATION)
    for name in act.OUT_ACTIVATIONS:
        assert name in act.FORWARD
    assert len(set(act.CODES.values())) == len(act.CODES)


@pytest.mark.parametrize(
    "out_activation,loss",
    [("softmax", "squared_error"), ("identity", "log_loss"), ("identity", "poisson"), ("tanh", "log_loss"), ("exp", "hinge")],
)
def test_impossible_pairings_are_value_errors(out_activation, loss):
    with pytest.raises(ValueError, match="loss|out_activation"):
        act.check_pairing(out_activation, loss)


def test_softmax_needs_two_outputs():
    with pytest.raises(ValueError, match="2 outputs"):
        act.check_pairing("softmax", "log_loss", n_outputs=1)


def test_binary_proba_keeps_one_minus_p_exact_where_p_rounds_to_one():
    from scipy.special import expit

    H = np.array([[40.0], [0.0], [-800.0]])
    P = act.binary_proba(H.copy())
    assert_allclose(P[:, 0], expit(-H[:, 0]), rtol=1e-15)
    assert P[0, 0] > 0 and P[0, 1] == 1.0
    assert P[2, 1] == np.finfo(np.float64).tiny  # floored, never 0
    assert_allclose(np.log(P), act.log_proba_from_logits(H, "logistic"), rtol=1e-12, atol=1e-15)


# ------------------------------------------------- leaky_relu, elu, selu, gelu, silu
# Values and derivatives against the textbook formulas (scipy's erf and
# expit), in both backends, over the whole range: no warning, nothing
# non-finite, for any finite input.

NEW = ["leaky_relu", "elu", "selu", "gelu", "silu"]
SLOPE = 0.2
# SELU's constants as Klambauer et al. (2017) give them.
SELU_LAMBDA = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717


def _new_formula(name, h):
    from scipy.special import erf, expit

    neg = np.minimum(h, 0)
    with np.errstate(all="ignore"):
        return {
            "leaky_relu": np.where(h > 0, h, SLOPE * h),
            "elu": np.where(h > 0, h, np.expm1(neg)),
            "selu": SELU_LAMBDA * np.where(h > 0, h, SELU_ALPHA * np.expm1(neg)),
            "gelu": 0.5 * h * (1 + erf(h / np.sqrt(2))),
            "silu": h * expit(h),
        }[name]


def _new_formula_derivative(name, h):
    from scipy.special import erf, expit

    neg = np.minimum(h, 0)
    s = expit(h)
    with np.errstate(all="ignore"):
        return {
            "leaky_relu": np.where(h > 0, 1.0, SLOPE),
            "elu": np.where(h > 0, 1.0, np.exp(neg)),
            "selu": SELU_LAMBDA * np.where(h > 0, 1.0, SELU_ALPHA * np.exp(neg)),
            "gelu": 0.5 * (1 + erf(h / np.sqrt(2)))
            + h * np.exp(-0.5 * np.minimum(h * h, 1e300)) / np.sqrt(2 * np.pi),
            "silu": s * (1 + h * (1 - s)),
        }[name]


def _extreme(dtype):
    """H_EXTREME and +-max/10 of the dtype (h * h overflows there)."""
    huge = np.finfo(dtype).max / 10
    with np.errstate(over="ignore"):
        H = H_EXTREME.astype(dtype)
    H = H[np.isfinite(H)].reshape(1, -1)
    return np.hstack([H, np.array([[-huge, huge]], dtype=dtype)])


def _new_forward(backend, name, H):
    """f(H) of a hidden layer, computed by ``backend``."""
    if backend == "numpy":
        return act.apply(name, H.copy(), SLOPE)
    from fastbp import _cython_backend as cb

    Z = np.empty_like(H)
    hidden = cb._activation_shim(act.CODES[name], H.copy(), Z, SLOPE)
    if name in act.NEEDS_PRE_ACTIVATION:
        # the pass that also keeps f'(H) (gelu/silu layers when training)
        # gives the same values
        Z2, _ = cb._activation_grad_shim(act.CODES[name], H)
        np.testing.assert_array_equal(Z2, hidden)
    return hidden


def _new_derivative(backend, name, H, Z):
    """f'(H) (times ones) as the backend's backward pass gets it: from Z, or
    for gelu/silu the f'(H) its forward pass keeps."""
    D = np.ones_like(H)
    if backend == "numpy":
        return act.derivative(name, Z, H, D, SLOPE)
    from fastbp import _cython_backend as cb

    if name in act.NEEDS_PRE_ACTIVATION:
        _, G = cb._activation_grad_shim(act.CODES[name], H)
        D *= G
    else:
        cb._derivative_shim(act.CODES[name], Z, D, SLOPE)
    return D


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_new_activations_match_their_formulas_without_warnings(backend, name, dtype):
    H = _extreme(dtype)
    with warnings.catch_warnings(), np.errstate(all="raise", under="ignore"):
        warnings.simplefilter("error")
        Z = _new_forward(backend, name, H)
        D = _new_derivative(backend, name, H, Z)
    assert Z.dtype == dtype and D.dtype == dtype
    assert np.isfinite(Z).all() and np.isfinite(D).all()
    h = H.astype(np.float64)
    # erf(h) + 1 cancels for negative h: the error is absolute there.
    rtol, atol = (1e-12, 1e-14) if dtype == np.float64 else (1e-5, 1e-6)
    assert_allclose(Z, _new_formula(name, h), rtol=rtol, atol=atol)
    assert_allclose(D, _new_formula_derivative(name, h), rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_new_activations_on_ordinary_inputs(backend, name, dtype):
    # many values around the interesting range, not only the extremes
    H = np.linspace(-6, 6, 241, dtype=dtype).reshape(1, -1)
    Z = _new_forward(backend, name, H)
    D = _new_derivative(backend, name, H, Z)
    h = H.astype(np.float64)
    rtol, atol = (1e-12, 1e-15) if dtype == np.float64 else (1e-5, 1e-6)
    assert_allclose(Z, _new_formula(name, h), rtol=rtol, atol=atol)
    assert_allclose(D, _new_formula_derivative(name, h), rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", ["elu", "selu", "silu"])
def test_compiled_float32_activations_are_within_3_ulp_of_the_numpy_backend(require_cython, name):
    # The compiled float32 kernels use their own vectorized expm1/sigmoid
    # (fastbp/_kernels.h), NumPy libm's/SciPy's: both within an ulp or so
    # of the exact values, so the activations agree to a few ulps (much
    # closer than the parity tests' rtol), here over a dense grid.
    H = np.linspace(-30, 30, 60003, dtype=np.float32).reshape(3, -1)
    want = _new_forward("numpy", name, H)
    got = _new_forward("cython", name, H)

    def ordered(a):  # float32 -> int64, monotonic: ulp distance
        i = a.ravel().view(np.int32).astype(np.int64)
        return np.where(i < 0, -(i & 0x7FFFFFFF), i)

    assert np.abs(ordered(got) - ordered(want)).max() <= 3


def test_leaky_relu_slope_zero_is_relu_and_swish_is_silu():
    H = np.linspace(-3, 3, 13).reshape(1, -1)
    assert_allclose(act.apply("leaky_relu", H.copy(), 0.0), act.relu(H.copy()), rtol=0, atol=0)
    assert act.canonical("swish") == "silu"


def test_canonical_spells_each_name_of_a_list():
    assert act.canonical(["swish", "sigmoid", "relu"]) == ("silu", "logistic", "relu")
    assert act.canonical(("tanh",)) == ("tanh",)


def test_hidden_activations_names_the_parameter_and_the_layer_count():
    assert act.hidden_activations("swish", 2) == ("silu", "silu")
    assert act.hidden_activations(["relu", "sigmoid"], 2) == ("relu", "logistic")
    with pytest.raises(ValueError, match=r"activation has 3 entries, but the network has 2 hidden layers"):
        act.hidden_activations(["relu"] * 3, 2)
    with pytest.raises(ValueError, match=r"activation\[1\] must be one of"):
        act.hidden_activations(["relu", "softmax"], 2)
    with pytest.raises(TypeError, match="activation must be a str or a list"):
        act.hidden_activations(3, 2)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_predict_follows_activation_and_negative_slope_set_after_fit(backend):
    # as scikit-learn's MLP, which applies self.activation at every predict
    from sklearn.datasets import load_digits

    from fastbp import BPClassifier

    X, y = load_digits(return_X_y=True)
    X, y = X[:200] / 16, y[:200]
    clf = BPClassifier((8, 6), activation="leaky_relu", max_iter=3, random_state=0,
                       backend=backend).fit(X, y)
    fitted = clf.predict_proba(X)
    steep = clf.set_params(negative_slope=0.5).predict_proba(X)
    assert not np.allclose(steep, fitted)
    assert_allclose(clf.set_params(negative_slope=0.01).predict_proba(X), fitted, rtol=0, atol=0)
    coefs = [c.copy() for c in clf.coefs_]
    other = clf.set_params(activation=["tanh", "gelu"]).predict_proba(X)
    reference = BPClassifier((8, 6), activation=["tanh", "gelu"], backend=backend)
    reference.__dict__.update({k: v for k, v in clf.__dict__.items() if k.endswith("_")})
    reference.coefs_ = coefs
    assert not np.allclose(other, fitted)
    assert_allclose(other, reference.predict_proba(X), rtol=1e-12)
