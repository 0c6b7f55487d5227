"""Progress display for the CLI's fits.

On a terminal (and with rich installed) scikit-learn's
:class:`~sklearn.callback.ProgressBar` draws live bars that rich sizes to the
terminal. When stderr is not a terminal (a log file, CI, a pipe), nested bars
would be cut at 80 columns and repeated: then the display is plain text, one
line per stage (epoch, or L-BFGS iteration) of the fit.
"""

import sys


def progress_callbacks(enabled, stream=None):
    """The callbacks to set on the estimator that is fitted with a display.

    Parameters
    ----------
    enabled : bool
        False for ``--no-progress``: no callbacks.
    stream : file-like, default=None
        Where the display goes (``sys.stderr`` when None).

    Returns
    -------
    callbacks : list
    """
    if not enabled:
        return []
    stream = sys.stderr if stream is None else stream
    if _isatty(stream) and _isatty(sys.stdout):  # rich draws on stdout
        try:
            import rich  # noqa: F401
            from sklearn.callback import ProgressBar
        except ImportError:
            pass
        else:
            return [ProgressBar()]
    from .._callbacks import TextProgress

    return [TextProgress(stream=stream)]


def _isatty(stream):
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False
