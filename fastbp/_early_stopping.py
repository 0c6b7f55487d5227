"""The validation split of early stopping.

scikit-learn stratifies the split of single-output (binary) classification
only. fastbp also stratifies multiclass problems, where it can: when a class
has one member, or the validation or training part would have fewer rows
than there are classes, it splits as scikit-learn does (unstratified).
"""

import numpy as np
from sklearn.model_selection import train_test_split

from ._compat import _validate_shuffle_split


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
