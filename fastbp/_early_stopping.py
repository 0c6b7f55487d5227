"""Early stopping: the validation split, the user's own validation set and
the score followed from epoch to epoch.

scikit-learn stratifies the split of single-output (binary) classification
only. fastbp also stratifies multiclass problems, where it can: when a class
has one member, or the validation or training part would have fewer rows
than there are classes, it splits as scikit-learn does (unstratified).
"""

import numpy as np
from sklearn.metrics import check_scoring
from sklearn.model_selection import train_test_split

from ._compat import _check_sample_weight, _validate_shuffle_split, validate_data
from ._validation import check_sparse_structure


def stratify_if_possible(labels, test_size):
    """``labels`` when a stratified split of them into ``test_size`` is
    possible, else None (an unstratified split)."""
    n_test, n_train = _validate_shuffle_split(len(labels), test_size, None)
    counts = np.unique(labels, return_counts=True)[1]
    if counts.min() < 2 or min(n_test, n_train) < len(counts):
        return None
    return labels


def validation_split(X, Y, sample_weight, *, stratify, test_size, random_state):
    """``(X_train, X_val, Y_train, Y_val, sw_train, sw_val)``, drawn as
    scikit-learn's MLP draws them (``sw_*`` are None without weights)."""
    arrays = [X, Y] if sample_weight is None else [X, Y, sample_weight]
    split = train_test_split(
        *arrays, random_state=random_state, test_size=test_size, stratify=stratify,
    )
    X_train, X_val, Y_train, Y_val = split[:4]
    sw_train, sw_val = (split[4], split[5]) if sample_weight is not None else (None, None)
    if X_val.shape[0] < 2:
        raise ValueError(
            "The validation set is too small. Increase 'validation_fraction' "
            "or the size of your dataset."
        )
    return X_train, X_val, Y_train, Y_val, sw_train, sw_val


class EarlyStoppingMixin:
    """The validation side of a fit: the user's own validation set, the
    score early stopping follows, and the no-improvement count (methods of
    ``_BaseBP``)."""

    def _validate_validation_set(self, X_val, y_val, sample_weight_val, dtype):
        """``(X_val, Y_val, y_val, sample_weight_val)`` of the user's
        validation set: X for the backends, the encoded target, the target
        as ``score`` takes it, the weights (or None)."""
        check_sparse_structure(X_val)
        X_val = validate_data(
            self, X_val, accept_sparse=["csr", "csc"], reset=False, dtype=dtype,
        )
        y_val, Y_val = self._encode_validation_target(y_val, X_val.shape[0])
        if sample_weight_val is not None:
            sample_weight_val = _check_sample_weight(sample_weight_val, X_val, dtype=dtype)
        if X_val.shape[0] < 1:
            raise ValueError("X_val has no sample.")
        return (
            self._prepare_X(X_val), np.ascontiguousarray(Y_val, dtype=dtype), y_val,
            sample_weight_val,
        )

    def _make_scorer(self, backend):
        """The validation score ``f(X_val, Y_val, y_val, sample_weight_val)``
        of early stopping (higher is better)."""
        scoring = self.scoring
        if scoring is None:
            return lambda X, Y, y, sw: self._score(X, y, sample_weight=sw)
        if isinstance(scoring, str) and scoring == "loss":
            def neg_loss(X, Y, y, sw):
                with np.errstate(over="ignore", invalid="ignore"):
                    loss = backend.loss_grad(self._net, self._params, X, Y, sw, 0.0)[0]
                return -loss if np.isfinite(loss) else np.nan
            return neg_loss
        scorer = check_scoring(self, scoring=scoring)

        def score(X, y_true, sw):
            if sw is None:
                return float(scorer(self, X, y_true))
            return float(scorer(self, X, y_true, sample_weight=sw))
        return lambda X, Y, y, sw: score(X, y, sw)

    def _update_no_improvement_count(self, early_stopping, X, y, sample_weight, Y=None,
                                     scorer=None):
        if early_stopping:
            if scorer is None:
                val_score = self._score(X, y, sample_weight=sample_weight)
            else:
                val_score = scorer(X, Y, y, sample_weight)
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
                self.best_epoch_ = len(self.validation_scores_)
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]
