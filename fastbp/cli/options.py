"""Option types and checks shared by the subcommands.

Every user error becomes :class:`UsageError`: one line on stderr, prefixed
``fastbp: error:``, exit code 2. Everything an option says is checked here,
before any data is read or any model is fitted.
"""

import argparse
import os

EXIT_USAGE = 2


class UsageError(Exception):
    """A user error: reported as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but every error is one line and exit code 2."""

    def error(self, message):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


# ------------------------------------------------------------ option types


def hidden_sizes(text):
    """``"256,128"`` -> ``(256, 128)``; every entry a positive integer."""
    parts = text.replace(" ", "").split(",")
    try:
        sizes = tuple(int(s) for s in parts)
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"wants positive layer sizes like 128 or 256,128; got {text!r}"
        )
    return sizes


def batch_size(text):
    if text == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"wants a positive integer or 'auto'; got {text!r}"
        )
    return value


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def fraction(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return value


def activation_names(text):
    """``"relu"`` -> ``"relu"``; ``"relu,tanh"`` -> ``["relu", "tanh"]`` (one
    per hidden layer); every name one of fastbp's hidden activations."""
    from ..activations import ALIASES, HIDDEN_ACTIVATIONS

    known = HIDDEN_ACTIVATIONS + tuple(ALIASES)
    names = [s.strip() for s in text.split(",")]
    bad = [n for n in names if n not in known]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown activation {bad[0]!r} in {text!r}; wants one of "
            f"{', '.join(known)}, or one per hidden layer like relu,tanh"
        )
    return names[0] if len(names) == 1 else names


def dropout_rates(text):
    """``"0.2"`` -> ``0.2``; ``"0.2,0.1"`` -> ``[0.2, 0.1]`` (one per hidden
    layer); every rate in [0, 1)."""
    rates = []
    for part in text.split(","):
        try:
            rate = float(part)
        except ValueError:
            rate = -1.0
        if not 0.0 <= rate < 1.0:
            raise argparse.ArgumentTypeError(
                f"wants rates in [0, 1), one or one per hidden layer like 0.2 or "
                f"0.2,0.1; got {text!r}"
            )
        rates.append(rate)
    return rates[0] if len(rates) == 1 else rates


def non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def column_list(text):
    """``"a,b"`` -> ``["a", "b"]``; no empty names."""
    names = [s.strip() for s in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(
            f"wants column names separated by commas, like a,b; got {text!r}"
        )
    return names


def categorical(text):
    """``auto`` or a list of column names."""
    return "auto" if text == "auto" else column_list(text)


# ------------------------------------------------------------ path checks


def check_writable(path, option):
    """Raise UsageError unless ``path`` can be created or overwritten."""
    if os.path.isdir(path):
        raise UsageError(f"{option} {path}: is a directory, not a file name")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"{option} {path}: the directory {parent} does not exist")
    target = path if os.path.exists(path) else parent
    if not os.access(target, os.W_OK):
        raise UsageError(f"{option} {path}: permission denied (not writable)")


def check_readable(path, what):
    if not os.path.exists(path):
        raise UsageError(f"{what} not found: {path}")
    if os.path.isdir(path) or not os.access(path, os.R_OK):
        raise UsageError(f"cannot read {what} {path}")


def check_plot_path(path):
    """``--plot``: matplotlib installed, a format it writes, a writable path."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise UsageError(
            '--plot needs matplotlib, which is not installed: pip install "fastbp[plot]"'
        ) from None
    if os.path.isdir(path):
        raise UsageError(f"--plot {path}: is a directory, not a file name")
    formats = sorted(FigureCanvasBase.get_supported_filetypes())
    suffix = os.path.splitext(path)[1].lstrip(".").lower()
    if suffix not in formats:
        raise UsageError(
            f"--plot {path}: unsupported image format {('.' + suffix) if suffix else '(none)'}; "
            f"use one of {', '.join('.' + f for f in formats)}"
        )
    check_writable(path, "--plot")


def check_save_path(path):
    """``--save``: ``.skops`` needs skops (and fastbp.persistence); a writable path."""
    if path.lower().endswith(".skops"):
        import importlib.util

        if importlib.util.find_spec("skops") is None:
            raise UsageError(f'--save {path}: the .skops format needs skops: pip install skops')
        try:
            from .. import persistence  # noqa: F401
        except ImportError:
            raise UsageError(
                f"--save {path}: this fastbp cannot write .skops files; use .joblib"
            ) from None
    check_writable(path, "--save")
