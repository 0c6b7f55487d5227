"""fastbp.plot_loss_curve (issue #5, point 2): matplotlib is an optional extra."""

import sys
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import fastbp
from fastbp import BPClassifier, plot_loss_curve


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:500] / 16.0, y[:500]


@pytest.fixture
def fitted(digits):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return BPClassifier((16,), max_iter=12, early_stopping=True, n_iter_no_change=50,
                            random_state=0, backend="numpy").fit(*digits)


def test_plot_is_public():
    assert "plot_loss_curve" in fastbp.__all__


def test_missing_matplotlib_names_the_extra(fitted, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"fastbp\[plot\]"):
        plot_loss_curve(fitted)


def test_draws_loss_and_validation(fitted):
    mpl = pytest.importorskip("matplotlib", reason="matplotlib not installed")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    ax = plot_loss_curve(fitted)
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_ydata(), fitted.loss_curve_)
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 13))
    assert ax.get_xlabel() == "epoch"
    (vline,) = ax.validation_ax_.get_lines()
    np.testing.assert_allclose(vline.get_ydata(), fitted.validation_scores_)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("training loss" in t for t in labels) and "validation score" in labels
    plt.close("all")


def test_given_ax_pipeline_and_lbfgs(digits):
    mpl = pytest.importorskip("matplotlib", reason="matplotlib not installed")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe = make_pipeline(StandardScaler(),
                             BPClassifier((8,), solver="lbfgs", max_iter=7,
                                          random_state=0, backend="numpy")).fit(*digits)
    fig, ax = plt.subplots()
    out = plot_loss_curve(pipe, ax=ax, label="lbfgs")
    assert out is ax
    assert len(ax.get_lines()) == 1  # no validation scores without early stopping
    assert ax.get_xlabel() == "iteration"
    assert not hasattr(ax, "validation_ax_")
    plt.close(fig)


def test_not_fitted():
    pytest.importorskip("matplotlib", reason="matplotlib not installed")
    with pytest.raises(NotFittedError, match="loss_curve_"):
        plot_loss_curve(BPClassifier())
