"""BPClassifier and BPRegressor: scikit-learn's MLP API on fastbp's backends.

The estimators validate input, own the random state, the stopping rules and
the fitted attributes. They never compute a gradient themselves: every
forward pass, gradient and epoch goes through a backend (see backends.py).

Where scikit-learn's MLP makes a documented choice we make the same one
(same initial weights, shuffling, updates, stopping rules), so a fit with the
same ``random_state`` gives the same model. Deliberate differences:

* multi-output squared error: the reported loss is
  ``1/(2n) sum_i sum_k (z_ik - y_ik)^2``, consistent with the gradient
  (scikit-learn divides its loss, but not its gradient, by the number of
  outputs, scikit-learn issue #8349);
* ``BPRegressor.partial_fit`` is unavailable with ``solver="lbfgs"``;
* ``predict_log_proba`` is computed from the logits (log-sum-exp form);
  it and ``predict_proba`` are floored at the dtype's smallest normal
  number, so both stay finite and ``log(predict_proba)`` equals it;
* early stopping stratifies the validation split of every single-label
  classification (scikit-learn stratifies only binary problems);
* a fit whose weights become non-finite restores the last finite weights
  before raising scikit-learn's "non-finite parameter weights" error;
* Ctrl-C keeps the weights of the last *complete* epoch.
"""

import warnings
from abc import ABC, abstractmethod
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from scipy.special import expit, logsumexp
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.callback import CallbackSupportMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d, shuffle
from sklearn.utils.multiclass import type_of_target, unique_labels

from . import activations as act
from ._callbacks import FitCallbacks, LbfgsBridge
from ._compat import (
    Interval,
    Options,
    StrOptions,
    _check_optimize_result,
    _check_partial_fit_first_call,
    _check_sample_weight,
    _fit_context,
    available_if,
    check_is_fitted,
    validate_data,
)
from .backends import BACKENDS, get_backend
from .network import Network
from ._doc_link import ReadmeDocLinkMixin
from ._state import PlainStateMixin
from .solvers import Hyper, OptState, minimize_lbfgs

_STOCHASTIC_SOLVERS = ("sgd", "adam")

NONFINITE_MSG = (
    "Solver produced non-finite parameter weights. The input data may contain "
    "large values and need to be preprocessed."
)


