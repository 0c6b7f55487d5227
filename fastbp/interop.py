"""Interchange with scikit-learn: fastbp model -> fitted scikit-learn MLP.

:func:`to_sklearn` returns a fitted :class:`sklearn.neural_network.MLPClassifier`
or :class:`~sklearn.neural_network.MLPRegressor` that predicts what the fastbp
model predicts, so a fastbp model can go wherever only scikit-learn's MLP is
understood (``skl2onnx``, model registries, older serving code).

Only models scikit-learn can express convert: hidden activations
"identity", "logistic" (alias "sigmoid"), "tanh" and "relu"; output
activations scikit-learn implements ("identity", "logistic", "tanh", "relu",
"exp", "softmax"). "softplus" and "maxout" have no scikit-learn counterpart
and raise a ``ValueError``.
"""

import copy

import numpy as np

from . import activations as act
from ._compat import check_is_fitted

__all__ = ["to_sklearn", "SKLEARN_HIDDEN_ACTIVATIONS"]

#: Hidden activations of scikit-learn's MLP.
SKLEARN_HIDDEN_ACTIVATIONS = ("identity", "logistic", "tanh", "relu")

# Output activations scikit-learn's MLP can apply at predict time
# (sklearn.neural_network._base.ACTIVATIONS).
_SKLEARN_OUT_ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "exp", "softmax")

# Parameters shared by fastbp's estimators and scikit-learn's MLP.
_SHARED_PARAMS = (
    "hidden_layer_sizes", "activation", "solver", "alpha", "batch_size",
    "learning_rate", "learning_rate_init", "power_t", "max_iter", "shuffle",
    "random_state", "tol", "verbose", "warm_start", "momentum",
    "nesterovs_momentum", "early_stopping", "validation_fraction", "beta_1",
    "beta_2", "epsilon", "n_iter_no_change", "max_fun",
)

# Fitted attributes copied as they are (when present).
_FITTED_ATTRS = (
    "n_layers_", "n_outputs_", "n_iter_", "t_", "loss_", "best_loss_",
    "loss_curve_", "validation_scores_", "best_validation_score_",
    "n_features_in_", "feature_names_in_", "classes_",
)


def to_sklearn(estimator):
    """Return an equivalent fitted scikit-learn MLP.

    Parameters
    ----------
    estimator : BPClassifier or BPRegressor
        A fitted fastbp estimator.

    Returns
    -------
    mlp : MLPClassifier or MLPRegressor
        A fitted scikit-learn estimator with the same hyper-parameters and
        copies of the weights (``coefs_``, ``intercepts_``, same dtype): its
        ``predict`` / ``predict_proba`` give what ``estimator`` gives, up to
        floating-point rounding. The training history (``loss_curve_``,
        ``n_iter_``, ...) is copied too.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    ValueError
        If the model uses an activation scikit-learn's MLP does not have
        (``"softplus"``, ``"maxout"``, a softplus output).

    Notes
    -----
    A :class:`~fastbp.BPRegressor` with an output activation other than
    scikit-learn's default (identity for squared error, exp for poisson)
    converts with that activation in ``out_activation_``, which scikit-learn
    applies when predicting; refitting the converted model resets it to
    scikit-learn's own choice.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from fastbp import BPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = BPClassifier(solver="lbfgs", random_state=0).fit(X, y)
    >>> mlp = clf.to_sklearn()
    >>> type(mlp).__name__
    'MLPClassifier'
    >>> bool((mlp.predict(X) == clf.predict(X)).all())
    True
    """
    from sklearn.base import is_classifier
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    check_is_fitted(estimator)
    name = type(estimator).__name__
    activation = act.canonical(estimator.activation)
    if activation not in SKLEARN_HIDDEN_ACTIVATIONS:
        raise ValueError(
            f"{name}.to_sklearn(): scikit-learn's MLP has no {activation!r} hidden "
            f"activation (it supports {', '.join(SKLEARN_HIDDEN_ACTIVATIONS)}); "
            "this model cannot be converted."
        )
    out = estimator.out_activation_
    if out not in _SKLEARN_OUT_ACTIVATIONS:
        raise ValueError(
            f"{name}.to_sklearn(): scikit-learn's MLP has no {out!r} output "
            "activation; this model cannot be converted."
        )

    params = {p: getattr(estimator, p) for p in _SHARED_PARAMS}
    params["activation"] = activation
    if is_classifier(estimator):
        mlp = MLPClassifier(**params)
    else:
        mlp = MLPRegressor(loss=estimator.loss, **params)

    mlp.coefs_ = [np.array(c, copy=True) for c in estimator.coefs_]
    mlp.intercepts_ = [np.array(b, copy=True) for b in estimator.intercepts_]
    mlp.out_activation_ = out
    for attr in _FITTED_ATTRS:
        if hasattr(estimator, attr):
            setattr(mlp, attr, copy.deepcopy(getattr(estimator, attr)))
    if is_classifier(estimator):
        mlp._label_binarizer = copy.deepcopy(estimator._label_binarizer)
    # What scikit-learn's own fit leaves behind, so that warm_start /
    # partial_fit on the converted model work as on one scikit-learn fitted.
    mlp._no_improvement_count = 0
    return mlp
