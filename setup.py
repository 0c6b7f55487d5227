"""Build the compiled backend.

``FASTBP_DEBUG=1 pip install .`` builds with Cython's bounds, wraparound and
initialisation checks on and without optimisation. Each mode has its own
Cython build directory and the extension is always regenerated, so flipping
the variable is never silently ignored by an incremental build.
"""

import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("FASTBP_DEBUG", "0").strip() not in ("", "0", "false", "False")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
    "nonecheck": DEBUG,
    "embedsignature": True,
}

if DEBUG:
    compile_args = ["-O0", "-g"]
else:
    compile_args = ["-O3"]
# sqrt without errno lets the optimizer loops vectorize; no FMA contraction
# keeps the kernels' rounding identical to NumPy's. (Never -ffast-math: it
# breaks isfinite; never -march=native: the wheel must run elsewhere.)
compile_args += ["-fno-math-errno", "-ffp-contract=off"]

extensions = [
    Extension(
        "fastbp._cython_backend",
        ["fastbp/_cython_backend.pyx"],
        include_dirs=[numpy.get_include(), "fastbp"],
        depends=["fastbp/_kernels.h"],
        define_macros=[
            ("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION"),
            ("FASTBP_DEBUG", "1" if DEBUG else "0"),
        ],
        extra_compile_args=compile_args,
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        build_dir=os.path.join("build", "cython-debug" if DEBUG else "cython-release"),
        force=True,
    ),
)
