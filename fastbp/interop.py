"""Interchange with scikit-learn: fastbp model -> fitted scikit-learn MLP.

:func:`to_sklearn` returns a fitted :class:`sklearn.neural_network.MLPClassifier`
or :class:`~sklearn.neural_network.MLPRegressor` that predicts what the fastbp
model predicts, so a fastbp model can go wherever only scikit-learn's MLP is
understood (``skl2onnx``, model registries, older serving code).

Only models scikit-learn can express convert: hidden activations
"identity", "logistic" (alias "sigmoid"), "tanh" and "relu" (one for all
hidden layers: a per-layer list converts when all its entries are the same);
output activations scikit-learn implements ("identity", "logistic", "tanh",
"relu", "exp", "softmax"). Other activations ("softplus", "maxout", ...) have
no scikit-learn counterpart and raise a ``ValueError``. Training options
(``init``, ``dropout``, ...) don't matter: only the fitted weights do.

ONNX: with skl2onnx installed (``pip install "fastbp[onnx]"``),
``skl2onnx.to_onnx(model, X[:1])`` converts a fastbp model directly, through
:func:`to_sklearn` and skl2onnx's own converter for scikit-learn's MLP. Hidden
activations scikit-learn lacks ("leaky_relu", "elu", "selu", "gelu", "silu")
and one activation per hidden layer are written as ONNX operators in place
of that converter's hidden activations. The
converters are registered as soon as both packages are imported, in either
order: importing fastbp registers them when skl2onnx is already imported,
and otherwise leaves a one-shot import hook that registers them right after
skl2onnx's own import (fastbp never imports skl2onnx itself, which would
load onnx and slow down ``import fastbp``). :func:`register_onnx_converters` registers them explicitly.
"""

import contextlib
import copy
import importlib.abc
import sys
import warnings

import numpy as np

from . import activations as act
from ._compat import check_is_fitted

__all__ = ["to_sklearn", "register_onnx_converters", "SKLEARN_HIDDEN_ACTIVATIONS"]

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

# learning_rate schedules scikit-learn's MLP has.
_SKLEARN_LEARNING_RATES = ("constant", "invscaling", "adaptive")

# Fitted attributes copied as they are (when present).
_FITTED_ATTRS = (
    "n_layers_", "n_outputs_", "n_iter_", "t_", "loss_", "best_loss_",
    "loss_curve_", "validation_scores_", "best_validation_score_",
    "n_features_in_", "feature_names_in_", "classes_",
)


def _sklearn_hidden_activation(estimator, name):
    """The one hidden activation scikit-learn's MLP gets, or a ValueError
    naming what it cannot express."""
    activation = estimator.activation
    if len(estimator.coefs_) == 1:
        # No hidden layer: the hidden activation is never applied.
        return "relu"
    if isinstance(activation, (list, tuple)):
        names = list(dict.fromkeys(act.canonical(a) for a in activation))
        if len(names) != 1:
            raise ValueError(
                f"{name}.to_sklearn(): scikit-learn's MLP applies one activation to "
                f"every hidden layer; this model's per-layer activation="
                f"{list(activation)!r} mixes {', '.join(map(repr, names))}, so it "
                "cannot be converted."
            )
        activation = names[0]
    else:
        activation = act.canonical(activation)
    if activation not in SKLEARN_HIDDEN_ACTIVATIONS:
        raise ValueError(
            f"{name}.to_sklearn(): scikit-learn's MLP has no {activation!r} hidden "
            f"activation (it supports {', '.join(SKLEARN_HIDDEN_ACTIVATIONS)}); "
            "this model cannot be converted."
        )
    return activation


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
        (a hidden activation other than "identity", "logistic", "tanh" and
        "relu", e.g. "softplus", "maxout", "leaky_relu", "elu", "selu",
        "gelu", "silu"; a softplus output), or a per-layer ``activation``
        list that mixes activations (a list of one supported name converts).

    Notes
    -----
    Only the fitted weights matter: a model trained with options
    scikit-learn's MLP lacks (``init``, ``dropout``, ``weight_decay``,
    ``max_grad_norm``, ``class_weight``, ``learning_rate="cosine"``, ...)
    converts, and predicts as it does. Those options are not carried over
    (the cosine schedule becomes scikit-learn's default, "constant"), so
    refitting the converted model trains without them.

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
    activation = _sklearn_hidden_activation(estimator, name)
    out = estimator.out_activation_
    if out not in _SKLEARN_OUT_ACTIVATIONS:
        raise ValueError(
            f"{name}.to_sklearn(): scikit-learn's MLP has no {out!r} output "
            "activation; this model cannot be converted."
        )

    params = {p: getattr(estimator, p) for p in _SHARED_PARAMS}
    params["activation"] = activation
    if params["learning_rate"] not in _SKLEARN_LEARNING_RATES:
        # a schedule scikit-learn lacks ("cosine"): like the other training
        # options it lacks, not carried over (refit would reject it)
        params["learning_rate"] = "constant"
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


# ---------------------------------------------------------------------- ONNX

# Output activations skl2onnx's converter for scikit-learn's MLP implements
# (skl2onnx/operator_converters/multilayer_perceptron.py).
_ONNX_OUT_ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "softmax")

