"""Text-style classification on sparse (CSR) input, synthetic data.

Bag-of-words features are sparse: thousands of columns, a few dozen non-zeros
per row. fastbp trains on scipy.sparse CSR matrices directly -- the first
layer's products use only the non-zeros -- in float32 if the matrix is
float32. This script makes a synthetic "documents x vocabulary" TF-IDF-like
matrix (each class has its own topic words plus shared noise words), trains
BPClassifier on it and compares with scikit-learn's MLPClassifier.

Run::

    python examples/sparse_text_classification.py
"""

import time
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import normalize

from fastbp import BPClassifier


def make_documents(n_docs=6000, vocabulary=20000, n_classes=5, words_per_doc=60,
                   topic_words=2000, topic_share=0.08, seed=0):
    """Synthetic bag-of-words counts, L2-normalised rows, as float32 CSR.

    Parameters
    ----------
    n_docs, vocabulary, n_classes, words_per_doc : int
        Shape of the problem.
    topic_words : int
        Size of each class's own vocabulary.
    topic_share : float
        Fraction of each document's words drawn from its class's topic.
    seed : int
        Random seed.

    Returns
    -------
    X : scipy.sparse.csr_matrix of shape (n_docs, vocabulary), float32
    y : ndarray of shape (n_docs,)
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(n_classes, size=n_docs)
    topics = rng.choice(vocabulary, size=(n_classes, topic_words), replace=False)
    rows, cols = [], []
    for i, c in enumerate(y):
        n_topic = rng.binomial(words_per_doc, topic_share)
        words = np.concatenate([
            rng.choice(topics[c], size=n_topic),
            rng.zipf(1.3, size=words_per_doc - n_topic) % vocabulary,  # common words
        ])
        rows.append(np.full(len(words), i))
        cols.append(words)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    X = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                      shape=(n_docs, vocabulary))
    X.sum_duplicates()
    X.data = np.log1p(X.data)  # sublinear term frequency
    return normalize(X).astype(np.float32), y


def main():
    """Train on the synthetic sparse documents and compare with scikit-learn."""
    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = make_documents()
    print(f"X: {X.shape[0]} documents x {X.shape[1]} words, CSR {X.dtype}, "
          f"{X.nnz / X.shape[0]:.0f} non-zeros per row "
          f"(density {X.nnz / np.prod(X.shape):.2%})")
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0)
    params = dict(hidden_layer_sizes=(64,), max_iter=10, batch_size=128,
                  learning_rate_init=3e-3, random_state=0)

    t0 = time.perf_counter()
    clf = BPClassifier(**params).fit(X_tr, y_tr)
    t_fast = time.perf_counter() - t0
    print(f"fastbp ({clf.backend_}): test accuracy {clf.score(X_te, y_te):.4f}, "
          f"fit {t_fast:.2f} s, weights {clf.coefs_[0].dtype}")
    t0 = time.perf_counter()
    mlp = MLPClassifier(**params).fit(X_tr, y_tr)
    t_skl = time.perf_counter() - t0
    print(f"scikit-learn MLP: test accuracy {mlp.score(X_te, y_te):.4f}, "
          f"fit {t_skl:.2f} s")


if __name__ == "__main__":
    main()
