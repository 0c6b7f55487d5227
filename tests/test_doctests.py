"""The ``Examples`` of the public docstrings run and print what they show
(the estimators', which show each of fastbp's own options, and
``to_sklearn``'s). A line marked ``# doctest: +SKIP`` is not run."""

import doctest
import warnings

import pytest

import fastbp
from fastbp import interop

DOCSTRINGS = {
    "BPClassifier": fastbp.BPClassifier,
    "BPRegressor": fastbp.BPRegressor,
    "to_sklearn": interop.to_sklearn,
}


@pytest.mark.parametrize("name", list(DOCSTRINGS))
def test_docstring_examples_run(name):
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = finder.find(DOCSTRINGS[name], name, globs={})
    assert tests and tests[0].examples, f"{name} has no Examples"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning of short fits
        for test in tests:
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} example(s) of {name} failed (see output above)"