# fastbp estimator -> the alias of skl2onnx's converter it goes through.
_ONNX_ALIASES = {
    "BPClassifier": ("FastbpBPClassifier", "SklearnMLPClassifier"),
    "BPRegressor": ("FastbpBPRegressor", "SklearnMLPRegressor"),
}


# Hidden activations the export writes itself, as ONNX operators, where
# skl2onnx's MLP converter would write scikit-learn's single activation.
_ONNX_HIDDEN_ACTIVATIONS = SKLEARN_HIDDEN_ACTIVATIONS + (
    "leaky_relu", "elu", "selu", "gelu", "silu",
)


def _onnx_hidden(estimator):
    """The hidden activations the export writes itself, one per hidden layer,
    or None when skl2onnx's converter writes them (one scikit-learn
    activation, or one it cannot express: to_sklearn names it)."""
    activation = estimator.activation
    if isinstance(activation, str) and (
        act.canonical(activation) in SKLEARN_HIDDEN_ACTIVATIONS
        or act.canonical(activation) not in _ONNX_HIDDEN_ACTIVATIONS
    ):
        return None
    hidden = act.hidden_activations(activation, len(estimator.coefs_) - 1)
    for layer in hidden:
        if layer not in _ONNX_HIDDEN_ACTIVATIONS:
            raise ValueError(
                f"ONNX export of {type(estimator).__name__}: no {layer!r} hidden "
                f"activation in ONNX export (it supports "
                f"{', '.join(_ONNX_HIDDEN_ACTIVATIONS)}); this model cannot be exported."
            )
    return hidden


def _mlp_for_onnx(estimator):
    """The scikit-learn MLP skl2onnx converts, or a ValueError naming what
    ONNX export cannot express. Hidden activations the export writes itself
    (:func:`_onnx_hidden`) are "identity" in that MLP."""
    name = type(estimator).__name__
    if _onnx_hidden(estimator) is not None:
        stand_in = copy.copy(estimator)
        stand_in.activation = "identity"
        estimator = stand_in
    try:
        mlp = to_sklearn(estimator)
    except ValueError as exc:
        raise ValueError(f"ONNX export of {name} goes through scikit-learn's MLP: {exc}") from exc
    if mlp.out_activation_ not in _ONNX_OUT_ACTIVATIONS:
        raise ValueError(
            f"ONNX export of {name}: skl2onnx's MLP converter has no "
            f"{mlp.out_activation_!r} output activation (it supports "
            f"{', '.join(_ONNX_OUT_ACTIVATIONS)}); this model cannot be exported."
        )
    binarizer = getattr(mlp, "_label_binarizer", None)
    if binarizer is not None and binarizer.y_type_.startswith("multilabel") and len(mlp.classes_) == 2:
        raise ValueError(
            f"ONNX export of {name}: skl2onnx's MLP converter mistakes a multilabel "
            "model with two labels for a binary one; this model cannot be exported."
        )
    if name == "BPRegressor" and mlp.n_outputs_ != 1:
        raise ValueError(
            f"ONNX export of {name}: skl2onnx's MLP converter handles one target; "
            f"this multi-output model has {mlp.n_outputs_}."
        )
    return mlp


def _on_the_mlp(operator):
    """Swap the operator's fastbp model for its scikit-learn MLP; return the
    fastbp model (to put back)."""
    original = operator.raw_operator
    operator.raw_operator = _mlp_for_onnx(original)
    return original


