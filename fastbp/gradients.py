"""``fastbp.backprop``: the algorithm itself, for checking and teaching."""

from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_array

from . import activations as act
from ._compat import Interval, StrOptions, _check_sample_weight, validate_params
from ._validation import check_sparse_structure, csr_for_kernels
from .backends import BACKENDS, get_backend
from .network import Network

_ANY_ACTIVATION = set(act.OUT_ACTIVATIONS) | set(act.HIDDEN_ACTIVATIONS) | set(act.ALIASES)


@validate_params(
    {
        "X": ["array-like", "sparse matrix"],
        "y": ["array-like"],
        "coefs": [list, tuple],
        "intercepts": [list, tuple],
        "activation": [StrOptions(_ANY_ACTIVATION), list, tuple],
        "out_activation": [StrOptions(_ANY_ACTIVATION)],
        "loss": [StrOptions(set(act.LOSS_CODES))],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "sample_weight": ["array-like", None],
        "maxout_pieces": [Interval(Integral, 2, None, closed="left")],
        "negative_slope": [Interval(Real, 0, None, closed="left")],
        "backend": [StrOptions(set(BACKENDS))],
    },
    prefer_skip_nested_validation=True,
)
def backprop(
    X,
    y,
    coefs,
    intercepts,
    *,
    activation="relu",
    out_activation="identity",
    loss="squared_error",
    alpha=0.0,
    sample_weight=None,
    maxout_pieces=2,
    backend="auto",
    negative_slope=0.01,
):
    """Loss and gradients of a multilayer perceptron on one batch.

    Forward pass ``H_l = Z_{l-1} W_l + b_l``, ``Z_l = f_l(H_l)``, then the
    backward pass ``dJ/dW_l = Z_{l-1}^T D_l``, ``dJ/db_l = sum_i D_l``,
    ``D_{l-1} = (D_l W_l^T) * f'_{l-1}``.

    Parameters
    ----------
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Inputs. float32 X computes in float32, anything else in float64.
    y : array-like of shape (n_samples, n_outputs)
        Targets, 2-D: one-hot rows for ``softmax``, 0/1 for ``logistic`` with
        log_loss.
    coefs : list of array-like
        ``coefs[l]`` of shape (fan_in, fan_out); a maxout hidden layer with
        ``u`` units has ``u * maxout_pieces`` columns.
    intercepts : list of array-like
        ``intercepts[l]`` of shape (fan_out,).
    activation : str or list of str, default="relu"
        Hidden activation: identity, logistic (sigmoid), tanh, relu, softplus,
        maxout, leaky_relu, elu, selu, gelu, silu (swish); a list gives one
        per hidden layer.
    out_activation : str, default="identity"
        Output activation: identity, logistic, tanh, relu, softplus, exp or
        softmax.
    loss : {"squared_error", "log_loss", "poisson"}, default="squared_error"
        ``squared_error`` is ``1/(2n) sum_i sum_k (z_ik - y_ik)^2``;
        ``log_loss`` pairs with softmax or logistic outputs; ``poisson`` (half
        deviance) with an exp output.
    alpha : float, default=0.0
        L2 penalty ``alpha / (2 n) * sum ||W||^2`` (``n`` replaced by the sum
        of the sample weights when given).
    sample_weight : array-like of shape (n_samples,), default=None
        Per-sample weights; the loss is their weighted mean.
    maxout_pieces : int, default=2
        Pieces per maxout unit.
    backend : {"auto", "cython", "numpy"}, default="auto"
        Which implementation computes: the compiled kernels, the NumPy
        reference, or the compiled one when it is built.
    negative_slope : float, default=0.01
        Slope of "leaky_relu" units for negative inputs.

    Returns
    -------
    loss : float
        The loss on the batch, L2 term included.
    coef_grads : list of ndarray
        Same shapes as ``coefs``.
    intercept_grads : list of ndarray
        Same shapes as ``intercepts``.

    See Also
    --------
    BPClassifier, BPRegressor : Estimators trained with these gradients.

    Examples
    --------
    The classic 3-2-2 network with logistic units and squared error:

    >>> import numpy as np
    >>> from fastbp import backprop
    >>> loss, dW, db = backprop(
    ...     [[1.0, 4.0, 5.0]], [[0.1, 0.05]],
    ...     [np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]),
    ...      np.array([[0.7, 0.8], [0.9, 0.1]])],
    ...     [np.array([0.5, 0.5]), np.array([0.5, 0.5])],
    ...     activation="logistic", out_activation="logistic")
    >>> round(loss, 6)
    0.593245
    """
    if isinstance(activation, str):
        activation = act.canonical(activation)
    out_activation = act.canonical(out_activation)
    # one name per hidden layer, or one for all (ValueError naming activation)
    act.hidden_activations(activation, max(len(coefs) - 1, 0))
    act.check_pairing(out_activation, loss)
    check_sparse_structure(X)  # before any scipy routine walks its indptr
    X = check_array(
        X, accept_sparse=["csr", "csc"], dtype=(np.float64, np.float32), input_name="X",
    )
    dtype = X.dtype
    y = check_array(y, dtype=dtype, ensure_2d=False, input_name="y")
    if y.ndim != 2:
        raise ValueError(f"y must be 2-D of shape (n_samples, n_outputs), got shape {y.shape}.")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}.")
    net, params = Network.from_coefs(
        coefs, intercepts, activation, out_activation, loss, maxout_pieces, dtype,
        n_features=X.shape[1], negative_slope=negative_slope,
    )
    if net.layer_units[-1] != y.shape[1]:
        raise ValueError(
            f"The output layer has {net.layer_units[-1]} units but y has {y.shape[1]} columns."
        )
    act.check_pairing(out_activation, loss, y.shape[1])
    if loss == "poisson" and np.any(y < 0):
        raise ValueError("loss='poisson' needs y >= 0.")
    if sample_weight is not None:
        sample_weight = _check_sample_weight(sample_weight, X, dtype=dtype)
        total = sample_weight.sum()
        if total == 0:
            raise ValueError("Weights sum to zero, can't be normalized (sample_weight).")
        if total < 0:
            raise ValueError(f"sample_weight must have a positive sum, got {total}.")
    X = csr_for_kernels(X) if sp.issparse(X) else np.ascontiguousarray(X)
    y = np.ascontiguousarray(y)

    loss_value, grad = get_backend(backend).loss_grad(
        net, params, X, y, sample_weight, float(alpha)
    )
    coef_grads, intercept_grads = net.views(grad)
    return float(loss_value), [g.copy() for g in coef_grads], [g.copy() for g in intercept_grads]
