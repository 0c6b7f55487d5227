"""Class weights on an imbalanced problem, early stopping on a validation set
of your own scored by balanced accuracy.

A 95% / 5% binary problem: an unweighted network can reach 95% accuracy by
predicting the majority class, so accuracy is the wrong score to stop on.
``class_weight="balanced"`` weighs each class by the inverse of its
frequency, ``X_val`` / ``y_val`` is a held-out set chosen by the user (here
stratified), and ``scoring="balanced_accuracy"`` makes early stopping keep
the epoch that serves both classes best (``best_epoch_``). AdamW's decoupled
``weight_decay`` and a cosine schedule with warm-up round off the training.

Run::

    python examples/imbalanced_class_weight.py
"""

import warnings

from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import balanced_accuracy_score, recall_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from fastbp import BPClassifier


def main():
    X, y = make_classification(
        4000, 20, n_informative=6, weights=[0.95, 0.05], flip_y=0.01, random_state=0
    )
    X_rest, X_test, y_rest, y_test = train_test_split(X, y, stratify=y, random_state=0)
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest, y_rest, test_size=0.2, stratify=y_rest, random_state=0
    )
    scaler = StandardScaler().fit(X_train)
    X_train, X_val, X_test = (scaler.transform(a) for a in (X_train, X_val, X_test))

    common = dict(hidden_layer_sizes=(32,), max_iter=100, random_state=0,
                  learning_rate_init=0.003, early_stopping=True, n_iter_no_change=15)
    models = {
        "unweighted, accuracy": BPClassifier(**common),
        "balanced, balanced_accuracy": BPClassifier(
            class_weight="balanced", scoring="balanced_accuracy", weight_decay=0.01,
            learning_rate="cosine", warmup_fraction=0.05, **common,
        ),
    }
    print(f"{'model':30s} {'epochs':>6s} {'best':>5s} {'bal. acc.':>9s} {'minority recall':>15s}")
    for name, clf in models.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X_train, y_train, X_val=X_val, y_val=y_val)
        pred = clf.predict(X_test)
        print(f"{name:30s} {clf.n_iter_:6d} {clf.best_epoch_:5d} "
              f"{balanced_accuracy_score(y_test, pred):9.3f} "
              f"{recall_score(y_test, pred):15.3f}")


if __name__ == "__main__":
    main()
