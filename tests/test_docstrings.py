"""numpydoc docstrings for the public API, and the HTML repr's doc link.

Every name in ``fastbp.__all__`` and every public method of its classes
passes numpydoc's validation, except for these checks:

* RT02 (a single return value is named): scikit-learn's convention names
  it (``self : object``), and fastbp follows scikit-learn.
* ES01, SA01, EX01 (extended summary, See Also, Examples) for methods only:
  classes and functions have them; a method like ``predict`` is described
  by its summary, parameters and return value, as in scikit-learn (whose
  own inherited methods, ``get_params`` etc., have none either).

The classes' ``Attributes`` sections list exactly the fitted attributes,
each with a description.
"""

import inspect
import re
from pathlib import Path

import numpy as np
import pytest

import fastbp

numpydoc_validate = pytest.importorskip("numpydoc.validate", reason="numpydoc not installed")
from numpydoc.docscrape import ClassDoc  # noqa: E402

IGNORED = {"RT02"}
IGNORED_FOR_METHODS = {"ES01", "SA01", "EX01"}



def _public_api():
    for name in fastbp.__all__:
        obj = getattr(fastbp, name)
        yield f"fastbp.{name}", None
        if inspect.isclass(obj):
            for method, member in inspect.getmembers(obj):
                if not method.startswith("_") and callable(member):
                    yield f"fastbp.{name}.{method}", method


def _params():
    for qualname, method in _public_api():
        yield pytest.param(qualname, method, id=qualname)


@pytest.mark.parametrize("qualname, method", list(_params()))
def test_numpydoc_validation(qualname, method):
    result = numpydoc_validate.validate(qualname)
    errors = [
        f"{code}: {message}"
        for code, message in result["errors"]
        if code not in IGNORED and not (method and code in IGNORED_FOR_METHODS)
    ]
    assert not errors, f"{qualname}:\n" + "\n".join(errors)


def _fitted_attributes(est, X, y):
    est.fit(X, y)
    return {name for name in vars(est) if name.endswith("_") and not name.startswith("_")}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("cls", [fastbp.BPClassifier, fastbp.BPRegressor])
def test_attributes_section_lists_every_fitted_attribute(cls):
    rng = np.random.RandomState(0)
    X = rng.rand(60, 3)
    y = (X[:, 0] > 0.5).astype(int) if cls is fastbp.BPClassifier else X[:, 0]
    fitted = set()
    for params in ({"solver": "lbfgs"}, {"solver": "adam"}, {"early_stopping": True}):
        est = cls(hidden_layer_sizes=(3,), max_iter=3, random_state=0, backend="numpy",
                  **params)
        fitted |= _fitted_attributes(est, X, y)
    documented = {attr.name for attr in ClassDoc(cls)["Attributes"]}
    # feature_names_in_ is set only for X with string column names (a DataFrame).
    assert fitted <= documented, f"undocumented: {sorted(fitted - documented)}"
    assert documented - fitted <= {"feature_names_in_"}, (
        f"documented but never set: {sorted(documented - fitted - {'feature_names_in_'})}")


@pytest.mark.parametrize("cls", [fastbp.BPClassifier, fastbp.BPRegressor])
def test_every_attribute_has_a_description(cls):
    attributes = ClassDoc(cls)["Attributes"]
    assert attributes
    bare = [attr.name for attr in attributes if not "".join(attr.desc).strip()]
    assert not bare, f"{cls.__name__} attributes with only a type: {bare}"


# ----------------------------------------------------------- HTML repr link


@pytest.mark.parametrize("cls", [fastbp.BPClassifier, fastbp.BPRegressor])
def test_html_repr_links_to_the_readme_section(cls):
    from sklearn.utils import estimator_html_repr

    from fastbp._doc_link import readme_url

    link = f"{readme_url()}#{cls.__name__.lower()}"
    assert cls()._get_doc_link() == link
    assert f'href="{link}"' in estimator_html_repr(cls())


@pytest.mark.parametrize("cls", [fastbp.BPClassifier, fastbp.BPRegressor])
def test_readme_has_the_anchor_the_html_repr_links_to(cls):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    anchor = cls()._get_doc_link().rpartition("#")[2]
    assert re.search(rf'<a id="{anchor}"></a>', readme), anchor


def test_doc_link_uses_the_project_url_from_the_metadata(monkeypatch):
    from fastbp import _doc_link

    class Meta:
        def __init__(self, urls):
            self.urls = urls

        def get_all(self, key):
            return self.urls if key == "Project-URL" else None

        def get(self, key):
            return None

    def metadata(urls):
        _doc_link.readme_url.cache_clear()
        monkeypatch.setattr(_doc_link.metadata, "metadata", lambda name: Meta(urls))
        return _doc_link.readme_url()

    try:
        assert metadata([]) == _doc_link.PYPI_URL
        assert metadata(["Repository, https://example.org/fastbp",
                         "Documentation, https://docs.example.org/fastbp/"]
                        ) == "https://docs.example.org/fastbp/"
        assert metadata(["Source, https://example.org/fastbp"]) == "https://example.org/fastbp"
    finally:
        _doc_link.readme_url.cache_clear()
