"""The "?" documentation link of the estimators' HTML repr.

scikit-learn's HTML repr (Jupyter, ``sklearn.utils.estimator_html_repr``)
links each estimator to its documentation through the ``_doc_link_*`` class
attributes of ``sklearn.base.BaseEstimator``. fastbp's estimators link to
their section of the README, which carries one anchor per estimator
(``#bpclassifier``, ``#bpregressor``): on the project's documentation or
home page when the installed package's metadata names one
(``[project.urls]``), else on its PyPI page, which shows the README.
"""

import functools
from importlib import metadata

PYPI_URL = "https://pypi.org/project/fastbp/"

# [project.urls] labels tried in order for the page that shows the README.
_URL_LABELS = ("documentation", "homepage", "home", "repository", "source")


@functools.cache
def readme_url():
    """The URL of the page that shows fastbp's README."""
    try:
        meta = metadata.metadata("fastbp")
    except metadata.PackageNotFoundError:
        return PYPI_URL
    urls = {}
    for entry in meta.get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        urls.setdefault(label.strip().lower(), url.strip())
    if meta.get("Home-page"):
        urls.setdefault("homepage", meta["Home-page"].strip())
    for label in _URL_LABELS:
        if urls.get(label):
            return urls[label]
    return PYPI_URL


class ReadmeDocLinkMixin:
    """Point the HTML repr's documentation link at the README section of the
    estimator (scikit-learn's ``_doc_link_*`` hooks)."""

    _doc_link_module = "fastbp"
    _doc_link_template = "{readme_url}#{anchor}"

    def _doc_link_url_param_generator(self):
        return {"readme_url": readme_url(), "anchor": type(self).__name__.lower()}
