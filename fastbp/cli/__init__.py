"""The command line: ``python -m fastbp [train|predict|bench] ...``.

One module per subcommand (:mod:`.train`, :mod:`.predict`; ``bench`` is
:func:`fastbp._bench.main`), CSV reading in :mod:`.data`, option types and
checks in :mod:`.options`, timing and result lines in :mod:`.report`.
``train`` is the default: ``python -m fastbp`` and ``python -m fastbp --csv
...`` train.

Every user error is one line on stderr, ``fastbp: error: ...``, with exit
code 2, before any work is done.
"""

import argparse
import sys

from .options import EXIT_USAGE, Parser, UsageError

__all__ = ["EXIT_USAGE", "UsageError", "build_parser", "main"]

PROG = "python -m fastbp"
COMMANDS = ("train", "predict", "bench")

_EXAMPLES = """\
examples:
  python -m fastbp                                   # the main job: digits
  python -m fastbp --hidden 256,128 --epochs 30 --backend numpy
  python -m fastbp --csv data.csv --target label --drop id --save model.joblib
  python -m fastbp predict model.joblib new.csv --id id --output preds.csv
  python -m fastbp bench --quick"""


def build_parser():
    """The argument parser of ``python -m fastbp`` (see ``--help``).

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    from . import predict, train

    p = Parser(
        prog=PROG,
        description=(
            "Train a fastbp multilayer perceptron and compare it with the NumPy\n"
            "backend and scikit-learn's MLP (train, the default), apply a saved\n"
            "model to a CSV file (predict), or run the benchmarks (bench).\n"
            "The options of each: python -m fastbp SUBCOMMAND --help."
        ),
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", metavar="{train,predict,bench}",
                           title="subcommands")
    t = sub.add_parser(
        "train", prog=f"{PROG} [train]",
        help="(default) train, evaluate on a held-out split, compare, save",
        description=(
            "Train a fastbp multilayer perceptron, evaluate it on a held-out split,\n"
            "and time it against fastbp's NumPy backend and scikit-learn's MLP.\n"
            "Without --csv the data are scikit-learn's bundled handwritten digits\n"
            "(8x8 images, 10 classes)."
        ),
        epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_arguments(t)
    t.set_defaults(run=train.run)
    pr = sub.add_parser(
        "predict", prog=f"{PROG} predict",
        help="apply a saved model to a CSV file, write the predictions as CSV",
        description="Apply a model saved by `python -m fastbp train --save` to a CSV "
                    "file; the predictions keep the rows' order.",
    )
    predict.add_arguments(pr)
    pr.set_defaults(run=predict.run)
    sub.add_parser("bench", prog=f"{PROG} bench", add_help=False,
                   help="the benchmark suite: python -m fastbp bench --help")
    return p


def _bench(argv):
    try:
        from .._bench import main as bench_main
    except ImportError as exc:
        print(f"fastbp: error: the benchmark runner fastbp._bench is not available ({exc})",
              file=sys.stderr)
        return EXIT_USAGE
    return bench_main(argv)


def main(argv=None):
    """Entry point of ``python -m fastbp``.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments (``sys.argv[1:]`` when None).

    Returns
    -------
    code : int
        0 on success, 2 for a usage error (bad option, bad file).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        return _bench(argv[1:])
    if not argv or argv[0] not in COMMANDS + ("-h", "--help"):
        argv.insert(0, "train")  # train is the default subcommand
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except UsageError as exc:
        print(f"fastbp: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("fastbp: interrupted", file=sys.stderr)
        return 130
