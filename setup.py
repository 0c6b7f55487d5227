"""Build the compiled backend.

``FASTBP_DEBUG=1 pip install .`` builds with Cython's bounds, wraparound and
initialisation checks on and without optimisation. Each mode has its own
Cython build directory and the extension is always regenerated, so flipping
the variable is never silently ignored by an incremental build.

The extension is optional: when it cannot be compiled (no C compiler, a
broken toolchain) the build prints a warning and installs the pure-Python
package, whose NumPy backend ``backend="auto"`` then uses. With
``FASTBP_REQUIRE_CYTHON=1`` (CI) or ``FASTBP_DEBUG=1`` a failed compilation
fails the install instead.
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError


def _flag(name):
    return os.environ.get(name, "0").strip() not in ("", "0", "false", "False")


DEBUG = _flag("FASTBP_DEBUG")
REQUIRED = DEBUG or _flag("FASTBP_REQUIRE_CYTHON")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
    "nonecheck": DEBUG,
    "embedsignature": True,
}

# Per compiler family. GCC and Clang: sqrt without errno lets the optimizer
# vectorize loops; no FMA contraction keeps the kernels' rounding identical
# to NumPy's. (Never -ffast-math: it breaks isfinite; never -march=native:
# the wheel must run elsewhere.) MSVC: /fp:precise never contracts to FMA.
COMPILE_ARGS = {
    "unix": (["-O0", "-g"] if DEBUG else ["-O3"]) + ["-fno-math-errno", "-ffp-contract=off"],
    "mingw32": (["-O0", "-g"] if DEBUG else ["-O3"]) + ["-fno-math-errno", "-ffp-contract=off"],
    "msvc": (["/Od", "/Zi"] if DEBUG else ["/O2"]) + ["/fp:precise"],
}

WARNING = """
********************************************************************************
WARNING: fastbp's compiled backend (fastbp._cython_backend) could not be built:
    {err}
fastbp is installed without it and runs on its NumPy backend (slower; the
results are the same). To build it, install a C compiler (gcc or clang; on
Windows "Microsoft C++ Build Tools") and reinstall fastbp. Set
FASTBP_REQUIRE_CYTHON=1 to make a failed build an error.
********************************************************************************
"""


_BUILD_ERRORS = (CCompilerError, ExecError, PlatformError, OSError)


class OptionalBuildExt(build_ext):
    """Compile with flags for the compiler actually used; a failure to compile
    skips the extension with a warning unless it is required."""

    def build_extensions(self):
        args = COMPILE_ARGS.get(self.compiler.compiler_type, [])
        for ext in self.extensions:
            ext.extra_compile_args = list(args) + list(ext.extra_compile_args or [])
        super().build_extensions()

    def run(self):
        # Cythonize here, not at import time: pip runs setup.py three times
        # per install (requirements, metadata, build) and only this one needs C.
        try:
            from Cython.Build import cythonize
        except ImportError as exc:
            if REQUIRED:
                raise
            _warn(exc)
            return
        generated = cythonize(
            self.extensions,
            compiler_directives=directives,
            build_dir=os.path.join("build", "cython-debug" if DEBUG else "cython-release"),
            force=True,
        )
        # keep setuptools' own Extension objects (finalize_options annotated
        # them); only their sources change, from .pyx to the generated .c
        sources = {ext.name: ext.sources for ext in generated}
        for ext in self.extensions:
            ext.sources = sources[ext.name]
        try:
            super().run()
        except _BUILD_ERRORS as exc:  # e.g. no compiler at all
            if REQUIRED:
                raise
            _warn(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except _BUILD_ERRORS as exc:  # the compiler or linker failed
            if not ext.optional:
                raise
            _warn(exc)


def _warn(exc):
    sys.stderr.write(WARNING.format(err=f"{type(exc).__name__}: {exc}"))


EXTENSIONS = [
    Extension(
        "fastbp._cython_backend",
        ["fastbp/_cython_backend.pyx"],
        include_dirs=["fastbp"],
        depends=["fastbp/_kernels.h"],
        define_macros=[("FASTBP_DEBUG", "1" if DEBUG else "0")],
        # an editable install then skips copying a module that wasn't built
        optional=not REQUIRED,
    )
]


setup(ext_modules=EXTENSIONS, cmdclass={"build_ext": OptionalBuildExt})
