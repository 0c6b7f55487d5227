"""``python -m fastbp bench``: the headline benchmarks in one process, and
the toolbox of the pytest-benchmark suite in ``benchmarks/`` (so that the
suite and the command time identical work).

* ``cases``: workload W, the implementations compared, data, FLOPs and the
  GEMM shapes of a case;
* ``measure``: timing (also of cases fitted interleaved), memory, threads,
  the GEMM peak and a case's GEMM floor;
* ``busy``: busy-looping processes for the busy-machine cases;
* ``torch_ref``: the PyTorch (CPU) reference loop;
* ``report``: tables, targets, reliability of a run, plot;
* ``cli``: the command (``main(argv)``).

Implementations compared: fastbp's compiled backend (``cython``), fastbp's
NumPy backend (``numpy``), scikit-learn's MLPClassifier (``sklearn``) and,
when importable, an equivalent PyTorch CPU loop (``torch``).
"""

from .busy import BusyLoad, n_cores
from .cases import (BACKEND_LABELS, BACKEND_ORDER, CONFIGS, CONTROLS, CONTROLS_BATCH,
                    FASTBP_ONLY, FLOP_NOTE, W_BATCHES, W_CLASSES, control_skip_reason,
                    W_FEATURES, W_HIDDEN, W_ROWS, _OneThread, gemm_flops, make_classifier,
                    make_dense, make_sparse, n_outputs_for, predict_flops, predict_gemms,
                    skip_reason, torch_available, train_flops, train_gemms, weight_shapes)
from .cli import main, run
from .measure import (fit_peak_memory, fitted_exponent, gemm_floor, gemm_peak,
                      gridsearch_threads, interleaved_fits, load_average, no_gc, quiet,
                      time_call, time_fit, two_fits_threads)
from .report import format_report, render_table

__all__ = [
    "BACKEND_LABELS", "BACKEND_ORDER", "BusyLoad", "CONFIGS", "CONTROLS", "CONTROLS_BATCH",
    "FASTBP_ONLY", "FLOP_NOTE", "W_BATCHES", "control_skip_reason",
    "W_CLASSES", "W_FEATURES", "W_HIDDEN", "W_ROWS", "_OneThread", "fit_peak_memory",
    "fitted_exponent", "format_report", "gemm_flops", "gemm_floor", "gemm_peak",
    "gridsearch_threads", "interleaved_fits", "load_average", "main", "make_classifier",
    "make_dense",
    "make_sparse", "n_cores", "n_outputs_for", "no_gc", "predict_flops", "predict_gemms",
    "quiet", "render_table", "run", "skip_reason", "time_call", "time_fit",
    "torch_available", "train_flops", "train_gemms", "two_fits_threads", "weight_shapes",
]