class _BaseBP(CallbackSupportMixin, BaseEstimator, ABC):
    """Shared base of BPClassifier and BPRegressor. Not for direct use."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(act.HIDDEN_ACTIVATIONS) | set(act.ALIASES))],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "maxout_pieces": [Interval(Integral, 2, None, closed="left")],
        "backend": [StrOptions(set(BACKENDS))],
    }

    @abstractmethod
    def __init__(
        self, hidden_layer_sizes, activation, solver, alpha, batch_size,
        learning_rate, learning_rate_init, power_t, max_iter, loss, shuffle,
        random_state, tol, verbose, warm_start, momentum, nesterovs_momentum,
        early_stopping, validation_fraction, beta_1, beta_2, epsilon,
        n_iter_no_change, max_fun, maxout_pieces, backend,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.loss = loss
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.maxout_pieces = maxout_pieces
        self.backend = backend

    # ------------------------------------------------------------ helpers
    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        if not hasattr(sizes, "__iter__"):
            sizes = [sizes]
        sizes = list(sizes)
        for s in sizes:
            if isinstance(s, (bool, np.bool_)) or not isinstance(s, (Integral, np.integer)):
                if not (isinstance(s, (Real, np.floating)) and float(s).is_integer()):
                    raise ValueError(
                        f"hidden_layer_sizes must contain integers, got {sizes}."
                    )
        if np.any(np.array(sizes) <= 0):
            raise ValueError("hidden_layer_sizes must be > 0, got %s." % sizes)
        return [int(s) for s in sizes]

    def _make_network(self, layer_units, dtype):
        return Network(
            layer_units,
            self.activation,
            self.out_activation_,
            self._loss_name(),
            self.maxout_pieces,
            dtype,
        )

    def _set_buffer(self, net, params):
        """Make ``params`` the parameter buffer; coefs_/intercepts_ view it."""
        self._net = net
        self._params = params
        self.coefs_, self.intercepts_ = net.views(params)

    def _buffer_is_current(self):
        params = getattr(self, "_params", None)
        if params is None:
            return False
        coefs = getattr(self, "coefs_", None)
        intercepts = getattr(self, "intercepts_", None)
        if not isinstance(coefs, list) or not isinstance(intercepts, list):
            return False
        net = self._net
        if len(coefs) != net.n_layers - 1 or len(intercepts) != net.n_layers - 1:
            return False
        vc, vi = net.views(params)
        for a, b in zip(coefs + intercepts, vc + vi):
            if not isinstance(a, np.ndarray) or a.base is not params:
                return False
            if a.shape != b.shape or a.__array_interface__["data"][0] != b.__array_interface__["data"][0]:
                return False
            if a.strides != b.strides:
                return False
        return True

    def _network_from_attributes(self, dtype):
        """The network and a packed buffer built from coefs_/intercepts_ as
        they are now (the user may have assigned new arrays)."""
        coefs, intercepts = self.coefs_, self.intercepts_
        layer_units = [np.shape(coefs[0])[0]] + [len(b) for b in intercepts]
        if self.activation == "maxout":
            pieces = self.maxout_pieces
            layer_units = [layer_units[0]] + [u // pieces for u in layer_units[1:-1]] + [layer_units[-1]]
        net = self._make_network(layer_units, dtype)
        params = np.empty(net.n_params, dtype=net.dtype)
        net.pack(coefs, intercepts, out=params)
        return net, params

    def _current(self, dtype=None):
        """``(net, params)`` for predicting, without changing the estimator."""
        if self._buffer_is_current() and (dtype is None or self._params.dtype == dtype):
            return self._net, self._params
        dtype = dtype or np.asarray(self.coefs_[0]).dtype
        return self._network_from_attributes(dtype)

    def _sync(self, dtype):
        """Before training: fold any user edits of coefs_/intercepts_ into the
        buffer and cast it to ``dtype``."""
        if not (self._buffer_is_current() and self._params.dtype == dtype):
            net, params = self._network_from_attributes(dtype)
            self._set_buffer(net, params)

    def __getstate__(self):
        # A copy: on Python >= 3.11 object.__getstate__ returns the live __dict__.
        state = dict(super().__getstate__())
        # coefs_/intercepts_ carry the values; the buffer is rebuilt on load.
        state.pop("_params", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "coefs_" in state and "_net" in state:
            dtype = np.asarray(self.coefs_[0]).dtype
            net, params = self._network_from_attributes(dtype)
            self._set_buffer(net, params)
            if hasattr(self, "_best_params"):
                self._best_params = self._best_params.astype(dtype)

    # --------------------------------------------------------------- fit
    @abstractmethod
    def _loss_name(self):
        """The training loss: 'log_loss', 'squared_error' or 'poisson'."""

    def _prepare_X(self, X):
        if sp.issparse(X):
            X = sp.csr_matrix(X)
            X.sort_indices()
            # intp indices once per fit, so no backend converts them per epoch.
            X.indices = X.indices.astype(np.intp, copy=False)
            X.indptr = X.indptr.astype(np.intp, copy=False)
            return X
        return np.ascontiguousarray(X)

    def _initialize(self, y, layer_units, dtype):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._output_activation()
        net = self._make_network(layer_units, dtype)
        params = net.init_params(self._random_state)
        self._set_buffer(net, params)
        self._best_params = params.copy()
        self.__dict__.pop("_opt_state", None)
        if self.solver in _STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _fit(self, X, y, sample_weight=None, incremental=False):
        hidden = self._hidden_sizes()
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        n_samples, n_features = X.shape
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        self._check_target(y)
        self.n_outputs_ = y.shape[1]
        layer_units = [n_features] + hidden + [self.n_outputs_]
        self._random_state = check_random_state(self.random_state)

        if first_pass:
            self._initialize(y, layer_units, X.dtype)
        else:
            self._sync(X.dtype)
            if self._net.layer_units != layer_units:
                raise ValueError(
                    f"The fitted network has layer sizes {self._net.layer_units}, "
                    f"but hidden_layer_sizes and the data ask for {layer_units}. Set "
                    "warm_start=False (or start a new estimator) to change the shape."
                )
            if not hasattr(self, "_best_params") or self._best_params.shape != self._params.shape:
                self._best_params = self._params.copy()

        X = self._prepare_X(X)
        Y = np.ascontiguousarray(y, dtype=X.dtype)
        backend = get_backend(self.backend)
        self.backend_ = backend.name

        stochastic = self.solver in _STOCHASTIC_SOLVERS
        callbacks = FitCallbacks(  # sklearn.callback hooks, see _callbacks.py
            self, X, Y, sample_weight,
            max_subtasks=(1 if incremental else self.max_iter) if stochastic else self.max_iter + 1,
        )
        if stochastic:
            self._fit_stochastic(backend, X, Y, sample_weight, incremental, callbacks)
        else:
            self._fit_lbfgs(backend, X, Y, sample_weight, callbacks)
        callbacks.end_fit(X, Y, sample_weight)

        if not np.isfinite(self._params).all():
            raise ValueError(NONFINITE_MSG)
        return self

    def _hyper(self):
        return Hyper(
            alpha=float(self.alpha),
            momentum=float(self.momentum),
            nesterov=bool(self.nesterovs_momentum),
            beta_1=float(self.beta_1),
            beta_2=float(self.beta_2),
            epsilon=float(self.epsilon),
        )

    def _fit_lbfgs(self, backend, X, Y, sample_weight, callbacks=None):
        net, params = self._net, self._params
        grad = np.empty_like(params)
        alpha = float(self.alpha)
        last_good = params.astype(np.float64)
        self.loss_curve_ = []
        bridge = LbfgsBridge(callbacks, X, Y, sample_weight, params) if callbacks else None

        def fun(x):
            params[...] = x
            loss, g = backend.loss_grad(net, params, X, Y, sample_weight, alpha, grad)
            return loss, g.astype(np.float64)

        def callback(intermediate_result):
            last_good[...] = intermediate_result.x
            self.loss_curve_.append(float(intermediate_result.fun))
            if self.verbose:
                print("Iteration %d, loss = %.8f" % (len(self.loss_curve_), intermediate_result.fun))
            if bridge is not None:
                self.n_iter_ = len(self.loss_curve_)
                if bridge(intermediate_result.x):
                    bridge.stopped = True
                    raise StopIteration  # a callback asked to stop

        try:
            res = minimize_lbfgs(
                fun, params.astype(np.float64), max_iter=self.max_iter,
                max_fun=self.max_fun, tol=self.tol, callback=callback,
                work=X.shape[0] * net.n_coefs,
            )
        except KeyboardInterrupt:
            params[...] = last_good
            self.n_iter_ = len(self.loss_curve_)
            self.loss_ = self.loss_curve_[-1] if self.loss_curve_ else np.nan
            warnings.warn("Training interrupted by user.")
            return
        finally:
            if bridge is not None:
                bridge.close()
        if bridge is not None and bridge.stopped:  # no ConvergenceWarning then
            self.n_iter_ = len(self.loss_curve_)
        else:
            self.n_iter_ = _check_optimize_result("lbfgs", res, self.max_iter)
        self.loss_ = float(res.fun)
        params[...] = res.x
        # A non-finite loss is a diverged fit too (L-BFGS-B then stops with
        # finite but meaningless weights), as in the stochastic path.
        if not (np.isfinite(params).all() and np.isfinite(res.fun)):
            params[...] = last_good
            if not np.isfinite(params).all():
                self._params[...] = self._best_params
            raise ValueError(NONFINITE_MSG)

    def _fit_stochastic(self, backend, X, Y, sample_weight, incremental, callbacks=None):
        net, params = self._net, self._params
        state = getattr(self, "_opt_state", None)
        if (
            not incremental
            or state is None
            or state.solver != self.solver
            or state.m.shape[0] != net.n_params
        ):
            state = OptState(
                self.solver, net.n_params, net.dtype, self.learning_rate_init,
                self.learning_rate, self.power_t,
            )
        elif state.m.dtype != net.dtype:
            state.astype(net.dtype)
        self._opt_state = state

        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            stratify = self._stratify_labels(Y)
            arrays = [X, Y] if sample_weight is None else [X, Y, sample_weight]
            split = train_test_split(
                *arrays,
                random_state=self._random_state,
                test_size=self.validation_fraction,
                stratify=stratify,
            )
            X_train, X_val, Y_train, Y_val = split[:4]
            sw_train, sw_val = (split[4], split[5]) if sample_weight is not None else (None, None)
            if X_val.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' "
                    "or the size of your dataset."
                )
            X_train = self._prepare_X(X_train)
            X_val = self._prepare_X(X_val)
            Y_train = np.ascontiguousarray(Y_train)
            y_val = self._validation_target(Y_val)
        else:
            X_train, Y_train, sw_train = X, Y, sample_weight
            X_val = y_val = sw_val = None

        n_samples = X_train.shape[0]
        sample_idx = np.arange(n_samples, dtype=np.intp)
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn(
                    "Got `batch_size` less than 1 or larger than "
                    "sample size. It is going to be clipped"
                )
            batch_size = int(np.clip(self.batch_size, 1, n_samples))

        hyper = self._hyper()
        snapshot = params.copy()
        in_epoch = False
        try:
            self.n_iter_ = 0
            for it in range(self.max_iter):
                if self.shuffle:
                    sample_idx = shuffle(sample_idx, random_state=self._random_state)
                snapshot[...] = params
                if callbacks:
                    callbacks.begin_iteration(X_train, Y_train, sw_train)
                in_epoch = True
                loss = backend.train_epoch(
                    net, params, state, X_train, Y_train, sw_train, sample_idx,
                    batch_size, hyper,
                )
                in_epoch = False
                if not (np.isfinite(loss) and np.isfinite(params).all()):
                    params[...] = snapshot
                    raise ValueError(NONFINITE_MSG)
                self.n_iter_ += 1
                self.loss_ = float(loss)
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))

                self._update_no_improvement_count(early_stopping, X_val, y_val, sw_val)
                state.iteration_ends(self.t_)
                if callbacks and callbacks.end_iteration(X_train, Y_train, sw_train):
                    break  # a callback asked to stop (between epochs only)

                if self._no_improvement_count > self.n_iter_no_change:
                    if early_stopping:
                        msg = (
                            "Validation score did not improve more than "
                            "tol=%f for %d consecutive epochs."
                            % (self.tol, self.n_iter_no_change)
                        )
                    else:
                        msg = (
                            "Training loss did not improve more than tol=%f"
                            " for %d consecutive epochs." % (self.tol, self.n_iter_no_change)
                        )
                    if state.trigger_stopping(msg, self.verbose):
                        break
                    self._no_improvement_count = 0

                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(
                        "Stochastic Optimizer: Maximum iterations (%d) "
                        "reached and the optimization hasn't converged yet."
                        % self.max_iter,
                        ConvergenceWarning,
                    )
        except KeyboardInterrupt:
            if in_epoch:
                params[...] = snapshot
            warnings.warn("Training interrupted by user.")

        if early_stopping:
            params[...] = self._best_params

    def _update_no_improvement_count(self, early_stopping, X, y, sample_weight):
        if early_stopping:
            val_score = self._score(X, y, sample_weight=sample_weight)
            self.validation_scores_.append(val_score)
            if self.verbose:
                print("Validation score: %f" % self.validation_scores_[-1])
            last_valid_score = self.validation_scores_[-1]
            if last_valid_score < (self.best_validation_score_ + self.tol):
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if last_valid_score > self.best_validation_score_:
                self.best_validation_score_ = last_valid_score
                self._best_params[...] = self._params
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data. float32 input trains in float32.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The target values (class labels in classification, real numbers in
            regression).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def to_sklearn(self):
        """Return an equivalent fitted scikit-learn MLPClassifier / MLPRegressor.

        See :func:`fastbp.interop.to_sklearn`.

        Returns
        -------
        mlp : MLPClassifier or MLPRegressor
            Fitted, with copies of the weights; predicts what this model does.

        Raises
        ------
        ValueError
            For "softplus" / "maxout" units, which scikit-learn does not have.
        """
        from .interop import to_sklearn

        return to_sklearn(self)

    def _check_solver(self):
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError(
                "partial_fit is only available for stochastic"
                " optimizers. %s is not stochastic." % self.solver
            )
        return True

    # ----------------------------------------------------------- predict
    def _forward(self, X, logits=False, check_input=True):
        if check_input:
            X = validate_data(
                self, X, accept_sparse=["csr", "csc"], reset=False,
                dtype=(np.float64, np.float32),
            )
        net, params = self._current()
        if sp.issparse(X):
            X = sp.csr_matrix(X, dtype=params.dtype)
        else:
            X = np.ascontiguousarray(X, dtype=params.dtype)
        return get_backend(self.backend).forward(net, params, X, logits=logits)

    def _score_with_function(self, X, y, sample_weight, score_function):
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return score_function(y, y_pred, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class BPClassifier(PlainStateMixin, ReadmeDocLinkMixin, ClassifierMixin, _BaseBP):
    """Multilayer perceptron classifier trained by backpropagation.

    A drop-in replacement for :class:`sklearn.neural_network.MLPClassifier`:
    the same parameters, defaults and fitted attributes, and for the same
    ``random_state`` the same model, plus softplus and maxout units, float32
    end to end and a compiled training loop. It minimises the log-loss
    (binary, multiclass or multilabel) with L-BFGS, SGD or Adam.

    Parameters
    ----------
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element is the number of units of the ith hidden layer.
    activation : {"identity", "logistic", "sigmoid", "tanh", "relu", "softplus", \
"maxout"}, default="relu"
        Activation of the hidden layers: "identity" ``f(x) = x``;
        "logistic" (alias "sigmoid") ``f(x) = 1 / (1 + exp(-x))``; "tanh";
        "relu" ``f(x) = max(0, x)``; "softplus" ``f(x) = log(1 + exp(x))``;
        "maxout", the maximum of ``maxout_pieces`` linear pieces per unit.
    solver : {"lbfgs", "sgd", "adam"}, default="adam"
        Weight optimizer: "lbfgs" is scipy's L-BFGS-B on the full data,
        "sgd" is minibatch gradient descent with (Nesterov) momentum, "adam"
        is the Adam optimizer on minibatches. "lbfgs" often converges faster
        on small datasets; "adam" is a robust default for larger ones.
    alpha : float, default=1e-4
        Strength of the L2 penalty ``alpha / (2 n) * sum ||W||^2`` on the
        weights (not the biases), ``n`` being the minibatch size.
    batch_size : int or "auto", default="auto"
        Minibatch size of the stochastic solvers; "auto" is
        ``min(200, n_samples)``. Larger values are clipped to ``n_samples``
        (with a warning). Ignored by "lbfgs".
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Learning-rate schedule of "sgd": "constant" keeps
        ``learning_rate_init``; "invscaling" uses
        ``learning_rate_init / (t_ + 1) ** power_t``; "adaptive" divides the
        rate by 5 each time ``n_iter_no_change`` epochs fail to improve the
        training loss (or the validation score) by ``tol``, until it falls
        below 1e-6.
    learning_rate_init : float, default=1e-3
        Initial learning rate of "sgd" and "adam".
    power_t : float, default=0.5
        Exponent of the "invscaling" schedule ("sgd" only).
    max_iter : int, default=200
        Maximum number of epochs (passes over the data) of "sgd" and "adam",
        or of iterations of "lbfgs".
    shuffle : bool, default=True
        Whether to shuffle the samples before each epoch ("sgd", "adam").
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, the shuffling and the early-stopping
        split. Pass an int for reproducible fits; the same value gives the
        same model as scikit-learn's MLP.
    tol : float, default=1e-4
        Tolerance: when the training loss (or the validation score) does not
        improve by at least ``tol`` for ``n_iter_no_change`` consecutive
        epochs, training stops (unless ``learning_rate="adaptive"``). For
        "lbfgs" it is the gradient tolerance.
    verbose : bool, default=False
        Whether to print the loss after each epoch or iteration.
    warm_start : bool, default=False
        When True, the next ``fit`` starts from the current weights (with a
        fresh optimizer state) instead of a new initialisation.
    momentum : float, default=0.9
        Momentum of "sgd", between 0 and 1.
    nesterovs_momentum : bool, default=True
        Whether "sgd" uses Nesterov's momentum.
    early_stopping : bool, default=False
        Whether to hold out ``validation_fraction`` of the training data and
        stop when the validation score (accuracy) has not improved by
        ``tol`` for ``n_iter_no_change`` epochs; the weights of the best
        validation epoch are kept. "sgd" and "adam" only. The
        split is stratified for every single-label problem (scikit-learn
        stratifies binary problems only).
    validation_fraction : float, default=0.1
        Fraction of the training data held out for early stopping, in
        ``[0, 1)``.
    beta_1 : float, default=0.9
        Exponential decay rate of Adam's first-moment estimates, in ``[0, 1)``.
    beta_2 : float, default=0.999
        Exponential decay rate of Adam's second-moment estimates, in
        ``[0, 1)``.
    epsilon : float, default=1e-8
        Adam's numerical stability term.
    n_iter_no_change : int, default=10
        Number of epochs without an improvement of ``tol`` before stopping
        ("sgd", "adam").
    max_fun : int, default=15000
        Maximum number of loss evaluations of "lbfgs".
    maxout_pieces : int, default=2
        Linear pieces per unit of "maxout" hidden layers (at least 2):
        ``coefs_[i]`` of a maxout layer then has ``units * maxout_pieces``
        columns. Ignored for the other activations.
    backend : {"auto", "cython", "numpy"}, default="auto"
        Where the arithmetic runs: "cython" is the compiled backend, "numpy"
        the pure-NumPy reference; both give the same model up to rounding.
        "auto" uses the compiled backend when it is built and NumPy (with one
        warning) otherwise.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels (for multilabel targets, the label indices
        ``0 .. n_labels - 1``).
    loss_ : float
        The training loss (with the L2 penalty) of the last epoch or
        iteration.
    best_loss_ : float or None
        The lowest training loss of the stochastic solvers; None with
        ``early_stopping=True`` (see ``best_validation_score_``). Only set for
        "sgd" and "adam".
    loss_curve_ : list of float
        The training loss after each epoch ("sgd", "adam") or iteration
        ("lbfgs").
    validation_scores_ : list of float or None
        The validation score (accuracy) after each epoch with
        ``early_stopping=True``, else None. Only set for "sgd" and "adam".
    best_validation_score_ : float or None
        The best of ``validation_scores_``, whose weights the model keeps;
        None without early stopping. Only set for "sgd" and "adam".
    t_ : int
        The number of training samples the stochastic solver has seen (it
        drives the "invscaling" schedule); 0 for "lbfgs".
    coefs_ : list of ndarray of shape (n_layers_ - 1,)
        The weight matrices: ``coefs_[i]`` has shape ``(fan_in, fan_out)``
        and maps layer ``i`` to layer ``i + 1`` (``fan_out`` is
        ``units * maxout_pieces`` for maxout layers). Writable views into one
        flat parameter buffer; arrays assigned by the user are used from the
        next call on.
    intercepts_ : list of ndarray of shape (n_layers_ - 1,)
        The bias vectors: ``intercepts_[i]`` has shape ``(fan_out,)`` and is
        added to layer ``i + 1``. Views into the same buffer as ``coefs_``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit. Defined only when ``X`` has
        feature names that are all strings.
    n_iter_ : int
        The number of epochs ("sgd", "adam") or iterations ("lbfgs") the
        solver ran in the last call to ``fit`` or ``partial_fit``.
    n_layers_ : int
        Number of layers: input, hidden layers and output.
    n_outputs_ : int
        Number of output units: 1 for a binary problem, the number of classes
        (multiclass) or of labels (multilabel).
    out_activation_ : str
        Name of the output activation: "softmax" for multiclass problems,
        "logistic" for binary and multilabel ones.
    backend_ : str
        The backend that ran the last fit ("cython" or "numpy").

    See Also
    --------
    BPRegressor : Multilayer perceptron regressor.
    sklearn.neural_network.MLPClassifier : The scikit-learn classifier it replaces.

    Notes
    -----
    float32 input trains and predicts in float32 (parameters, optimizer state
    and kernels); other input in float64. Sparse CSR/CSC input is used
    without densifying. The model can be saved with :func:`fastbp.save`
    (skops or joblib) and converted with :meth:`to_sklearn`.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from fastbp import BPClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = BPClassifier(random_state=0, max_iter=50).fit(X / 16, y)
    >>> clf.score(X / 16, y) > 0.9
    True
    """

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        maxout_pieces=2,
        backend="auto",
    ):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation,
            solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, loss="log_loss", shuffle=shuffle,
            random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            maxout_pieces=maxout_pieces, backend=backend,
        )

    def _loss_name(self):
        return "log_loss"

    def _output_activation(self):
        if self._label_binarizer.y_type_ == "multiclass":
            return "softmax"
        return "logistic"

    def _check_target(self, y):
        pass

    def _stratify_labels(self, Y):
        if self._label_binarizer.y_type_.startswith("multilabel"):
            return None
        if Y.shape[1] == 1:
            return Y[:, 0]
        return Y.argmax(axis=1)

    def _validation_target(self, Y_val):
        return self._label_binarizer.inverse_transform(
            Y_val if Y_val.shape[1] > 1 else Y_val[:, 0]
        )

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
            dtype=(np.float64, np.float32), reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same "
                        "classes as in the previous call to fit. Previously "
                        f"got {self.classes_}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    "`y` has classes not in `self.classes_`. "
                    f"`self.classes_` has {self.classes_}. 'y' has {classes}."
                )
        y = self._label_binarizer.transform(y).astype(bool)
        return X, y

    def predict(self, X):
        """Predict class labels (or label indicator rows for multilabel).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input samples.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_classes)
            The predicted class of each sample: the most probable class, or
            for multilabel targets one 0/1 column per label (probability
            above 0.5).
        """
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward(X, check_input=check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, accuracy_score)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with one epoch of the stochastic solver over (X, y).

        The first call initialises the network; later calls continue from
        the current weights and optimizer state (Adam's moments, SGD's
        velocities and learning rate), also after a save and load. Only
        available for ``solver="sgd"`` and ``"adam"``, without
        ``early_stopping``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input samples.
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            The class labels, or a label indicator matrix (multilabel).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights; None weighs every sample equally.
        classes : array of shape (n_classes,), default=None
            Every class of the problem; required on the first call (unless y
            is a multilabel indicator matrix), ignored afterwards.

        Returns
        -------
        self : object
            The updated estimator.
        """
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_proba(self, X):
        """Predict class probabilities.

        Probabilities are floored at the dtype's smallest normal number, so
        that ``log(predict_proba(X))`` is finite and equals
        :meth:`predict_log_proba`.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            The probability of each class (columns in the order of
            ``classes_``); for multilabel targets, of each label.
        """
        check_is_fitted(self)
        if self.n_outputs_ == 1:
            # 1 - p from the logit: exact where p rounds to 1.
            h = self._forward(X, logits=True).ravel()
            y_pred = np.vstack([expit(-h), expit(h)]).T
        else:
            y_pred = self._forward(X)
        # Never exactly 0, so that log(predict_proba) stays finite and equals
        # predict_log_proba (both floored at the dtype's smallest normal).
        return np.maximum(y_pred, np.finfo(y_pred.dtype).tiny, out=y_pred)

    def predict_log_proba(self, X):
        """Predict the logarithm of the class probabilities.

        Computed from the logits (log-sum-exp form), so that saturated
        outputs stay finite; floored like :meth:`predict_proba`, so the two
        agree everywhere.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input samples.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            The log-probability of each class, in the order of ``classes_``.
        """
        check_is_fitted(self)
        H = self._forward(X, logits=True)
        if self.out_activation_ == "softmax":
            log_p = H - logsumexp(H, axis=1, keepdims=True)
        else:
            # logistic: log p = -log(1 + e^-h), log(1 - p) = -log(1 + e^h)
            log_p = -np.logaddexp(0, -H)
            if self.n_outputs_ == 1:
                log_p = np.hstack([-np.logaddexp(0, H), log_p])
        # The floor of predict_proba, so the two agree everywhere.
        return np.maximum(log_p, np.log(np.finfo(log_p.dtype).tiny), out=log_p)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class BPRegressor(PlainStateMixin, ReadmeDocLinkMixin, RegressorMixin, _BaseBP):
    """Multilayer perceptron regressor trained by backpropagation.

    A drop-in replacement for :class:`sklearn.neural_network.MLPRegressor`:
    the same parameters, defaults and fitted attributes, and for the same
    ``random_state`` the same model, plus a chosen output activation,
    softplus and maxout units, float32 end to end and a compiled training
    loop. It minimises the squared error or the Poisson deviance with
    L-BFGS, SGD or Adam.

    Parameters
    ----------
    loss : {"squared_error", "poisson"}, default="squared_error"
        The training loss: "squared_error" is
        ``1/(2n) sum_i sum_k (z_ik - y_ik)^2`` (summed over the outputs, so
        the reported loss matches the gradient); "poisson" is the half
        Poisson deviance and needs ``y >= 0`` and an "exp" output.
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element is the number of units of the ith hidden layer.
    activation : {"identity", "logistic", "sigmoid", "tanh", "relu", "softplus", \
"maxout"}, default="relu"
        Activation of the hidden layers: "identity" ``f(x) = x``;
        "logistic" (alias "sigmoid") ``f(x) = 1 / (1 + exp(-x))``; "tanh";
        "relu" ``f(x) = max(0, x)``; "softplus" ``f(x) = log(1 + exp(x))``;
        "maxout", the maximum of ``maxout_pieces`` linear pieces per unit.
    solver : {"lbfgs", "sgd", "adam"}, default="adam"
        Weight optimizer: "lbfgs" is scipy's L-BFGS-B on the full data,
        "sgd" is minibatch gradient descent with (Nesterov) momentum, "adam"
        is the Adam optimizer on minibatches. "lbfgs" often converges faster
        on small datasets; "adam" is a robust default for larger ones.
    alpha : float, default=1e-4
        Strength of the L2 penalty ``alpha / (2 n) * sum ||W||^2`` on the
        weights (not the biases), ``n`` being the minibatch size.
    batch_size : int or "auto", default="auto"
        Minibatch size of the stochastic solvers; "auto" is
        ``min(200, n_samples)``. Larger values are clipped to ``n_samples``
        (with a warning). Ignored by "lbfgs".
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Learning-rate schedule of "sgd": "constant" keeps
        ``learning_rate_init``; "invscaling" uses
        ``learning_rate_init / (t_ + 1) ** power_t``; "adaptive" divides the
        rate by 5 each time ``n_iter_no_change`` epochs fail to improve the
        training loss (or the validation score) by ``tol``, until it falls
        below 1e-6.
    learning_rate_init : float, default=1e-3
        Initial learning rate of "sgd" and "adam".
    power_t : float, default=0.5
        Exponent of the "invscaling" schedule ("sgd" only).
    max_iter : int, default=200
        Maximum number of epochs (passes over the data) of "sgd" and "adam",
        or of iterations of "lbfgs".
    shuffle : bool, default=True
        Whether to shuffle the samples before each epoch ("sgd", "adam").
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, the shuffling and the early-stopping
        split. Pass an int for reproducible fits; the same value gives the
        same model as scikit-learn's MLP.
    tol : float, default=1e-4
        Tolerance: when the training loss (or the validation score) does not
        improve by at least ``tol`` for ``n_iter_no_change`` consecutive
        epochs, training stops (unless ``learning_rate="adaptive"``). For
        "lbfgs" it is the gradient tolerance.
    verbose : bool, default=False
        Whether to print the loss after each epoch or iteration.
    warm_start : bool, default=False
        When True, the next ``fit`` starts from the current weights (with a
        fresh optimizer state) instead of a new initialisation.
    momentum : float, default=0.9
        Momentum of "sgd", between 0 and 1.
    nesterovs_momentum : bool, default=True
        Whether "sgd" uses Nesterov's momentum.
    early_stopping : bool, default=False
        Whether to hold out ``validation_fraction`` of the training data and
        stop when the validation score (R²) has not improved by
        ``tol`` for ``n_iter_no_change`` epochs; the weights of the best
        validation epoch are kept. "sgd" and "adam" only.
    validation_fraction : float, default=0.1
        Fraction of the training data held out for early stopping, in
        ``[0, 1)``.
    beta_1 : float, default=0.9
        Exponential decay rate of Adam's first-moment estimates, in ``[0, 1)``.
    beta_2 : float, default=0.999
        Exponential decay rate of Adam's second-moment estimates, in
        ``[0, 1)``.
    epsilon : float, default=1e-8
        Adam's numerical stability term.
    n_iter_no_change : int, default=10
        Number of epochs without an improvement of ``tol`` before stopping
        ("sgd", "adam").
    max_fun : int, default=15000
        Maximum number of loss evaluations of "lbfgs".
    out_activation : {None, "identity", "logistic", "tanh", "relu", \
"softplus", "exp"}, default=None
        Output activation. None chooses as scikit-learn does: "identity" for
        squared error, "exp" for poisson.
    maxout_pieces : int, default=2
        Linear pieces per unit of "maxout" hidden layers (at least 2):
        ``coefs_[i]`` of a maxout layer then has ``units * maxout_pieces``
        columns. Ignored for the other activations.
    backend : {"auto", "cython", "numpy"}, default="auto"
        Where the arithmetic runs: "cython" is the compiled backend, "numpy"
        the pure-NumPy reference; both give the same model up to rounding.
        "auto" uses the compiled backend when it is built and NumPy (with one
        warning) otherwise.

    Attributes
    ----------
    loss_ : float
        The training loss (with the L2 penalty) of the last epoch or
        iteration.
    best_loss_ : float or None
        The lowest training loss of the stochastic solvers; None with
        ``early_stopping=True`` (see ``best_validation_score_``). Only set for
        "sgd" and "adam".
    loss_curve_ : list of float
        The training loss after each epoch ("sgd", "adam") or iteration
        ("lbfgs").
    validation_scores_ : list of float or None
        The validation score (R²) after each epoch with
        ``early_stopping=True``, else None. Only set for "sgd" and "adam".
    best_validation_score_ : float or None
        The best of ``validation_scores_``, whose weights the model keeps;
        None without early stopping. Only set for "sgd" and "adam".
    t_ : int
        The number of training samples the stochastic solver has seen (it
        drives the "invscaling" schedule); 0 for "lbfgs".
    coefs_ : list of ndarray of shape (n_layers_ - 1,)
        The weight matrices: ``coefs_[i]`` has shape ``(fan_in, fan_out)``
        and maps layer ``i`` to layer ``i + 1`` (``fan_out`` is
        ``units * maxout_pieces`` for maxout layers). Writable views into one
        flat parameter buffer; arrays assigned by the user are used from the
        next call on.
    intercepts_ : list of ndarray of shape (n_layers_ - 1,)
        The bias vectors: ``intercepts_[i]`` has shape ``(fan_out,)`` and is
        added to layer ``i + 1``. Views into the same buffer as ``coefs_``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit. Defined only when ``X`` has
        feature names that are all strings.
    n_iter_ : int
        The number of epochs ("sgd", "adam") or iterations ("lbfgs") the
        solver ran in the last call to ``fit`` or ``partial_fit``.
    n_layers_ : int
        Number of layers: input, hidden layers and output.
    n_outputs_ : int
        Number of output units: the number of targets.
    out_activation_ : str
        Name of the output activation: the ``out_activation`` chosen, or
        "identity" for squared error and "exp" for poisson.
    backend_ : str
        The backend that ran the last fit ("cython" or "numpy").

    See Also
    --------
    BPClassifier : Multilayer perceptron classifier.
    sklearn.neural_network.MLPRegressor : The scikit-learn regressor it replaces.

    Notes
    -----
    float32 input trains and predicts in float32; other input in float64.
    ``partial_fit`` is not available with ``solver="lbfgs"``. For several
    targets the loss is summed over the outputs, consistent with its
    gradient (scikit-learn divides the reported loss by the number of
    outputs).

    Examples
    --------
    >>> import numpy as np
    >>> from fastbp import BPRegressor
    >>> X = np.linspace(-1, 1, 200).reshape(-1, 1)
    >>> reg = BPRegressor(hidden_layer_sizes=(16,), solver="lbfgs",
    ...                   random_state=0).fit(X, X.ravel() ** 2)
    >>> reg.score(X, X.ravel() ** 2) > 0.95
    True
    """

    _parameter_constraints: dict = {
        **_BaseBP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
        "out_activation": [None, StrOptions(set(act.REGRESSOR_OUT_ACTIVATIONS) | set(act.ALIASES))],
    }

    def __init__(
        self,
        loss="squared_error",
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        out_activation=None,
        maxout_pieces=2,
        backend="auto",
    ):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation,
            solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, loss=loss, shuffle=shuffle,
            random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            maxout_pieces=maxout_pieces, backend=backend,
        )
        self.out_activation = out_activation

    def _loss_name(self):
        return self.loss

    def _output_activation(self):
        if self.out_activation is None:
            return "exp" if self.loss == "poisson" else "identity"
        out = act.canonical(self.out_activation)
        act.check_pairing(out, self.loss)
        return out

    def _check_target(self, y):
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError(
                "Some value(s) of y are negative which is not allowed for Poisson "
                "regression."
            )
        self._output_activation()  # a ValueError for an impossible pairing

    def _stratify_labels(self, Y):
        return None

    def _validation_target(self, Y_val):
        return Y_val[:, 0] if Y_val.shape[1] == 1 else Y_val

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
            y_numeric=True, dtype=(np.float64, np.float32), reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def predict(self, X):
        """Predict the targets with the fitted network.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input samples.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predicted values, in the dtype the model was trained in.
        """
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward(X, check_input=check_input)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, r2_score)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with one epoch of the stochastic solver over (X, y).

        The first call initialises the network; later calls continue from
        the current weights and optimizer state (Adam's moments, SGD's
        velocities and learning rate), also after a save and load. Only
        available for ``solver="sgd"`` and ``"adam"``, without
        ``early_stopping``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input samples.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights; None weighs every sample equally.

        Returns
        -------
        self : object
            The updated estimator.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)
