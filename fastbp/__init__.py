"""fastbp: backpropagation done right and done fast.

Drop-in replacements for scikit-learn's MLPClassifier / MLPRegressor with
typed Cython kernels, plus the public ``backprop`` function.
"""

from .estimators import BPClassifier, BPRegressor
from .gradients import backprop

__all__ = ["BPClassifier", "BPRegressor", "backprop"]
__version__ = "0.1.0"
