"""``_BaseBP``: what BPClassifier and BPRegressor share.

Input validation, the random state, the fitted attributes and the stopping
rules live here; every forward pass, gradient and epoch goes through a backend
(see backends.py). Where scikit-learn's MLP makes a documented choice we make
the same one (same initial weights, shuffling, updates, stopping rules), so a
fit with the same ``random_state`` gives the same model.
"""

import warnings
import weakref
from abc import ABC, abstractmethod
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.callback import CallbackSupportMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from . import _numpy_backend
from . import activations as act
from ._callbacks import FitCallbacks, LbfgsBridge
from ._compat import (
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
    _check_optimize_result,
    _check_sample_weight,
    _fit_context,
    check_is_fitted,
    validate_data,
)
from ._early_stopping import EarlyStoppingMixin, validation_split
from ._validation import check_sparse_structure, csr_for_kernels
from .backends import BACKENDS, get_backend
from .network import INITS, Network
from .solvers import Hyper, OptState, minimize_lbfgs

_STOCHASTIC_SOLVERS = ("sgd", "adam")

ZERO_WEIGHTS_MSG = "Weights sum to zero, can't be normalized"

# A stochastic fit whose last epoch's loss is this many times its first
# epoch's has diverged (a converging fit's loss goes down).
DIVERGENCE_FACTOR = 100.0

# class -> (its __init__, its parameter names): see _BaseBP._get_param_names.
_PARAM_NAMES = weakref.WeakKeyDictionary()

NONFINITE_MSG = (
    "Solver produced non-finite parameter weights. The input data may contain "
    "large values and need to be preprocessed."
)


def _check_batch_weights(sample_weight, order, batch_size):
    """ValueError when a minibatch's sample weights sum to zero (its gradient
    would be 0/0)."""
    sums = np.add.reduceat(sample_weight[order], np.arange(0, len(order), batch_size))
    if not sums.all():
        first = int(np.flatnonzero(sums == 0)[0])
        raise ValueError(
            f"{ZERO_WEIGHTS_MSG}: the sample weights of minibatch {first} (rows "
            f"{first * batch_size} to {min((first + 1) * batch_size, len(order)) - 1} "
            "of this epoch's order) sum to zero. Use a larger batch_size or "
            "remove zero-weight samples."
        )