def _shape_calculator_through_mlp(calculate):
    def shape_calculator(operator):
        original = _on_the_mlp(operator)
        try:
            return calculate(operator)
        finally:
            operator.raw_operator = original

    return shape_calculator


def _converter_through_mlp(convert):
    def converter(scope, operator, container):
        hidden = _onnx_hidden(operator.raw_operator)
        slope = getattr(operator.raw_operator, "negative_slope", 0.01)
        original = _on_the_mlp(operator)
        try:
            if hidden is None:
                return convert(scope, operator, container)
            with _writing_hidden_activations(scope, container, hidden, slope,
                                             _graph_double(operator)):
                return convert(scope, operator, container)
        finally:
            operator.raw_operator = original

    return converter


@contextlib.contextmanager
def _writing_hidden_activations(scope, container, hidden, slope, double):
    """While skl2onnx converts the stand-in MLP (hidden activation
    "identity"), write ``hidden[l]`` in place of its ``l``-th Identity node:
    the hidden layers come first in its graph, one Identity node each, before
    the output layer's."""
    add_node = container.add_node
    pending = list(hidden)

    def add_node_writing_hidden(op_type, inputs, outputs, *args, **kwargs):
        if pending and op_type == "Identity":
            _onnx_activation(scope, container, add_node, pending.pop(0), inputs, outputs,
                             slope, double)
            return None
        return add_node(op_type, inputs, outputs, *args, **kwargs)

    container.add_node = add_node_writing_hidden
    try:
        yield
    finally:
        del container.add_node  # the class's method again
    if pending:
        raise RuntimeError(
            "ONNX export: skl2onnx's MLP converter did not write the hidden layers "
            "as expected; this version of skl2onnx is not supported for "
            f"activation={hidden!r}."
        )


def _onnx_activation(scope, container, add_node, name, x, y, slope, double):
    """Nodes computing ``y = f(x)`` for the hidden activation ``name``.

    float graphs use ONNX's own operators (LeakyRelu, Elu, Selu, Gelu from
    opset 20, else the erf form). onnxruntime has no double kernels for those,
    so double graphs use elementary operators (Where, Exp, ...), the same
    formulas; gelu's erf is then computed in float (onnxruntime has no double
    Erf either), so a double graph with gelu units agrees with the model to
    float precision only.
    """
    from skl2onnx.proto import onnx_proto

    x = x[0] if isinstance(x, (list, tuple)) else x
    y = y[0] if isinstance(y, (list, tuple)) else y
    dtype = np.float64 if double else np.float32
    proto = onnx_proto.TensorProto.DOUBLE if double else onnx_proto.TensorProto.FLOAT

    def var(prefix):
        return scope.get_unique_variable_name(prefix)

    def node(op_type, inputs, output=None, **attrs):
        output = output or var(op_type.lower())
        add_node(op_type, inputs, output, name=scope.get_unique_operator_name(op_type), **attrs)
        return output

    def const(value):
        c = var("const")
        container.add_initializer(c, proto, [], [float(dtype(value))])
        return c

    simple = {"identity": "Identity", "logistic": "Sigmoid", "tanh": "Tanh", "relu": "Relu"}
    if name in simple:
        node(simple[name], [x], y)
    elif name == "silu":
        node("Mul", [x, node("Sigmoid", [x])], y)
    elif name == "gelu":
        if not double and _target_opset(container) >= 20:
            node("Gelu", [x], y)
        else:
            u = node("Mul", [x, const(act.INV_SQRT2)])
            if double:
                u = node("Cast", [u], to=onnx_proto.TensorProto.FLOAT)
                e = node("Cast", [node("Erf", [u])], to=onnx_proto.TensorProto.DOUBLE)
            else:
                e = node("Erf", [u])
            phi = node("Mul", [node("Add", [e, const(1.0)]), const(0.5)])
            node("Mul", [x, phi], y)
    elif not double:
        if name == "leaky_relu":
            node("LeakyRelu", [x], y, alpha=float(slope))
        elif name == "elu":
            node("Elu", [x], y, alpha=1.0)
        else:  # selu
            node("Selu", [x], y, alpha=float(act.SELU_ALPHA), gamma=float(act.SELU_SCALE))
    elif name == "leaky_relu":
        zero = const(0.0)
        node("Where", [node("Less", [x, zero]), node("Mul", [x, const(slope)]), x], y)
    else:  # elu, selu in double: x if x > 0 else alpha * (e^x - 1), times scale
        zero = const(0.0)
        em1 = node("Sub", [node("Exp", [node("Min", [x, zero])]), const(1.0)])
        if name == "elu":
            node("Where", [node("Greater", [x, zero]), x, em1], y)
        else:
            neg = node("Mul", [em1, const(act.SELU_SCALE_ALPHA)])
            pos = node("Mul", [x, const(act.SELU_SCALE)])
            node("Where", [node("Greater", [x, zero]), pos, neg], y)


