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
  classification where it can (scikit-learn stratifies only binary problems);
* a fit whose weights become non-finite restores the last finite weights
  before raising scikit-learn's "non-finite parameter weights" error (with
  early stopping: scikit-learn's nan score and best weights, plus a warning);
  a fit whose loss grew far beyond its first epoch's warns;
* Ctrl-C keeps the weights and optimizer state of the last *complete* epoch;
* ``learning_rate`` schedules Adam's base rate too ("invscaling",
  "adaptive", "cosine"; scikit-learn's Adam ignores it); the default
  "constant" is scikit-learn's Adam.
"""

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_array, check_consistent_length, column_or_1d
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight
from sklearn.utils.multiclass import type_of_target, unique_labels

from . import activations as act
from ._base import _BaseBP
from ._doc_link import ReadmeDocLinkMixin
from ._docstrings import fill
from ._early_stopping import stratify_if_possible
from ._state import PlainStateMixin
from ._compat import (
    StrOptions,
    _check_partial_fit_first_call,
    _fit_context,
    available_if,
    check_is_fitted,
    validate_data,
)


def _integer_labels(y):
    """Whether ``y`` is a non-empty 1-D NumPy array of integers: labels whose
    type scikit-learn's ``type_of_target`` calls "binary" or "multiclass"
    without any further check."""
    return (
        isinstance(y, np.ndarray) and y.ndim == 1 and y.dtype.kind in "iu" and y.shape[0] > 0
    )


def _fit_label_binarizer(y):
    """``LabelBinarizer().fit(y)``, with the same fitted attributes, computed
    directly for 1-D integer labels of at least two classes (what
    ``type_of_target`` and ``unique_labels`` find for them, without their
    validation machinery); any other ``y`` goes through scikit-learn."""
    if _integer_labels(y):
        classes = np.unique(y)
        if len(classes) >= 2:
            lb = LabelBinarizer()
            lb.y_type_ = "binary" if len(classes) == 2 else "multiclass"
            lb.sparse_input_ = False
            # unique_labels' own construction (a sorted set of scalars), so
            # classes_ has exactly its dtype
            lb.classes_ = np.asarray(sorted(set(classes)))
            return lb
    return LabelBinarizer().fit(y)


def _binarize(lb, y):
    """``lb.transform(y).astype(bool)``: the one-hot rows of ``y`` ((n, 1)
    for two classes), computed directly when ``y`` holds 1-D integer labels
    that are all among the binarizer's sorted integer classes (two or more);
    anything else goes through scikit-learn (and its errors)."""
    classes = lb.classes_
    n_classes = len(classes)
    if (
        _integer_labels(y)
        and isinstance(classes, np.ndarray)
        and classes.ndim == 1
        and classes.dtype.kind in "iu"
        and n_classes >= 2
        and lb.y_type_ in ("binary", "multiclass")
        and not lb.sparse_output
        and lb.neg_label == 0  # then any pos_label (> 0) encodes as True
        and (classes[1:] > classes[:-1]).all()
    ):
        index = np.searchsorted(classes, y)
        if (classes[np.minimum(index, n_classes - 1)] == y).all():
            if n_classes == 2:
                return (index == 1).reshape(-1, 1)
            Y = np.zeros((y.shape[0], n_classes), dtype=bool)
            Y[np.arange(y.shape[0]), index] = True
            return Y
    return lb.transform(y).astype(bool)


def _decode(lb, scores):
    """``lb.inverse_transform(scores)``, computed directly for dense scores of
    a binary (1-D: above the threshold) or multiclass (2-D: the first
    arg-max) binarizer, as scikit-learn computes them; anything else goes
    through scikit-learn."""
    classes = lb.classes_
    if isinstance(scores, np.ndarray) and isinstance(classes, np.ndarray) and not lb.sparse_input_:
        if lb.y_type_ == "multiclass" and scores.ndim == 2 and scores.shape[1] == len(classes):
            return classes[scores.argmax(axis=1)]
        if lb.y_type_ == "binary" and scores.ndim == 1 and len(classes) == 2:
            threshold = (lb.pos_label + lb.neg_label) / 2.0
            return classes[(scores > threshold).astype(int)]
    return lb.inverse_transform(scores)


def _accuracy(y_true, y_pred, sample_weight=None):
    """``accuracy_score(y_true, y_pred, sample_weight=sample_weight)``,
    computed directly (the mean of ``y_true == y_pred``, as scikit-learn
    computes it) when both are 1-D integer arrays of one length and there are
    no weights: for such labels its target checks can neither fail nor change
    the result. Anything else goes through scikit-learn (and its errors)."""
    if (
        sample_weight is None
        and _integer_labels(y_true)
        and _integer_labels(y_pred)
        and y_true.shape == y_pred.shape
    ):
        return float(np.average(y_true == y_pred))
    return accuracy_score(y_true, y_pred, sample_weight=sample_weight)


@fill
class BPClassifier(PlainStateMixin, ReadmeDocLinkMixin, ClassifierMixin, _BaseBP):
    """Multilayer perceptron classifier trained by backpropagation.

    A drop-in replacement for :class:`sklearn.neural_network.MLPClassifier`:
    the same parameters, defaults and fitted attributes, and for the same
    ``random_state`` the same model, plus softplus and maxout units, float32
    end to end and a compiled training loop. It minimises the log-loss
    (binary, multiclass or multilabel) with L-BFGS, SGD or Adam.

    Parameters
    ----------
    {hidden_layer_sizes}
    {activation}
    {solver}
    {alpha}
    {batch_size}
    {learning_rate}
    {learning_rate_init}
    {power_t}
    {max_iter}
    {shuffle}
    {random_state}
    {tol}
    {verbose}
    {warm_start}
    {momentum}
    {nesterovs_momentum}
    early_stopping : bool, default=False
        Whether to hold out ``validation_fraction`` of the training data and
        stop when the validation score (accuracy) has not improved by
        ``tol`` for ``n_iter_no_change`` epochs; the weights of the best
        validation epoch are kept (see ``best_epoch_``). ``fit`` may take a
        validation set of its own (``X_val``, ``y_val``) instead, and
        ``scoring`` another score. "sgd" and "adam" only. The
        split is stratified for every single-label problem (scikit-learn
        stratifies binary problems only).
    {validation_fraction}
    {epsilon}
    {n_iter_no_change}
    {max_fun}
    {maxout_pieces}
    {backend}
    {weight_decay}
    {max_grad_norm}
    {warmup_fraction}
    scoring : str, callable or None, default=None
        The validation score of early stopping (higher is better): None is
        ``score`` (accuracy); "loss" the negative validation loss
        (without the L2 penalty); any other string a scikit-learn scorer name
        (e.g. "balanced_accuracy"), or a callable ``scorer(estimator, X, y)``
        as in ``HistGradientBoosting*``. ``validation_scores_`` holds its
        values. For example ``scoring="neg_log_loss"``.
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes, multiplying ``sample_weight``: a dict
        ``{class_label: weight}`` (classes not in it weigh 1), or "balanced",
        ``n_samples / (n_classes * np.bincount(y))`` computed from the ``y``
        of ``fit``, as in scikit-learn's ``compute_sample_weight``. With
        ``early_stopping`` the validation rows keep their class weights (the
        validation score is weighted). With ``partial_fit``, "balanced"
        weights are computed from ``classes`` and the first batch (which must
        hold every class) and kept for the later calls; for weights from more
        data pass a dict, e.g. from
        ``compute_class_weight("balanced", classes=classes, y=y)``. For
        multilabel targets only "balanced" (each label balanced on its own,
        a row weighing the product, as ``compute_sample_weight`` does). For example
        ``class_weight={0: 1.0, 1: 10.0}`` or ``class_weight="balanced"``.
    {negative_slope}
    {dropout}
    {init}
    {transform_layer}

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels (for multilabel targets, the label indices
        ``0 .. n_labels - 1``).
    {loss_}
    {best_loss_}
    {loss_curve_}
    {learning_rate_curve_}
    validation_scores_ : list of float or None
        The validation score (accuracy, or that of ``scoring``) after each
        epoch with ``early_stopping=True``, else None. Only set for "sgd" and
        "adam".
    {best_validation_score_}
    {best_epoch_}
    {t_}
    {coefs_}
    {intercepts_}
    {n_features_in_}
    {feature_names_in_}
    {n_iter_}
    {n_layers_}
    n_outputs_ : int
        Number of output units: 1 for a binary problem, the number of classes
        (multiclass) or of labels (multilabel).
    out_activation_ : str
        Name of the output activation: "softmax" for multiclass problems,
        "logistic" for binary and multilabel ones.
    {backend_}

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

    Another weight initialisation, dropout, and the activations of a hidden
    layer as features (``transform``, here of the first of two):

    >>> clf = BPClassifier((64, 32), init="he_normal", dropout=0.2,
    ...                    transform_layer=0, random_state=0,
    ...                    max_iter=50).fit(X / 16, y)
    >>> clf.transform(X[:5] / 16).shape
    (5, 64)
    >>> clf.get_feature_names_out()[:2].tolist()
    ['bpclassifier0', 'bpclassifier1']

    One activation per hidden layer; "selu" units with the "lecun_normal"
    initialisation they expect:

    >>> clf = BPClassifier((64, 32), activation=["selu", "relu"],
    ...                    init="lecun_normal", random_state=0,
    ...                    max_iter=50).fit(X / 16, y)
    >>> clf.score(X / 16, y) > 0.9
    True

    The network as a feature extractor in a pipeline (``fit_transform(X,
    y)`` fits it, the next step learns from its last hidden layer):

    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> pipe = make_pipeline(BPClassifier((32,), random_state=0, max_iter=50),
    ...                      LogisticRegression(max_iter=1000)).fit(X / 16, y)
    >>> pipe[-1].n_features_in_
    32
    """

    _parameter_constraints: dict = {
        **_BaseBP._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

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
        weight_decay=0.0,
        max_grad_norm=None,
        warmup_fraction=0.0,
        scoring=None,
        class_weight=None,
        negative_slope=0.01,
        dropout=0.0,
        init="glorot_uniform",
        transform_layer=-1,
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
            weight_decay=weight_decay, max_grad_norm=max_grad_norm,
            warmup_fraction=warmup_fraction, scoring=scoring,
            negative_slope=negative_slope, dropout=dropout, init=init,
            transform_layer=transform_layer,
        )
        self.class_weight = class_weight

    def _loss_name(self):
        return "log_loss"

    def _output_activation(self):
        if self._label_binarizer.y_type_ == "multiclass":
            return "softmax"
        return "logistic"

    def _check_target(self, y):
        pass

    def _apply_class_weight(self, Y, sample_weight, dtype, incremental):
        """``sample_weight`` times each row's class weight (``Y`` is the
        binarized target), as HistGradientBoostingClassifier does. "balanced"
        weights are computed by the first call (``fit`` or the first
        ``partial_fit``, from its batch) and kept by later ``partial_fit``
        calls."""
        if self.class_weight is None:
            return sample_weight
        if self._label_binarizer.y_type_.startswith("multilabel"):
            if not isinstance(self.class_weight, str):
                raise ValueError(
                    "class_weight as a dict is not supported for multilabel "
                    "targets; use 'balanced' or pass sample_weight."
                )
            # Each label balanced on its own, the row weight their product
            # (scikit-learn's compute_sample_weight for multi-output y).
            per_row = compute_sample_weight("balanced", Y.astype(np.int8)).astype(dtype)
            return per_row if sample_weight is None else sample_weight * per_row
        Y = Y.reshape(len(Y), -1)
        index = Y[:, 0].astype(np.intp) if Y.shape[1] == 1 else Y.argmax(axis=1)
        labels = self.classes_[index]
        balanced = isinstance(self.class_weight, str)
        stored = getattr(self, "_balanced_class_weight", None)
        if balanced and incremental and stored is not None and len(stored) == len(self.classes_):
            weights = stored  # partial_fit keeps the weights of the first call
        elif balanced and incremental and not np.isin(self.classes_, labels).all():
            missing = np.setdiff1d(self.classes_, labels).tolist()
            raise ValueError(
                "class_weight='balanced' with partial_fit computes the weights "
                "from `classes` and the first batch, which has no sample of the "
                f"classes {missing}. Pass a dict instead, e.g. from "
                "compute_class_weight('balanced', classes=classes, y=y) on a "
                "large enough sample of y."
            )
        else:
            weights = compute_class_weight(self.class_weight, classes=self.classes_, y=labels)
        if balanced:
            self._balanced_class_weight = np.asarray(weights, dtype=np.float64)
        per_row = np.asarray(weights, dtype=np.float64)[index].astype(dtype)
        sample_weight = per_row if sample_weight is None else sample_weight * per_row
        if sample_weight.sum() == 0:
            raise ValueError(
                "Weights sum to zero, can't be normalized (sample_weight times "
                "class_weight sums to zero)."
            )
        return sample_weight

    def _stratify_labels(self, Y):
        if self._label_binarizer.y_type_.startswith("multilabel"):
            return None
        if Y.shape[1] == 1:
            # Binary: exactly scikit-learn's split, which stratifies the
            # (n, 1) boolean target (its classes are named 'False', 'True').
            return Y.astype(bool)
        return stratify_if_possible(Y.argmax(axis=1), self.validation_fraction)

    def _validation_target(self, Y_val):
        return self._label_binarizer.inverse_transform(
            Y_val if Y_val.shape[1] > 1 else Y_val[:, 0]
        )

    def _encode_validation_target(self, y_val, n_val):
        y_val = check_array(y_val, ensure_2d=False, dtype=None, input_name="y_val")
        check_consistent_length(np.empty(n_val), y_val)
        if y_val.ndim == 2 and y_val.shape[1] == 1:
            y_val = y_val[:, 0]
        multilabel = self._label_binarizer.y_type_.startswith("multilabel")
        if multilabel != (y_val.ndim == 2):
            raise ValueError(
                "y_val must have the form of y (a label indicator matrix for "
                "multilabel targets, else one label per sample)."
            )
        if not multilabel:
            unseen = np.setdiff1d(unique_labels(y_val), self.classes_)
            if len(unseen):
                raise ValueError(
                    f"y_val has classes not in y: {unseen.tolist()}; "
                    f"the classes are {self.classes_.tolist()}."
                )
        Y_val = _binarize(self._label_binarizer, y_val)
        return y_val, Y_val.reshape(n_val, -1)

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
            dtype=(np.float64, np.float32), reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = _fit_label_binarizer(y)
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
        y = _binarize(self._label_binarizer, y)
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
        return _decode(self._label_binarizer, y_pred)

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, _accuracy)

    def score(self, X, y, sample_weight=None):
        """Return the mean accuracy on the given test data and labels.

        As scikit-learn's classifiers: for multilabel targets the subset
        accuracy (every label of a sample must be right).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Test samples.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            True labels for ``X``.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            Mean accuracy of ``self.predict(X)`` with respect to ``y``.
        """
        return _accuracy(y, self.predict(X), sample_weight)

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
            self.__dict__.pop("_balanced_class_weight", None)
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
            return act.binary_proba(self._forward(X, logits=True))
        return act.floor_proba(self._forward(X))

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
        return act.log_proba_from_logits(self._forward(X, logits=True), self.out_activation_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


@fill
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
    {hidden_layer_sizes}
    {activation}
    {solver}
    {alpha}
    {batch_size}
    {learning_rate}
    {learning_rate_init}
    {power_t}
    {max_iter}
    {shuffle}
    {random_state}
    {tol}
    {verbose}
    {warm_start}
    {momentum}
    {nesterovs_momentum}
    early_stopping : bool, default=False
        Whether to hold out ``validation_fraction`` of the training data and
        stop when the validation score (R²) has not improved by
        ``tol`` for ``n_iter_no_change`` epochs; the weights of the best
        validation epoch are kept (see ``best_epoch_``). ``fit`` may take a
        validation set of its own (``X_val``, ``y_val``) instead, and
        ``scoring`` another score. "sgd" and "adam" only.
    {validation_fraction}
    {epsilon}
    {n_iter_no_change}
    {max_fun}
    out_activation : {None, "identity", "logistic", "tanh", "relu", \
"softplus", "exp"}, default=None
        Output activation. None chooses as scikit-learn does: "identity" for
        squared error, "exp" for poisson.
    {maxout_pieces}
    {backend}
    {weight_decay}
    {max_grad_norm}
    {warmup_fraction}
    scoring : str, callable or None, default=None
        The validation score of early stopping (higher is better): None is
        ``score`` (R²); "loss" the negative validation loss
        (without the L2 penalty); any other string a scikit-learn scorer name
        (e.g. "balanced_accuracy"), or a callable ``scorer(estimator, X, y)``
        as in ``HistGradientBoosting*``. ``validation_scores_`` holds its
        values. For example ``scoring="neg_log_loss"``.
    {negative_slope}
    {dropout}
    {init}
    {transform_layer}

    Attributes
    ----------
    {loss_}
    {best_loss_}
    {loss_curve_}
    {learning_rate_curve_}
    validation_scores_ : list of float or None
        The validation score (R², or that of ``scoring``) after each
        epoch with ``early_stopping=True``, else None. Only set for "sgd" and
        "adam".
    {best_validation_score_}
    {best_epoch_}
    {t_}
    {coefs_}
    {intercepts_}
    {n_features_in_}
    {feature_names_in_}
    {n_iter_}
    {n_layers_}
    n_outputs_ : int
        Number of output units: the number of targets.
    out_activation_ : str
        Name of the output activation: the ``out_activation`` chosen, or
        "identity" for squared error and "exp" for poisson.
    {backend_}

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

    An orthogonal initialisation; the hidden layer's activations as
    features:

    >>> reg = BPRegressor(hidden_layer_sizes=(16,), init="orthogonal",
    ...                   solver="lbfgs", random_state=0).fit(X, X.ravel() ** 2)
    >>> reg.transform(X).shape
    (200, 16)
    >>> reg.get_feature_names_out()[0]
    'bpregressor0'
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
        weight_decay=0.0,
        max_grad_norm=None,
        warmup_fraction=0.0,
        scoring=None,
        negative_slope=0.01,
        dropout=0.0,
        init="glorot_uniform",
        transform_layer=-1,
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
            weight_decay=weight_decay, max_grad_norm=max_grad_norm,
            warmup_fraction=warmup_fraction, scoring=scoring,
            negative_slope=negative_slope, dropout=dropout, init=init,
            transform_layer=transform_layer,
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

    def _encode_validation_target(self, y_val, n_val):
        y_val = check_array(y_val, ensure_2d=False, dtype=np.float64, input_name="y_val")
        check_consistent_length(np.empty(n_val), y_val)
        if y_val.ndim == 2 and y_val.shape[1] == 1:
            y_val = y_val[:, 0]
        Y_val = y_val.reshape(n_val, -1)
        if Y_val.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y_val has {Y_val.shape[1]} outputs; y has {self.n_outputs_}."
            )
        return y_val, Y_val

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
