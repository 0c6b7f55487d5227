"""scikit-learn's callback framework (sklearn.callback) on fastbp's estimators.

Issue #5, point 2: ProgressBar per epoch / L-BFGS iteration, ScoringMonitor
per epoch, propagation from Pipeline and GridSearchCV, hooks only between
epochs.
"""

import io
import warnings

import numpy as np
import pytest
from sklearn.callback import ScoringMonitor
from sklearn.datasets import load_digits, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fastbp import BPClassifier, BPRegressor
from fastbp._callbacks import TextProgress


pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X[:600] / 16.0), y[:600]


class Recorder:
    """Records every hook call (a FitCallback, not auto-propagated)."""

    def __init__(self):
        self.calls = []

    def setup(self, estimator, context):
        self.calls.append(("setup", type(estimator).__name__, context.task_name, None))

    def on_fit_task_begin(self, estimator, context, *, X=None, y=None, metadata=None,
                          fitted_estimator=None):
        self.calls.append(("begin", type(estimator).__name__, context.task_name, None))

    def on_fit_task_end(self, estimator, context, *, X=None, y=None, metadata=None,
                        fitted_estimator=None):
        info = dict(
            n_rows=None if X is None else X.shape[0],
            y=y,
            metadata=metadata,
            fitted=fitted_estimator,
            loss_curve_len=len(getattr(estimator, "loss_curve_", None) or []),
        )
        self.calls.append(("end", type(estimator).__name__, context.task_name, info))

    def teardown(self, estimator, context):
        self.calls.append(("teardown", type(estimator).__name__, context.task_name, None))

    def ends(self, task_name, est="BPClassifier"):
        return [c[3] for c in self.calls if c[0] == "end" and c[2] == task_name
                and c[1] == est]


class AutoRecorder(Recorder):
    """Auto-propagated: set on a meta-estimator, it reaches fastbp's fit."""

    max_propagation_depth = None


class StopAfter(Recorder):
    def __init__(self, n):
        super().__init__()
        self.n = n

    def on_fit_task_end(self, estimator, context, **kwargs):
        super().on_fit_task_end(estimator, context, **kwargs)
        return context.task_name == "epoch" and context.task_id + 1 >= self.n


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_one_hook_pair_per_epoch(digits, solver):
    X, y = digits
    rec = Recorder()
    clf = BPClassifier((16,), solver=solver, max_iter=7, random_state=0, backend="numpy")
    clf.set_callbacks(rec).fit(X, y)
    kinds = [c[0] for c in rec.calls]
    assert kinds[0] == "setup" and kinds[-1] == "teardown"
    assert kinds.count("begin") == kinds.count("end") == clf.n_iter_ + 1  # + root
    epochs = rec.ends("epoch")
    assert len(epochs) == clf.n_iter_ == 7
    # called after loss_curve_ has been appended: between epochs, never per batch
    assert [e["loss_curve_len"] for e in epochs] == list(range(1, 8))
    assert epochs[0]["n_rows"] == X.shape[0]
    np.testing.assert_array_equal(epochs[0]["y"], y)
    assert rec.ends("fit")[0]["n_rows"] == X.shape[0]
    # the fit leaves no callback state behind
    assert not hasattr(clf, "_callback_fit_ctx")


def test_lbfgs_iterations_are_subtasks(digits):
    X, y = digits
    rec = Recorder()
    clf = BPClassifier((16,), solver="lbfgs", max_iter=6, random_state=0, backend="numpy")
    clf.set_callbacks(rec).fit(X, y)
    iters = rec.ends("lbfgs-iter")
    # one per iteration, plus scikit-learn's trailing empty one (as LogisticRegression)
    assert len(iters) == clf.n_iter_ + 1
    assert all(e["n_rows"] == X.shape[0] for e in iters[:-1])
    assert iters[-1]["n_rows"] is None
    kinds = [c[0] for c in rec.calls]
    assert kinds.count("begin") == kinds.count("end")


def test_callbacks_do_not_change_the_fit(digits):
    X, y = digits
    params = dict(hidden_layer_sizes=(16,), max_iter=5, random_state=0, backend="numpy")
    plain = BPClassifier(**params).fit(X, y)
    rec = BPClassifier(**params).set_callbacks(Recorder()).fit(X, y)
    for a, b in zip(plain.coefs_ + plain.intercepts_, rec.coefs_ + rec.intercepts_, strict=True):
        np.testing.assert_array_equal(a, b)
    assert plain.loss_curve_ == rec.loss_curve_


def test_fitted_estimator_is_a_snapshot(digits):
    X, y = digits
    rec = Recorder()
    clf = BPClassifier((16,), max_iter=4, random_state=0, backend="numpy")
    clf.set_callbacks(rec).fit(X, y)
    snaps = [e["fitted"] for e in rec.ends("epoch")]
    assert [s.n_iter_ for s in snaps] == [1, 2, 3, 4]
    # each snapshot predicts with the weights of its epoch, not the final ones
    assert not np.array_equal(snaps[0].coefs_[0], clf.coefs_[0])
    np.testing.assert_allclose(snaps[-1].predict_proba(X), clf.predict_proba(X))


