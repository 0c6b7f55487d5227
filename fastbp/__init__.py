"""fastbp: backpropagation done right and done fast.

Drop-in replacements for scikit-learn's MLPClassifier / MLPRegressor with
typed Cython kernels, plus the public ``backprop`` function.
"""

from .estimators import BPClassifier, BPRegressor
from .gradients import backprop
from .persistence import load, save
from .plotting import plot_loss_curve  # matplotlib is imported on first call
from .interop import _register_onnx_when_imported

__all__ = ["BPClassifier", "BPRegressor", "backprop", "load", "plot_loss_curve", "save"]
__version__ = "0.1.0"

_register_onnx_when_imported()  # skl2onnx converters, see fastbp.interop
