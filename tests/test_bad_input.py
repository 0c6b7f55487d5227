"""Bad input gets a clear ValueError/TypeError naming the problem: one test
per case, for the estimators and for ``backprop``."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from fastbp import BPClassifier, BPRegressor, backprop

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

RNG = np.random.RandomState(0)
X = RNG.uniform(size=(30, 3))
Y_CLS = np.arange(30) % 3
Y_REG = RNG.normal(size=30)
FAST = dict(hidden_layer_sizes=(4,), max_iter=3, random_state=0, backend="numpy")
ESTIMATORS = [(BPClassifier, Y_CLS), (BPRegressor, Y_REG)]


def _with(value, where=(2, 1)):
    X2 = X.copy()
    X2[where] = value
    return X2


# ------------------------------------------------------------ fit input


@pytest.mark.parametrize("cls,y", ESTIMATORS)
def test_nan_in_X_is_rejected(cls, y):
    with pytest.raises(ValueError, match="Input X contains NaN"):
        cls(**FAST).fit(_with(np.nan), y)


@pytest.mark.parametrize("cls,y", ESTIMATORS)
def test_inf_in_X_is_rejected(cls, y):
    with pytest.raises(ValueError, match="Input X contains infinity"):
        cls(**FAST).fit(_with(-np.inf), y)


def test_nan_in_y_is_rejected():
    y = Y_REG.copy()
    y[4] = np.nan
    with pytest.raises(ValueError, match="Input y contains NaN"):
        BPRegressor(**FAST).fit(X, y)


def test_inf_in_y_is_rejected():
    y = Y_REG.copy()
    y[4] = np.inf
    with pytest.raises(ValueError, match="Input y contains infinity"):
        BPRegressor(**FAST).fit(X, y)


@pytest.mark.parametrize("cls,y", ESTIMATORS)
def test_one_dimensional_X_is_rejected(cls, y):
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        cls(**FAST).fit(X[:, 0], y)


@pytest.mark.parametrize("cls,y", ESTIMATORS)
def test_empty_X_is_rejected(cls, y):
    with pytest.raises(ValueError, match="0 sample"):
        cls(**FAST).fit(np.empty((0, 3)), y[:0])


@pytest.mark.parametrize("cls,y", ESTIMATORS)
def test_X_without_features_is_rejected(cls, y):
    with pytest.raises(ValueError, match="0 feature"):
        cls(**FAST).fit(np.empty((30, 0)), y)


@pytest.mark.parametrize("cls,y", ESTIMATORS)
def test_X_and_y_of_different_lengths_are_rejected(cls, y):
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        cls(**FAST).fit(X, y[:20])


@pytest.mark.parametrize("method", ["predict", "predict_proba", "predict_log_proba", "score"])
def test_wrong_number_of_features_at_predict_time(method):
    clf = BPClassifier(**FAST).fit(X, Y_CLS)
    args = (X[:, :2], Y_CLS) if method == "score" else (X[:, :2],)
    with pytest.raises(ValueError, match="X has 2 features, but BPClassifier is expecting 3"):
        getattr(clf, method)(*args)


def test_wrong_number_of_features_in_partial_fit():
    reg = BPRegressor(**FAST).partial_fit(X, Y_REG)
    with pytest.raises(ValueError, match="X has 4 features, but BPRegressor is expecting 3"):
        reg.partial_fit(np.hstack([X, X[:, :1]]), Y_REG)


def test_nan_in_X_at_predict_time():
    reg = BPRegressor(**FAST).fit(X, Y_REG)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        reg.predict(_with(np.nan))


@pytest.mark.parametrize("cls", [BPClassifier, BPRegressor])
def test_predict_before_fit_is_not_fitted_error(cls):
    with pytest.raises(NotFittedError, match="is not fitted yet"):
        cls().predict(X)


# ------------------------------------------------------------- parameters


@pytest.mark.parametrize("cls,y", ESTIMATORS)
def test_unknown_activation(cls, y):
    with pytest.raises(ValueError, match="'activation' parameter .* Got 'softmax'"):
        cls(activation="softmax", **FAST).fit(X, y)


@pytest.mark.parametrize("cls,y", ESTIMATORS)
@pytest.mark.parametrize("bad", [["relu", "softmax"], ("tanh", 3), ["relu", None]])
def test_unknown_name_in_an_activation_list(cls, y, bad):
    from sklearn.utils._param_validation import InvalidParameterError

    kw = dict(FAST, hidden_layer_sizes=(4, 3))
    with pytest.raises(InvalidParameterError, match=r"'activation' parameter .* one per hidden layer"):
        cls(activation=bad, **kw).fit(X, y)


@pytest.mark.parametrize("cls,y", ESTIMATORS)
def test_activation_list_of_the_wrong_length(cls, y):
    kw = dict(FAST, hidden_layer_sizes=(4, 3))
    with pytest.raises(ValueError, match="activation has 3 entries, but the network has 2 hidden"):
        cls(activation=["relu", "tanh", "elu"], **kw).fit(X, y)
    with pytest.raises(ValueError, match="activation has 1 entry, but the network has 2 hidden"):
        cls(activation=("relu",), **kw).fit(X, y)


@pytest.mark.parametrize("cls,y", ESTIMATORS)
def test_unknown_solver(cls, y):
    with pytest.raises(ValueError, match="'solver' parameter .* Got 'newton'"):
        cls(solver="newton", **FAST).fit(X, y)


@pytest.mark.parametrize("cls,y", ESTIMATORS)
def test_unknown_backend(cls, y):
    with pytest.raises(ValueError, match="'backend' parameter .* Got 'torch'"):
        cls(**{**FAST, "backend": "torch"}).fit(X, y)


def test_unknown_backend_name_in_get_backend():
    from fastbp.backends import get_backend

    with pytest.raises(ValueError, match="backend must be one of"):
        get_backend("torch")


def test_unknown_regressor_loss():
    with pytest.raises(ValueError, match="'loss' parameter .* Got 'hinge'"):
        BPRegressor(loss="hinge", **FAST).fit(X, Y_REG)


def test_unknown_regressor_out_activation():
    with pytest.raises(ValueError, match="'out_activation' parameter .* Got 'softmax'"):
        BPRegressor(out_activation="softmax", **FAST).fit(X, Y_REG)


def test_poisson_with_non_exp_output_is_rejected():
    with pytest.raises(ValueError, match="poisson.*exp"):
        BPRegressor(loss="poisson", out_activation="identity", **FAST).fit(X, np.abs(Y_REG))


@pytest.mark.parametrize("sizes", [(4, 0), (0,), (3, -2)])
@pytest.mark.parametrize("cls,y", ESTIMATORS)
def test_non_positive_layer_sizes(cls, y, sizes):
    with pytest.raises(ValueError, match="hidden_layer_sizes must be > 0"):
        cls(**{**FAST, "hidden_layer_sizes": sizes}).fit(X, y)


@pytest.mark.parametrize("cls,y", ESTIMATORS)
def test_zero_as_a_scalar_layer_size(cls, y):
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        cls(**{**FAST, "hidden_layer_sizes": 0}).fit(X, y)


def test_non_integer_layer_size():
    with pytest.raises(ValueError, match="hidden_layer_sizes must contain integers"):
        BPClassifier(**{**FAST, "hidden_layer_sizes": (2.5,)}).fit(X, Y_CLS)


@pytest.mark.parametrize("pieces", [1, 0, -3])
def test_maxout_pieces_below_two(pieces):
    with pytest.raises(ValueError, match="'maxout_pieces' parameter .* range \\[2, inf\\)"):
        BPClassifier(activation="maxout", maxout_pieces=pieces, **FAST).fit(X, Y_CLS)


def test_non_integer_maxout_pieces():
    with pytest.raises(ValueError, match="maxout_pieces"):
        BPRegressor(activation="maxout", maxout_pieces=2.5, **FAST).fit(X, Y_REG)


# ------------------------------------------------------------ partial_fit


def test_unseen_class_in_partial_fit():
    clf = BPClassifier(**FAST).partial_fit(X, Y_CLS, classes=[0, 1, 2])
    with pytest.raises(ValueError, match=r"`y` has classes not in `self.classes_`"):
        clf.partial_fit(X, Y_CLS + 1)


def test_first_partial_fit_needs_classes():
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        BPClassifier(**FAST).partial_fit(X, Y_CLS)


def test_partial_fit_rejects_early_stopping():
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        BPRegressor(early_stopping=True, **FAST).partial_fit(X, Y_REG)


def test_warm_start_with_different_classes():
    clf = BPClassifier(warm_start=True, **FAST).fit(X, Y_CLS)
    with pytest.raises(ValueError, match="warm_start can only be used where `y` has the same classes"):
        clf.fit(X, np.minimum(Y_CLS, 1))


def test_validation_set_too_small():
    with pytest.raises(ValueError, match="The validation set is too small"):
        BPRegressor(early_stopping=True, validation_fraction=0.01, **FAST).fit(X, Y_REG)


def test_warm_start_with_a_different_network_shape():
    reg = BPRegressor(warm_start=True, **FAST).fit(X, Y_REG)
    reg.set_params(hidden_layer_sizes=(6,))
    with pytest.raises(ValueError, match="layer sizes"):
        reg.fit(X, Y_REG)


# ---------------------------------------------------------- regression y


def test_negative_y_with_poisson():
    with pytest.raises(ValueError, match="negative which is not allowed for Poisson"):
        BPRegressor(loss="poisson", **FAST).fit(X, Y_REG)


def test_negative_y_with_poisson_in_partial_fit():
    with pytest.raises(ValueError, match="negative"):
        BPRegressor(loss="poisson", **FAST).partial_fit(X, Y_REG)


# ---------------------------------------------------------- sample weight


def test_sample_weight_of_wrong_length():
    with pytest.raises(ValueError, match=r"sample_weight.shape == \(5,\), expected \(30,\)"):
        BPClassifier(**FAST).fit(X, Y_CLS, sample_weight=np.ones(5))


def test_non_finite_sample_weight():
    sw = np.ones(30)
    sw[3] = np.nan
    with pytest.raises(ValueError, match="sample_weight contains NaN"):
        BPRegressor(**FAST).fit(X, Y_REG, sample_weight=sw)


# ------------------------------------------------------ non-finite weights


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("cls", [BPRegressor, BPClassifier])
def test_weights_going_non_finite_raise_and_leave_finite_weights(backend, cls, solver):
    # scikit-learn's test_nonfinite_params.
    rng = np.random.RandomState(0)
    Xbig = np.finfo(np.float64).max * rng.uniform(size=(10, 2))
    y = rng.standard_normal(size=10) if cls is BPRegressor else rng.randint(0, 2, size=10)
    est = cls(solver=solver, backend=backend, random_state=0)
    with np.errstate(all="ignore"):
        with pytest.raises(
            ValueError,
            match="Solver produced non-finite parameter weights. The input data may "
            "contain large values and need to be preprocessed.",
        ):
            est.fit(Xbig, y)
    assert all(np.isfinite(w).all() for w in est.coefs_ + est.intercepts_)


def test_divergence_in_a_warm_started_fit_raises_and_keeps_finite_weights(backend):
    reg = BPRegressor(warm_start=True, solver="sgd", **{**FAST, "backend": backend}).fit(X, Y_REG)
    reg.set_params(learning_rate_init=1e200, momentum=0.0)
    with np.errstate(all="ignore"), pytest.raises(ValueError, match="non-finite parameter weights"):
        reg.fit(X, Y_REG * 1e100)
    assert all(np.isfinite(w).all() for w in reg.coefs_ + reg.intercepts_)


def test_user_assigned_coefs_of_the_wrong_shape():
    reg = BPRegressor(**FAST).fit(X, Y_REG)
    reg.coefs_ = [np.zeros((3, 5)), reg.coefs_[1]]
    with pytest.raises(ValueError, match=r"coefs_\[0\] of shape \(3, 5\) and intercepts_\[0\] of shape \(4,\)"):
        reg.predict(X)


# ------------------------------------------------------------- backprop

W1, B1 = np.ones((3, 4)) * 0.1, np.zeros(4)
W2, B2 = np.ones((4, 2)) * 0.1, np.zeros(2)
XB, YB = X[:5], np.abs(RNG.normal(size=(5, 2)))


def test_backprop_maxout_columns_not_a_multiple_of_pieces():
    with pytest.raises(ValueError, match="coefs\\[0\\] has 4 columns, not a multiple of maxout_pieces=3"):
        backprop(XB, YB, [W1, np.ones((1, 2))], [B1, B2], activation="maxout", maxout_pieces=3, backend="numpy")


def test_backprop_maxout_rows_of_next_layer_must_be_units_not_pieces():
    # 4 columns / 2 pieces = 2 units, so the next matrix needs 2 rows, not 4.
    with pytest.raises(ValueError, match="coefs\\[1\\] has 4 rows, but the layer before it has 2 units"):
        backprop(XB, YB, [W1, W2], [B1, B2], activation="maxout", maxout_pieces=2, backend="numpy")


def test_backprop_wrong_number_of_y_columns():
    with pytest.raises(ValueError, match="output layer has 2 units but y has 3 columns"):
        backprop(XB, np.zeros((5, 3)), [W1, W2], [B1, B2], backend="numpy")


def test_backprop_one_dimensional_y():
    with pytest.raises(ValueError, match="y must be 2-D"):
        backprop(XB, np.zeros(5), [W1, np.ones((4, 1))], [B1, np.zeros(1)], backend="numpy")


def test_backprop_rows_of_X_and_y_differ():
    with pytest.raises(ValueError, match="X has 5 rows but y has 4"):
        backprop(XB, YB[:4], [W1, W2], [B1, B2], backend="numpy")


def test_backprop_first_matrix_does_not_fit_X():
    with pytest.raises(ValueError, match="coefs\\[0\\] has 3 rows, but X has 2 features"):
        backprop(XB[:, :2], YB, [W1, W2], [B1, B2], backend="numpy")


def test_backprop_intercept_of_wrong_length():
    with pytest.raises(ValueError, match="coefs\\[1\\] of shape \\(4, 2\\) and intercepts\\[1\\] of shape \\(3,\\)"):
        backprop(XB, YB, [W1, W2], [B1, np.zeros(3)], backend="numpy")


def test_backprop_lists_of_different_lengths():
    with pytest.raises(ValueError, match="equal length"):
        backprop(XB, YB, [W1, W2], [B1], backend="numpy")


def test_backprop_coefs_not_a_list():
    with pytest.raises(TypeError, match="'coefs' parameter of backprop must be an instance of 'list'"):
        backprop(XB, YB, W1, B1, backend="numpy")


def test_backprop_one_dimensional_or_empty_X():
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        backprop(XB[:, 0], YB, [W1, W2], [B1, B2], backend="numpy")
    with pytest.raises(ValueError, match="0 sample"):
        backprop(np.empty((0, 3)), YB[:0], [W1, W2], [B1, B2], backend="numpy")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_backprop_non_finite_X(bad):
    with pytest.raises(ValueError, match="Input X contains (NaN|infinity)"):
        backprop(_with(bad)[:5], YB, [W1, W2], [B1, B2], backend="numpy")


def test_backprop_unknown_activation():
    with pytest.raises(ValueError, match="'activation' parameter of backprop must be a str among"):
        backprop(XB, YB, [W1, W2], [B1, B2], activation="mish", backend="numpy")
    with pytest.raises(ValueError, match="activation must be one of"):
        backprop(XB, YB, [W1, W2], [B1, B2], activation="softmax", backend="numpy")


def test_backprop_unknown_loss_or_pairing():
    with pytest.raises(ValueError, match="'loss' parameter of backprop must be a str among"):
        backprop(XB, YB, [W1, W2], [B1, B2], loss="hinge", backend="numpy")
    with pytest.raises(ValueError, match="log_loss"):
        backprop(XB, YB, [W1, W2], [B1, B2], loss="log_loss", out_activation="identity", backend="numpy")


def test_backprop_softmax_with_one_output():
    with pytest.raises(ValueError, match="at least 2 outputs"):
        backprop(XB, YB[:, :1], [W1, np.ones((4, 1))], [B1, np.zeros(1)],
                 out_activation="softmax", loss="log_loss", backend="numpy")


def test_backprop_negative_y_with_poisson():
    with pytest.raises(ValueError, match="poisson.*y >= 0"):
        backprop(XB, -YB, [W1, W2], [B1, B2], out_activation="exp", loss="poisson", backend="numpy")


@pytest.mark.parametrize("pieces", [1, 2.0, True])
def test_backprop_bad_maxout_pieces(pieces):
    with pytest.raises(ValueError, match=r"'maxout_pieces' parameter of backprop must be an int in the range \[2, inf\)"):
        backprop(XB, YB, [W1, W2], [B1, B2], activation="maxout", maxout_pieces=pieces, backend="numpy")


def test_backprop_negative_alpha():
    with pytest.raises(ValueError, match=r"'alpha' parameter of backprop must be a float in the range \[0.0, inf\)"):
        backprop(XB, YB, [W1, W2], [B1, B2], alpha=-1.0, backend="numpy")


def test_backprop_sample_weight_of_wrong_shape_or_zero_sum():
    with pytest.raises(ValueError, match=r"sample_weight.shape == \(4,\), expected \(5,\)"):
        backprop(XB, YB, [W1, W2], [B1, B2], sample_weight=np.ones(4), backend="numpy")
    with pytest.raises(ValueError, match="Sample weights must contain at least one non-zero"):
        backprop(XB, YB, [W1, W2], [B1, B2], sample_weight=np.zeros(5), backend="numpy")
    with pytest.raises(ValueError, match="Weights sum to zero, can't be normalized"):
        backprop(XB, YB, [W1, W2], [B1, B2], sample_weight=[1.0, -1.0, 0, 0, 0], backend="numpy")
    with pytest.raises(ValueError, match="sample_weight must have a positive sum"):
        backprop(XB, YB, [W1, W2], [B1, B2], sample_weight=[1.0, -2.0, 0, 0, 0], backend="numpy")


def test_backprop_unknown_backend():
    with pytest.raises(ValueError, match="'backend' parameter of backprop must be a str among"):
        backprop(XB, YB, [W1, W2], [B1, B2], backend="torch")