def test_scoring_monitor_records_per_epoch(digits):
    X, y = digits
    monitor = ScoringMonitor(scoring="accuracy")
    clf = BPClassifier((32,), max_iter=8, random_state=0, backend="numpy")
    clf.set_callbacks(monitor).fit(X, y)
    rows = monitor.get_logs().data
    epochs = [r for r in rows if r["task_name"] == "epoch"]
    assert len(epochs) == clf.n_iter_ == 8
    scores = [r["accuracy"] for r in epochs]
    assert all(0 <= s <= 1 for s in scores)
    assert scores[-1] > scores[0]
    assert scores[-1] == pytest.approx(clf.score(X, y))


def test_scoring_monitor_regressor_and_sample_weight():
    X, y = make_regression(n_samples=200, n_features=5, noise=1.0, random_state=0)
    y = y / y.std()
    sw = np.linspace(0.5, 1.5, len(y))
    monitor = ScoringMonitor(scoring="r2")
    rec = Recorder()
    reg = BPRegressor(hidden_layer_sizes=(16,), max_iter=5, random_state=0, backend="numpy")
    reg.set_callbacks(monitor, rec).fit(X, y, sample_weight=sw)
    epochs = [r for r in monitor.get_logs().data if r["task_name"] == "epoch"]
    assert len(epochs) == 5
    meta = rec.ends("epoch", "BPRegressor")[0]["metadata"]
    np.testing.assert_array_equal(meta["sample_weight"], sw)


def test_a_callback_can_stop_training(digits):
    X, y = digits
    clf = BPClassifier((16,), max_iter=50, random_state=0, backend="numpy")
    clf.set_callbacks(StopAfter(3)).fit(X, y)
    assert clf.n_iter_ == 3 and len(clf.loss_curve_) == 3


def test_partial_fit_is_one_epoch_task(digits):
    X, y = digits
    rec = Recorder()
    clf = BPClassifier((16,), random_state=0, backend="numpy").set_callbacks(rec)
    clf.partial_fit(X, y, classes=np.unique(y))
    clf.partial_fit(X, y)
    assert len(rec.ends("epoch")) == 2
    assert [c[0] for c in rec.calls].count("setup") == 2


def test_propagates_from_pipeline(digits):
    X, y = digits
    rec = AutoRecorder()
    pipe = make_pipeline(StandardScaler(),
                         BPClassifier((16,), max_iter=4, random_state=0, backend="numpy"))
    pipe.set_callbacks(rec).fit(X, y)
    assert len(rec.ends("epoch")) == 4
    # propagated callbacks are set up once, by the outermost estimator
    assert [c[1] for c in rec.calls if c[0] == "setup"] == ["Pipeline"]
    assert not hasattr(pipe[-1], "_skl_callbacks")  # removed after the fit


def test_propagates_from_grid_search(digits):
    X, y = digits
    rec = AutoRecorder()
    search = GridSearchCV(
        BPClassifier((8,), max_iter=3, random_state=0, backend="numpy"),
        {"alpha": [1e-4, 1e-2]}, cv=2,
    )
    search.set_callbacks(rec).fit(X, y)
    # 2 candidates x 2 folds + the refit, 3 epochs each
    assert len(rec.ends("epoch")) == (2 * 2 + 1) * 3
    assert len(rec.ends("fit")) == 5


def test_progress_bar_runs(digits, capsys):
    pytest.importorskip("rich", reason="ProgressBar needs rich (fastbp[progress])")
    from sklearn.callback import ProgressBar

    X, y = digits
    for solver in ("adam", "lbfgs"):
        clf = BPClassifier((16,), solver=solver, max_iter=5, random_state=0,
                           backend="numpy")
        clf.set_callbacks(ProgressBar()).fit(X, y)
        assert clf.n_iter_ == 5
    out = capsys.readouterr().out
    assert "BPClassifier" in out


def test_text_progress_without_rich(digits):
    X, y = digits
    buf = io.StringIO()
    clf = BPClassifier((16,), max_iter=3, random_state=0, backend="numpy")
    clf.set_callbacks(TextProgress(stream=buf)).fit(X, y)
    lines = buf.getvalue().splitlines()
    assert lines[0].strip().startswith("BPClassifier epoch 1/3  loss")
    assert len(lines) == 3


def test_a_callback_can_stop_lbfgs(digits):
    class StopLbfgs(Recorder):
        def on_fit_task_end(self, estimator, context, **kwargs):
            return context.task_name == "lbfgs-iter" and context.task_id >= 2

    X, y = digits
    clf = BPClassifier((8,), solver="lbfgs", max_iter=50, random_state=0, backend="numpy")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # a requested stop is no failure
        clf.set_callbacks(StopLbfgs()).fit(X, y)
    assert clf.n_iter_ == 3 == len(clf.loss_curve_)