class _BaseBP(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, EarlyStoppingMixin,
    CallbackSupportMixin, BaseEstimator, ABC,
):
    """Shared base of BPClassifier and BPRegressor. Not for direct use."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [
            StrOptions(set(act.HIDDEN_ACTIVATIONS) | set(act.ALIASES)), list, tuple
        ],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive", "cosine"})],
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
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "max_grad_norm": [None, Interval(Real, 0, None, closed="neither")],
        "warmup_fraction": [Interval(Real, 0, 1, closed="both")],
        "scoring": [str, callable, None],
        "negative_slope": [Interval(Real, 0, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left"), list, tuple],
        "init": [StrOptions(set(INITS))],
        "transform_layer": [Integral],
    }

    @abstractmethod
    def __init__(
        self, hidden_layer_sizes, activation, solver, alpha, batch_size,
        learning_rate, learning_rate_init, power_t, max_iter, loss, shuffle,
        random_state, tol, verbose, warm_start, momentum, nesterovs_momentum,
        early_stopping, validation_fraction, beta_1, beta_2, epsilon,
        n_iter_no_change, max_fun, maxout_pieces, backend,
        weight_decay=0.0, max_grad_norm=None, warmup_fraction=0.0,
        scoring=None, negative_slope=0.01, dropout=0.0, init="glorot_uniform",
        transform_layer=-1,
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
        self.weight_decay = weight_decay
        self.max_grad_norm = max_grad_norm
        self.warmup_fraction = warmup_fraction
        self.scoring = scoring
        self.negative_slope = negative_slope
        self.dropout = dropout
        self.init = init
        self.transform_layer = transform_layer

    @classmethod
    def _get_param_names(cls):
        """scikit-learn's parameter names (read from ``__init__``'s
        signature), remembered per class: ``clone``, ``set_params`` and the
        parameter validation of every fit each ask for them, and
        ``inspect.signature`` was a good part of a small fit's Python time."""
        init = cls.__init__
        known = _PARAM_NAMES.get(cls)
        if known is None or known[0] is not init:
            known = (init, tuple(super()._get_param_names()))
            _PARAM_NAMES[cls] = known
        return list(known[1])

    # ------------------------------------------------------------ helpers
    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        if not hasattr(sizes, "__iter__"):
            sizes = [sizes]
        sizes = list(sizes)
        for s in sizes:
            # Booleans are rejected as scikit-learn rejects them (a TypeError
            # there); InvalidParameterError is a ValueError and a TypeError.
            integral = isinstance(s, (Integral, np.integer)) or (
                isinstance(s, (Real, np.floating)) and float(s).is_integer()
            )
            if isinstance(s, (bool, np.bool_)) or not integral:
                raise InvalidParameterError(
                    f"hidden_layer_sizes must contain integers, got {sizes}."
                )
        if np.any(np.array(sizes) <= 0):
            raise ValueError("hidden_layer_sizes must be > 0, got %s." % sizes)
        return [int(s) for s in sizes]

    def _dropout_rates(self, n_hidden):
        """``dropout`` as one rate per hidden layer (a tuple of floats)."""
        rates = self.dropout
        if not isinstance(rates, (list, tuple)):
            return (float(rates),) * n_hidden
        if len(rates) != n_hidden:
            raise ValueError(
                f"dropout has {len(rates)} values, but the network has {n_hidden} "
                f"hidden layers (hidden_layer_sizes={self.hidden_layer_sizes!r}): "
                "give one rate per hidden layer, or one float for all."
            )
        for r in rates:
            real = isinstance(r, (Real, np.floating, np.integer))
            if isinstance(r, (bool, np.bool_)) or not real or not 0 <= r < 1:
                raise ValueError(
                    f"dropout values must be numbers in [0, 1), got {list(rates)}."
                )
        return tuple(float(r) for r in rates)

    def _check_dropout(self, n_hidden):
        """The dropout rates, checked against the solver."""
        rates = self._dropout_rates(n_hidden)
        if any(rates) and self.solver not in _STOCHASTIC_SOLVERS:
            raise ValueError(
                f"dropout={self.dropout!r} needs a stochastic solver ('sgd' or "
                f"'adam'); solver={self.solver!r} trains the whole network at "
                "once. Set dropout=0.0 or choose solver='adam'."
            )
        return rates

    def _dropout_seed(self):
        """A new seed for the dropout masks of the coming epoch, drawn from
        ``random_state`` (only called when a rate is > 0). Mixed with ``t_``
        (samples seen so far), so each ``partial_fit`` call on a model with an
        int ``random_state`` (which restarts its stream) still gets new masks."""
        draw = int(self._random_state.randint(np.iinfo(np.int64).max, dtype=np.int64))
        sequence = np.random.SeedSequence([draw, int(self.t_)])
        return int(sequence.generate_state(1, np.uint64)[0])

    def _make_network(self, layer_units, dtype):
        return Network(
            layer_units,
            self._checked_activation(len(layer_units) - 2),
            self.out_activation_,
            self._loss_name(),
            self.maxout_pieces,
            dtype,
            negative_slope=self.negative_slope,
        )

    def _checked_activation(self, n_hidden):
        """``activation`` checked for ``n_hidden`` hidden layers: a list/tuple
        holding anything but known names is an InvalidParameterError (as a
        bad string is); one of the wrong length a ValueError naming both
        numbers."""
        activation = self.activation
        if not isinstance(activation, str):
            known = set(act.HIDDEN_ACTIVATIONS) | set(act.ALIASES)
            if not all(isinstance(a, str) and a in known for a in activation):
                raise InvalidParameterError(
                    f"The 'activation' parameter of {type(self).__name__} must be "
                    f"a str among {sorted(known)} or a list/tuple of them, one per "
                    f"hidden layer. Got {activation!r} instead."
                )
        act.hidden_activations(activation, n_hidden)
        return activation

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
        # activation / negative_slope set since: predict with them, as
        # scikit-learn's MLP does (the network is rebuilt from coefs_)
        activation = self.activation
        names = [activation] if isinstance(activation, str) else activation
        if (isinstance(names, (list, tuple)) and all(isinstance(a, str) for a in names)
                and net.activation != act.canonical(activation)):
            return False
        if net.negative_slope != getattr(self, "negative_slope", net.negative_slope):
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
        return Network.from_coefs(
            self.coefs_, self.intercepts_, self.activation, self.out_activation_,
            self._loss_name(), self.maxout_pieces, dtype,
            n_features=getattr(self, "n_features_in_", None),
            n_outputs=getattr(self, "n_outputs_", None),
            names=("coefs_", "intercepts_"), negative_slope=self.negative_slope,
        )

    def _current(self, dtype=None):
        """``(net, params)`` for predicting, without changing the estimator."""
        if self._buffer_is_current() and (dtype is None or self._params.dtype == dtype):
            return self._net, self._params
        if dtype is None:
            # Weights the user assigned as integers (say) predict in float64.
            dtype = getattr(self.coefs_[0], "dtype", None)
            dtype = dtype if dtype in (np.float32, np.float64) else np.float64
        return self._network_from_attributes(dtype)

    def _sync(self, dtype):
        """Before training: fold any user edits of coefs_/intercepts_ into the
        buffer and cast it to ``dtype``."""
        if not (self._buffer_is_current() and self._params.dtype == dtype):
            net, params = self._network_from_attributes(dtype)
            self._set_buffer(net, params)

    # --------------------------------------------------------------- fit
    @abstractmethod
    def _loss_name(self):
        """The training loss: 'log_loss', 'squared_error' or 'poisson'."""

    def _prepare_X(self, X):
        """X for the backends, never writing to the caller's arrays."""
        if sp.issparse(X):
            return csr_for_kernels(X)
        return np.ascontiguousarray(X)

    def _initialize(self, y, layer_units, dtype):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._output_activation()
        net = self._make_network(layer_units, dtype)
        params = net.init_params(self._random_state, self.init)
        self._set_buffer(net, params)
        self._best_params = params.copy()
        self.__dict__.pop("_opt_state", None)
        if self.solver in _STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self.learning_rate_curve_ = []
            self._no_improvement_count = 0
            self.best_epoch_ = None
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _fit(self, X, y, sample_weight=None, incremental=False, validation=None):
        check_sparse_structure(X)  # before any scipy routine walks its indptr
        hidden = self._hidden_sizes()
        self._check_dropout(len(hidden))
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        n_samples, n_features = X.shape
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
            if sample_weight.sum() == 0:
                raise ValueError(ZERO_WEIGHTS_MSG + " (sample_weight sums to zero).")
        sample_weight = self._apply_class_weight(y, sample_weight, X.dtype, incremental)
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

        if validation is not None:
            validation = self._validate_validation_set(*validation, dtype=X.dtype)
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
            self._fit_stochastic(backend, X, Y, sample_weight, incremental, callbacks, validation)
        else:
            self._fit_lbfgs(backend, X, Y, sample_weight, callbacks)
        callbacks.end_fit(X, Y, sample_weight)

        if not np.isfinite(self._params).all():
            raise ValueError(NONFINITE_MSG)
        if not incremental and self._net.out_activation == "exp":
            self._warn_if_predictions_overflow(backend, X)
        return self

    def _apply_class_weight(self, Y, sample_weight, dtype, incremental):
        """``sample_weight`` times the class weights of the rows (classifier
        only; the regressor has none)."""
        return sample_weight

    def _warn_if_predictions_overflow(self, backend, X):
        """An exp output overflows with finite weights: a diverged fit can
        end with finite weights that predict inf on its own training data."""
        with np.errstate(over="ignore"):
            Z = backend.forward(self._net, self._params, X)
        if not np.isfinite(Z).all():
            warnings.warn(
                "Training diverged: the fitted model predicts non-finite values "
                "on its training data. Try a smaller learning_rate_init (now "
                f"{self.learning_rate_init}) or scale the inputs.",
                ConvergenceWarning,
            )

    def _hyper(self):
        return Hyper(
            alpha=float(self.alpha),
            momentum=float(self.momentum),
            nesterov=bool(self.nesterovs_momentum),
            beta_1=float(self.beta_1),
            beta_2=float(self.beta_2),
            epsilon=float(self.epsilon),
            weight_decay=float(self.weight_decay),
            max_grad_norm=None if self.max_grad_norm is None else float(self.max_grad_norm),
            dropout=self._dropout_rates(len(self._hidden_sizes())),
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

    def _fit_stochastic(self, backend, X, Y, sample_weight, incremental, callbacks=None,
                        validation=None):
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
                self.learning_rate, self.power_t, planned_epochs=self.max_iter,
                warmup_fraction=self.warmup_fraction,
            )
        elif state.m.dtype != net.dtype:
            state.astype(net.dtype)
        self._opt_state = state

        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if validation is not None:
            X_train, Y_train, sw_train = X, Y, sample_weight
            X_val, Y_val, y_val, sw_val = validation
        elif early_stopping:
            X_train, X_val, Y_train, Y_val, sw_train, sw_val = validation_split(
                X, Y, sample_weight, stratify=self._stratify_labels(Y),
                test_size=self.validation_fraction, random_state=self._random_state,
            )
            X_train = self._prepare_X(X_train)
            X_val = self._prepare_X(X_val)
            Y_train = np.ascontiguousarray(Y_train)
            Y_val = np.ascontiguousarray(Y_val)
            y_val = self._validation_target(Y_val)
        else:
            X_train, Y_train, sw_train = X, Y, sample_weight
            X_val = Y_val = y_val = sw_val = None

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
        scorer = self._make_scorer(backend) if early_stopping else None
        # The first epoch the divergence check compares with: this fit's
        # (a warm start may bring other data), or the first partial_fit's.
        first_epoch = 0 if incremental else len(self.loss_curve_)
        # The weights and the optimizer state at the start of the epoch, for
        # Ctrl-C and divergence: both roll back together.
        snapshot = np.empty_like(params)  # filled at the start of each epoch
        saved_state = None
        in_epoch = False
        diverged = False
        try:
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                if self.shuffle:
                    # scikit-learn's MLP does ``sample_idx = shuffle(sample_idx,
                    # random_state=rs)``: one ``rs.shuffle`` of an arange then a
                    # gather, i.e. exactly this in-place shuffle (same draws, same
                    # order), without its validation machinery.
                    self._random_state.shuffle(sample_idx)
                if sw_train is not None:
                    _check_batch_weights(sw_train, sample_idx, batch_size)
                if any(hyper.dropout):  # else no random number is drawn
                    hyper.dropout_seed = self._dropout_seed()
                snapshot[...] = params
                saved_state = state.save(into=saved_state)
                if callbacks:
                    callbacks.begin_iteration(X_train, Y_train, sw_train)
                state.epoch_begins()
                in_epoch = True
                loss = backend.train_epoch(
                    net, params, state, X_train, Y_train, sw_train, sample_idx,
                    batch_size, hyper,
                )
                in_epoch = False
                if not (np.isfinite(loss) and np.isfinite(params).all()):
                    if not early_stopping:
                        params[...] = snapshot
                        state.restore(saved_state)
                        raise ValueError(NONFINITE_MSG)
                    # scikit-learn >= 1.6: the diverged epoch scores nan and
                    # the best validation epoch's weights are kept (below).
                    diverged = True
                    self.n_iter_ += 1
                    self.loss_ = float(loss)
                    self.t_ += n_samples
                    self.loss_curve_.append(self.loss_)
                    self._record_learning_rate(state)
                    self.validation_scores_.append(np.nan)
                    break
                self.n_iter_ += 1
                self.loss_ = float(loss)
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                self._record_learning_rate(state)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))

                self._update_no_improvement_count(
                    early_stopping, X_val, y_val, sw_val, Y_val, scorer)
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
                state.restore(saved_state)
            warnings.warn("Training interrupted by user.")

        if early_stopping:
            params[...] = self._best_params
        if diverged:
            warnings.warn(
                f"Training diverged: epoch {self.n_iter_} gave non-finite weights or "
                "loss. The weights of the best validation epoch are kept; a "
                f"smaller learning_rate_init (now {self.learning_rate_init}) "
                "should train further.",
                ConvergenceWarning,
            )
        else:
            self._warn_if_diverged(first_epoch)

    def _record_learning_rate(self, state):
        """Append the rate the epoch's steps used to ``learning_rate_curve_``."""
        curve = getattr(self, "learning_rate_curve_", None)
        if curve is None:  # a model fitted before the attribute existed
            curve = self.learning_rate_curve_ = []
        curve.append(float(state.step_rate()))

    def _warn_if_diverged(self, first_epoch):
        """ConvergenceWarning when the loss grew far beyond that of epoch
        ``first_epoch`` (an index into loss_curve_)."""
        if len(self.loss_curve_) < first_epoch + 2:
            return
        first, last = self.loss_curve_[first_epoch], self.loss_curve_[-1]
        if first > 0 and last > DIVERGENCE_FACTOR * first:
            kept = (
                " The weights of the best validation epoch are kept."
                if self.early_stopping else ""
            )
            warnings.warn(
                f"Training diverged: the loss grew from {first:.4g} in the first "
                f"epoch to {last:.4g}.{kept} Try a smaller learning_rate_init "
                f"(now {self.learning_rate_init}).",
                ConvergenceWarning,
            )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, *, X_val=None, y_val=None, sample_weight_val=None):
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
        X_val : {array-like, sparse matrix} of shape (n_val, n_features), \
