"""Backend selection: 'auto' falls back to NumPy with one warning, 'cython'
without the extension is an ImportError that says how to build it, and a
model predicts the same on either backend."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification

from fastbp import BPClassifier, backends
from fastbp import _numpy_backend


@pytest.fixture
def no_extension(monkeypatch):
    def missing():
        raise ImportError("No module named 'fastbp._cython_backend'")

    monkeypatch.setattr(backends, "_import_cython", missing)
    monkeypatch.setattr(backends, "_warned_fallback", False)


def test_numpy_backend_is_the_reference_module():
    assert backends.get_backend("numpy") is _numpy_backend
    assert backends.get_backend("numpy").name == "numpy"


def test_unknown_backend_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="backend must be one of"):
        backends.get_backend("fortran")


def test_cython_without_extension_raises_import_error_with_build_hint(no_extension):
    with pytest.raises(ImportError, match="pip install"):
        backends.get_backend("cython")


def test_auto_without_extension_warns_once_and_uses_numpy(no_extension):
    with pytest.warns(RuntimeWarning, match="Falling back to the NumPy backend"):
        assert backends.get_backend("auto") is _numpy_backend
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert backends.get_backend("auto") is _numpy_backend


def test_estimator_records_the_fallback_in_backend_(no_extension):
    X, y = make_classification(60, 5, random_state=0)
    with pytest.warns(RuntimeWarning, match="Falling back"):
        clf = BPClassifier((4,), max_iter=3, random_state=0).fit(X, y)
    assert clf.backend_ == "numpy"
    with pytest.raises(ImportError, match="pip install"):
        clf.set_params(backend="cython").predict(X)


@pytest.mark.usefixtures("require_cython")
def test_auto_uses_the_extension_when_built():
    assert backends.get_backend("auto").name == "cython"


@pytest.mark.parametrize("fit_on, predict_on", [("cython", "numpy"), ("numpy", "cython")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.usefixtures("require_cython")
def test_model_predicts_the_same_on_the_other_backend(fit_on, predict_on, dtype):
    X, y = make_classification(200, 8, n_classes=3, n_informative=5, random_state=1)
    X = X.astype(dtype)
    clf = BPClassifier((16, 8), max_iter=20, random_state=0, backend=fit_on)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    proba = clf.predict_proba(X)
    labels = clf.predict(X)
    clf.set_params(backend=predict_on)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(clf.predict_proba(X), proba, rtol=rtol, atol=rtol * 1e-2)
    np.testing.assert_array_equal(clf.predict(X), labels)