def _graph_double(operator):
    """Whether skl2onnx's MLP converter computes in double: for a double
    input, else in float (it casts the input to that type first)."""
    from skl2onnx.common.data_types import guess_proto_type
    from skl2onnx.proto import onnx_proto

    return guess_proto_type(operator.inputs[0].type) == onnx_proto.TensorProto.DOUBLE


def _target_opset(container):
    opset = getattr(container, "target_opset", None)
    if isinstance(opset, dict):
        opset = opset.get("", None)
    return int(opset) if opset is not None else 0


def register_onnx_converters():
    """Register skl2onnx converters for BPClassifier and BPRegressor.

    After this, ``skl2onnx.to_onnx(model, X[:1])`` (or ``convert_sklearn``)
    converts a fitted fastbp model, also inside a ``Pipeline``: the model
    goes through :func:`to_sklearn` and skl2onnx's converter for
    scikit-learn's MLP, with its options (``zipmap``, ``nocl``, ...). Models
    that converter cannot express (softplus or maxout units, an ``"exp"`` or
    softplus output, a multi-output regressor) raise a ``ValueError`` naming
    the feature. Hidden activations scikit-learn lacks ("leaky_relu", "elu",
    "selu", "gelu", "silu") and lists of activations, one per hidden layer,
    are written as ONNX operators.

    fastbp calls this itself as soon as skl2onnx is imported; calling it
    again is harmless.

    Raises
    ------
    ImportError
        If skl2onnx is not installed (``pip install "fastbp[onnx]"``).
    """
    try:
        from skl2onnx import update_registered_converter
        from skl2onnx.common._registration import get_converter, get_shape_calculator
    except ImportError as exc:
        raise ImportError(
            'ONNX export needs skl2onnx: pip install "fastbp[onnx]".'
        ) from exc
    from .estimators import BPClassifier, BPRegressor

    for cls in (BPClassifier, BPRegressor):
        alias, mlp_alias = _ONNX_ALIASES[cls.__name__]
        converter = get_converter(mlp_alias)
        update_registered_converter(
            cls, alias,
            _shape_calculator_through_mlp(get_shape_calculator(mlp_alias)),
            _converter_through_mlp(converter),
            options=converter.get_allowed_options(),
        )


def _register_or_warn():
    try:
        register_onnx_converters()
    except Exception as exc:  # never break the import of skl2onnx
        warnings.warn(
            f"fastbp could not register its skl2onnx converters ({exc!r}); "
            "convert with skl2onnx.to_onnx(model.to_sklearn(), ...) instead.",
            stacklevel=2,
        )


class _RunAfterExec:
    """A module loader that runs ``callback`` once the module is executed."""

    def __init__(self, loader, callback):
        self._loader = loader
        self._callback = callback

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        self._callback()

    def __getattr__(self, name):  # everything else as the real loader
        return getattr(self._loader, name)


class _AfterImportHook(importlib.abc.MetaPathFinder):
    """One-shot: runs ``callback`` right after the top-level module ``name``
    is imported, then removes itself from ``sys.meta_path``."""

    def __init__(self, name, callback):
        self.name = name
        self.callback = callback

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            if finder is self or find_spec is None:
                continue
            spec = find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _RunAfterExec(spec.loader, self._fire)
        return spec

    def _fire(self):
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        self.callback()


def _register_onnx_when_imported():
    """Register the skl2onnx converters now if skl2onnx is imported, else
    right after it is (see the module docstring)."""
    if "skl2onnx" in sys.modules:
        _register_or_warn()
    elif not any(isinstance(f, _AfterImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImportHook("skl2onnx", _register_or_warn))
