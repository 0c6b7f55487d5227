"""Dropout with self-normalising (selu) units on the handwritten digits,
against a plain fit of the same network.

Both networks have two hidden layers of 256 and 128 units and train the same
number of epochs with Adam. The plain one uses scikit-learn's defaults (relu
units, Glorot-uniform weights); the other uses ``activation="selu"`` with
the ``init="lecun_normal"`` weights selu units expect, and ``dropout=0.2``
on both hidden layers while training (nothing changes at prediction). Each
is fitted with three seeds, and the test accuracy of every fit is printed
with the training loss of its last epoch (with dropout, the loss of the
thinned networks it trains), so the spread between seeds is visible beside
the difference between the two settings: on a problem as small and easy as
the digits, a difference smaller than that spread means nothing.

Run::

    python examples/dropout_selu_digits.py
"""

import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from fastbp import BPClassifier

SEEDS = (0, 1, 2)


def main():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X / 16, y, test_size=0.3, stratify=y, random_state=0
    )
    common = dict(hidden_layer_sizes=(256, 128), max_iter=60, learning_rate_init=1e-3)
    settings = {
        "plain (relu, glorot_uniform)": dict(),
        "selu + lecun_normal + dropout=0.2": dict(
            activation="selu", init="lecun_normal", dropout=0.2
        ),
    }
    print(f"digits: {len(X_train)} training rows, {len(X_test)} test rows; "
          f"hidden layers {common['hidden_layer_sizes']}, {common['max_iter']} epochs of Adam")
    print(f"{'setting':36s} {'seed':>4s} {'test acc.':>9s} {'last loss':>9s} {'fit s':>6s}")
    for name, extra in settings.items():
        scores = []
        for seed in SEEDS:
            clf = BPClassifier(random_state=seed, **common, **extra)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                t = time.perf_counter()
                clf.fit(X_train, y_train)
                seconds = time.perf_counter() - t
            scores.append(clf.score(X_test, y_test))
            print(f"{name:36s} {seed:4d} {scores[-1]:9.4f} {clf.loss_:9.4f} {seconds:6.2f}")
        print(f"{name:36s} mean {np.mean(scores):9.4f} (std {np.std(scores):.4f})")


if __name__ == "__main__":
    main()
