"""Installing fastbp without a working C compiler.

The source tree is copied to a temporary directory and installed with
``CC=/bin/false`` into a fresh virtual environment that borrows this
environment's packages (NumPy, SciPy, scikit-learn, setuptools, Cython) through
a ``.pth`` file: no build isolation, no downloads. The install must succeed
with a clear warning and give a working pure-Python package; with
``FASTBP_REQUIRE_CYTHON=1`` the same install must fail.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", "*.so", "*.pyd",
    "*.c", ".pytest_cache", ".hypothesis", ".benchmarks", "benchmarks", "examples", "docs",
)


def _no_compiler_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FASTBP_", "PIP_", "PYTHON"))}
    # /bin/false as compiler and linker: every compilation fails.
    env.update(CC="/bin/false", CXX="/bin/false", LDSHARED="/bin/false",
               PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.update(extra)
    return env


def _copy_source(dest):
    shutil.copytree(ROOT, dest, ignore=COPY_IGNORE)
    return dest


def _fresh_venv(path):
    """A venv without pip whose site-packages also sees this environment's."""
    venv.EnvBuilder(with_pip=False).create(path)
    python = path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    # Paths listed in a .pth file are appended to sys.path, but the .pth files
    # found there are not run: this environment's editable fastbp stays out.
    here = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(site, "_borrowed.pth").write_text("\n".join(sorted(here)) + "\n")
    return python, Path(site)


def _pip_install(python, source, env, editable=False):
    return subprocess.run(
        [python, "-m", "pip", "install", "-v", "--no-deps", "--no-build-isolation",
         "--ignore-installed", *(["-e"] if editable else []), str(source)],
        env=env, capture_output=True, text=True, timeout=900,
    )


@pytest.fixture(scope="module", params=["regular", "editable"])
def installed_without_compiler(request, tmp_path_factory):
    """(python, the imported package's directory, pip's result)"""
    pytest.importorskip("Cython", reason="the install test builds without isolation")
    tmp = tmp_path_factory.mktemp(request.param)
    source = _copy_source(tmp / "fastbp")
    python, site = _fresh_venv(tmp / "env")
    editable = request.param == "editable"
    result = _pip_install(python, source, _no_compiler_env(), editable=editable)
    return python, (source if editable else site) / "fastbp", result


def test_install_without_compiler_succeeds_with_a_warning(installed_without_compiler):
    python, package, result = installed_without_compiler
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "fastbp's compiled backend (fastbp._cython_backend) could not be built" in output
    assert "runs on its NumPy backend" in output
    # the compiler really was tried, with the flags for its family
    assert "/bin/false" in output and "-ffp-contract=off" in output
    assert (package / "__init__.py").is_file()
    assert not list(package.glob("_cython_backend*.so"))
    assert not list(package.glob("_cython_backend*.pyd"))
    # the type stubs ship with their marker
    assert (package / "py.typed").is_file()
    assert (package / "_cython_backend.pyi").is_file()


def test_pure_python_install_fits_on_numpy_with_one_warning(installed_without_compiler):
    python, package, result = installed_without_compiler
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    script = textwrap.dedent("""
        import importlib.metadata, warnings
        import numpy as np
        import fastbp
        from fastbp import BPClassifier

        rng = np.random.RandomState(0)
        X = rng.normal(size=(60, 4))
        y = (X[:, 0] + X[:, 1] > 0).astype(int)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            clf = BPClassifier((8,), solver="lbfgs", max_iter=50, random_state=0).fit(X, y)
            BPClassifier((8,), solver="lbfgs", max_iter=50, random_state=0).fit(X, y)
        fallback = [w for w in caught if "Falling back to the NumPy backend" in str(w.message)]
        print("FILE", fastbp.__file__)
        print("BACKEND", clf.backend_)
        print("FALLBACK_WARNINGS", len(fallback))
        print("SCORE", clf.score(X, y))
        print("VERSION", importlib.metadata.version("fastbp"), fastbp.__version__)
    """)
    # run from elsewhere, so only the installed package can be imported
    run = subprocess.run([python, "-c", script], cwd=python.parent, env=_no_compiler_env(),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    out = dict(line.split(" ", 1) for line in run.stdout.splitlines())
    assert Path(out["FILE"]).parent == package
    assert out["BACKEND"] == "numpy"
    assert out["FALLBACK_WARNINGS"] == "1"
    assert float(out["SCORE"]) > 0.9
    # the version is written once, in fastbp/__init__.py
    installed, module = out["VERSION"].split()
    assert installed == module


def test_install_without_compiler_fails_when_the_extension_is_required(tmp_path):
    pytest.importorskip("Cython", reason="the install test builds without isolation")
    python, _ = _fresh_venv(tmp_path / "env")
    source = _copy_source(tmp_path / "fastbp")
    result = _pip_install(python, source, _no_compiler_env(FASTBP_REQUIRE_CYTHON="1"))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "could not be built" not in output
    assert "/bin/false" in output
