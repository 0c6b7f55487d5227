"""``python -m fastbp``: the command line, see :mod:`fastbp.cli`."""

import contextlib
import sys

from .cli import main

if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
