"""The shared fit loop of BPClassifier / BPRegressor (fastbp._base): what it
hands the backends, epoch by epoch."""

import numpy as np
import pytest
import sklearn.neural_network._multilayer_perceptron as sk_mlp
from sklearn.datasets import make_classification
from sklearn.neural_network import MLPClassifier

import fastbp._base
from fastbp import BPClassifier, BPRegressor
from fastbp.backends import get_backend

pytestmark = [
    pytest.mark.usefixtures("one_blas_thread"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]

X, y = make_classification(90, 5, n_informative=3, n_classes=3, random_state=0)
PARAMS = dict(hidden_layer_sizes=(7,), batch_size=16, max_iter=4, tol=0.0,
              n_iter_no_change=100, random_state=3)


class _Recorder:
    """A backend that records the row order of every epoch."""

    def __init__(self, backend):
        self._backend = backend
        self.name = backend.name
        self.orders = []

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def train_epoch(self, net, params, state, X, Y, sw, order, *args):
        self.orders.append(np.array(order, copy=True))
        return self._backend.train_epoch(net, params, state, X, Y, sw, order, *args)


def _fastbp_orders(monkeypatch, est, X, y, backend):
    recorder = _Recorder(get_backend(backend))
    monkeypatch.setattr(fastbp._base, "get_backend", lambda name: recorder)
    est.fit(X, y)
    return recorder.orders


def _sklearn_orders(monkeypatch, est, X, y):
    orders = []
    shuffle = sk_mlp.shuffle

    def recording_shuffle(*arrays, **kwargs):
        out = shuffle(*arrays, **kwargs)
        orders.append(np.array(out, copy=True))
        return out

    monkeypatch.setattr(sk_mlp, "shuffle", recording_shuffle)
    est.fit(X, y)
    return orders


def test_epochs_visit_the_rows_in_scikit_learns_shuffled_orders(monkeypatch, backend):
    ours = _fastbp_orders(monkeypatch, BPClassifier(**PARAMS, backend=backend), X, y, backend)
    theirs = _sklearn_orders(monkeypatch, MLPClassifier(**PARAMS), X, y)
    assert len(ours) == len(theirs) == PARAMS["max_iter"]
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)
    # and every epoch is a new permutation of all rows
    assert all(sorted(o.tolist()) == list(range(len(X))) for o in ours)
    assert not np.array_equal(ours[0], ours[1])


def test_without_shuffle_every_epoch_visits_the_rows_in_order(monkeypatch, backend):
    est = BPRegressor(**PARAMS, shuffle=False, backend=backend)
    orders = _fastbp_orders(monkeypatch, est, X, y.astype(float), backend)
    assert len(orders) == PARAMS["max_iter"]
    for order in orders:
        np.testing.assert_array_equal(order, np.arange(len(X)))


def _signature_names(cls):
    from sklearn.base import BaseEstimator

    return BaseEstimator._get_param_names.__func__(cls)


def test_parameter_names_are_those_of_each_classes_init():
    class Wider(BPClassifier):
        def __init__(self, hidden_layer_sizes=(100,), *, extra=1, **kwargs):
            super().__init__(hidden_layer_sizes, **kwargs)
            self.extra = extra

    for cls in (BPClassifier, BPRegressor, Wider, BPClassifier, Wider):
        assert cls._get_param_names() == _signature_names(cls)
    assert "extra" in Wider().get_params() and "extra" not in BPClassifier().get_params()
    assert "out_activation" in BPRegressor().get_params()
    # a list of its own each time: changing it changes nothing
    BPClassifier._get_param_names().append("bogus")
    assert "bogus" not in BPClassifier().get_params()


def test_parameter_names_follow_a_new_init():
    class Later(BPRegressor):
        pass

    assert Later._get_param_names() == _signature_names(BPRegressor)

    def __init__(self, hidden_layer_sizes=(100,), *, late=0):
        BPRegressor.__init__(self, hidden_layer_sizes)
        self.late = late

    Later.__init__ = __init__
    assert Later._get_param_names() == ["hidden_layer_sizes", "late"]
