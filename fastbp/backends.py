"""Backend selection: 'auto' | 'cython' | 'numpy'.

A backend is a module with the same three functions on the flat buffer::

    forward(net, params, X, logits=False) -> Z_L (or H_L)
    loss_grad(net, params, X, Y, sample_weight=None, alpha=0.0, grad_out=None)
        -> (loss, grad)
    train_epoch(net, params, opt_state, X, Y, sample_weight, order,
                batch_size, hyper) -> mean_loss

and a ``name`` attribute. The estimators only ever talk to this contract.
Only ``train_epoch`` applies dropout: ``hyper.dropout`` holds one rate per
hidden layer (empty or all zero: none) and ``hyper.dropout_seed`` the seed the
epoch's masks are drawn from (each backend with its own generator); the
predict path and ``loss_grad`` (L-BFGS, ``fastbp.backprop``) never drop units.

Both backends check and coerce these arguments with the same code
(``fastbp._backend_input``, so a bad argument gets the same error from
either) and drive each call in chunks inside one
``fastbp._blas_threads.blas_session``, which picks the BLAS thread count
before every chunk; Ctrl-C stops a call between two chunks.
"""

import warnings

from . import _numpy_backend

BACKENDS = ("auto", "cython", "numpy")

_BUILD_HINT = (
    "The compiled backend of fastbp is not available ({err}). Reinstall fastbp "
    "from source with a C compiler present, e.g. `pip install --force-reinstall "
    "--no-deps -e .` in the source tree."
)

_warned_fallback = False


def _import_cython():
    from . import _cython_backend  # noqa: F401  (may raise ImportError)

    return _cython_backend


def cython_available():
    try:
        _import_cython()
    except ImportError:
        return False
    return True


def get_backend(name):
    """Return the backend module for ``name``.

    'auto' uses the compiled backend when it imports and falls back to NumPy
    with a single warning per process otherwise; 'cython' raises ImportError
    when the extension is missing.
    """
    global _warned_fallback
    if name == "numpy":
        return _numpy_backend
    if name == "cython":
        try:
            return _import_cython()
        except ImportError as exc:
            raise ImportError(_BUILD_HINT.format(err=exc)) from exc
    if name == "auto":
        try:
            return _import_cython()
        except ImportError as exc:
            if not _warned_fallback:
                _warned_fallback = True
                warnings.warn(
                    _BUILD_HINT.format(err=exc) + " Falling back to the NumPy backend.",
                    RuntimeWarning,
                    stacklevel=3,
                )
            return _numpy_backend
    raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}.")