default=None
            A validation set of your own for early stopping, used instead of
            holding out ``validation_fraction`` of ``X`` (which then all
            trains). Needs ``y_val`` and ``early_stopping=True``; with a
            ``Pipeline``, request it with ``set_fit_request(X_val=True,
            y_val=True)`` and list it in the pipeline's ``transform_input``.
        y_val : array-like of shape (n_val,) or (n_val, n_outputs), \
default=None
            The targets of ``X_val``.
        sample_weight_val : array-like of shape (n_val,), default=None
            Weights of the validation samples in the validation score (as
            given: ``class_weight`` does not apply to them).

        Returns
        -------
        self : object
            The fitted estimator.
        """
        validation = None
        if X_val is not None or y_val is not None:
            if y_val is None:
                raise ValueError("X_val is provided, but y_val was not provided.")
            if X_val is None:
                raise ValueError("y_val is provided, but X_val was not provided.")
            if not self.early_stopping:
                raise ValueError(
                    "X_val and y_val are passed to fit while early_stopping is "
                    "False. Set early_stopping=True to use them."
                )
            if self.solver not in _STOCHASTIC_SOLVERS:
                raise ValueError(
                    f"X_val and y_val are used for early stopping, which solver="
                    f"{self.solver!r} does not do. Use solver='sgd' or 'adam'."
                )
            validation = (X_val, y_val, sample_weight_val)
        elif sample_weight_val is not None:
            raise ValueError("sample_weight_val is provided, but X_val and y_val were not.")
        return self._fit(X, y, sample_weight=sample_weight, incremental=False,
                         validation=validation)

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
        # The weights first: a coefs_[i] the user assigned with the wrong
        # shape is reported as such, not as a problem of X.
        net, params = self._current()
        X = self._predict_input(X, params.dtype, check_input)
        return get_backend(self.backend).forward(net, params, X, logits=logits)

    def _predict_input(self, X, dtype, check_input=True):
        """X checked against the fitted model (unless ``check_input`` is
        False) and made what the backends take: C-contiguous or CSR, in the
        model's ``dtype``."""
        if check_input:
            check_sparse_structure(X)  # before any scipy routine walks its indptr
            X = validate_data(
                self, X, accept_sparse=["csr", "csc"], reset=False,
                dtype=(np.float64, np.float32),
            )
        if sp.issparse(X):
            return sp.csr_matrix(X, dtype=dtype)
        return np.ascontiguousarray(X, dtype=dtype)

    # --------------------------------------------------------- transform
    def _transform_layer_index(self, n_hidden):
        """``transform_layer`` as an index in ``0 .. n_hidden - 1``."""
        layer = self.transform_layer
        if n_hidden == 0:
            raise ValueError(
                "transform returns the activations of a hidden layer, and this "
                f"network has none (hidden_layer_sizes={self.hidden_layer_sizes!r})."
            )
        if not -n_hidden <= layer < n_hidden:
            raise ValueError(
                f"transform_layer={layer} is out of range: the network has "
                f"{n_hidden} hidden layer{'s' if n_hidden != 1 else ''}, so "
                f"transform_layer must be in [{-n_hidden}, {n_hidden - 1}]."
            )
        return layer % n_hidden

    @property
    def _n_features_out(self):
        """Width of the hidden layer ``transform`` returns (units, after
        maxout's max); AttributeError before fit, so the estimator counts as
        unfitted for ``get_feature_names_out``."""
        if not hasattr(self, "coefs_"):
            raise AttributeError("_n_features_out")
        net, _ = self._current()
        return net.layer_units[1 + self._transform_layer_index(net.n_layers - 2)]

    def transform(self, X):
        """The activations of hidden layer ``transform_layer`` for X.

        The fitted network used as a feature extractor, e.g. as a step of a
        :class:`~sklearn.pipeline.Pipeline` (``fit_transform(X, y)`` fits,
        then transforms ``X``). Dropout never applies here.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input samples.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_units)
            The outputs of the chosen hidden layer (``n_units`` its number of
            units; for maxout, the maximum over each unit's pieces), in the
            dtype the model predicts in. Their names are
            ``get_feature_names_out()``.
        """
        check_is_fitted(self)
        net, params = self._current()
        layer = self._transform_layer_index(net.n_layers - 2)
        X = self._predict_input(X, params.dtype)
        return _hidden_activations(net, params, X, layer)

    def _score_with_function(self, X, y, sample_weight, score_function):
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return score_function(y, y_pred, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        # transform returns float32 for float32 input, as predict does.
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _hidden_activations(net, params, X, layer):
    """Output of hidden layer ``layer`` (0-based) for the rows of X.

    The NumPy backend's training forward pass (``_numpy_backend._forward``,
    which applies each layer's activation and maxout's max, exactly as
    training does), in blocks of rows as its predict path; the layers after
    ``layer`` are not computed.
    """
    coefs, intercepts = net.views(params)
    n = X.shape[0]
    out = np.empty((n, net.layer_units[layer + 1]), dtype=net.dtype)
    block = _numpy_backend._forward_block(net)
    for start in range(0, n, block):
        Z, _, _ = _numpy_backend._forward(net, coefs, intercepts, X[start : start + block],
                                          layers=layer + 1)
        out[start : start + block] = Z[layer + 1]
    return out


