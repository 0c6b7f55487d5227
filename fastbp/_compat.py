"""The one place that imports scikit-learn's private helpers.

They are private API: pinned by ``scikit-learn>=1.9`` in pyproject.toml.
"""

from sklearn.base import _fit_context  # noqa: F401
from sklearn.utils._param_validation import (  # noqa: F401
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
    validate_params,
)
from sklearn.utils.metaestimators import available_if  # noqa: F401
from sklearn.model_selection._split import _validate_shuffle_split  # noqa: F401
from sklearn.utils.multiclass import _check_partial_fit_first_call  # noqa: F401
from sklearn.utils.optimize import _check_optimize_result  # noqa: F401
from sklearn.utils.validation import (  # noqa: F401
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)
