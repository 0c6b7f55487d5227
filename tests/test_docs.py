"""Every ```python block of README.md and docs/*.md runs, so the docs can't rot.

The blocks of one file run in order, in one namespace (a later block may use
an earlier block's names, as a reader would), in a fresh interpreter whose
working directory is a temporary directory, as ``__main__`` (so a
``if __name__ == "__main__":`` guard runs, as in a pasted script). Each block
is one test. A block that needs an optional package that is not installed
(dask, matplotlib, rich, ...), directly or through fastbp's own ImportError
with an install hint, is skipped with the package's name, as are the blocks
after it that use its names. A block preceded by the line
``<!-- docs-test: skip REASON -->`` (e.g. it needs a real cluster) is not
run; the reason is required.
"""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Packages a docs block may need that fastbp itself does not require.
OPTIONAL = {"dask", "distributed", "dask_ml", "matplotlib", "rich", "tqdm", "pandas",
            "skops", "skl2onnx", "onnxruntime", "onnx", "torch", "zarr"}

FENCE = re.compile(r"^(?P<indent>\s*)```(?P<info>[^`]*)$")
SKIP = re.compile(r"^\s*<!--\s*docs-test:\s*skip\b(?P<reason>.*?)-->\s*$")


def extract_blocks(text):
    """[(first code line number, code, skip reason or None)] of the python blocks."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, info = m.group("indent"), m.group("info").strip()
        j = i + 1
        while j < len(lines) and not re.match(rf"^{re.escape(indent)}```\s*$", lines[j]):
            j += 1
        if j == len(lines):
            raise ValueError(f"line {i + 1}: unclosed code fence")
        if info.split()[:1] == ["python"]:
            prev = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
            skip = SKIP.match(prev)
            reason = skip.group("reason").strip() if skip else None
            if skip and not reason:
                raise ValueError(f"line {i}: docs-test skip marker without a reason")
            code = textwrap.dedent("\n".join(lines[i + 1:j]))
            blocks.append((i + 2, code, reason))
        i = j + 1
    return blocks


RUNNER = r'''
import json as _docs_json
import os as _docs_os
import sys as _docs_sys
import traceback as _docs_traceback


def _docs_missing_optional(exc, optional):
    """The optional package whose absence caused ``exc`` (also when fastbp
    re-raised it with an install hint), else None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ModuleNotFoundError):
            top = (exc.name or "").split(".")[0]
            if top in optional:
                return top
        exc = exc.__cause__ or exc.__context__
    return None


def _docs_main():
    import __main__

    blocks = _docs_json.load(open(_docs_sys.argv[1]))
    optional = set(_docs_sys.argv[3].split(","))
    results, missing = [], None
    for block in blocks:
        if block["skip"] is not None:
            results.append({"status": "skip", "detail": block["skip"]})
            continue
        print(f"--- block at line {block['line']}", flush=True)
        code = "\n" * (block["line"] - 1) + block["code"]
        # As if the block were the script being run: worker processes started
        # with "spawn" (dask's Nanny, loky) re-run this file as __mp_main__,
        # so an unguarded block fails here as it would for a user.
        script = _docs_os.path.abspath(f"block_{block['line']}.py")
        with open(script, "w") as f:
            f.write(code)
        __main__.__file__ = script
        try:
            exec(compile(code, block["file"], "exec"), __main__.__dict__)
        except ImportError as exc:
            top = _docs_missing_optional(exc, optional)
            if top is None:
                results.append({"status": "fail", "detail": _docs_traceback.format_exc()})
                continue
            missing = top
            results.append({"status": "skip", "detail": f"needs {top} (not installed)"})
        except NameError as exc:
            if missing is None:
                results.append({"status": "fail", "detail": _docs_traceback.format_exc()})
                continue
            results.append({"status": "skip", "detail":
                            f"uses names of a block skipped for want of {missing}: {exc}"})
        except BaseException:
            results.append({"status": "fail", "detail": _docs_traceback.format_exc()})
        else:
            results.append({"status": "pass", "detail": ""})
    with open(_docs_sys.argv[2], "w") as f:
        _docs_json.dump(results, f)


if __name__ == "__main__":
    _docs_main()
'''


def run_doc_file(path, work):
    """Run the python blocks of ``path`` in a fresh interpreter in ``work``;
    {first code line: (status, detail)} with status pass, skip or fail."""
    work.mkdir(parents=True, exist_ok=True)
    blocks = [{"file": str(path), "line": line, "code": code, "skip": reason}
              for line, code, reason in extract_blocks(path.read_text())]
    (work / "blocks.json").write_text(json.dumps(blocks))
    (work / "docs_runner.py").write_text(RUNNER)
    # One BLAS thread: these tiny fits only lose time to BLAS threads
    # (on a loaded machine OpenBLAS's two threads made one 17x slower).
    env = dict(os.environ, MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "docs_runner.py", "blocks.json", "results.json",
         ",".join(sorted(OPTIONAL))],
        cwd=work, env=env, capture_output=True, text=True, timeout=900,
    )
    if proc.returncode != 0 or not (work / "results.json").exists():
        pytest.fail(f"the docs runner for {path.name} crashed:\n"
                    f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    results = json.loads((work / "results.json").read_text())
    return {b["line"]: (r["status"], r["detail"])
            for b, r in zip(blocks, results, strict=True)}


@pytest.fixture(scope="session")
def run_doc(tmp_path_factory):
    """run_doc_file, once per docs file and session."""
    cache = {}

    def run(path):
        if path not in cache:
            cache[path] = run_doc_file(path, tmp_path_factory.mktemp(path.stem))
        return cache[path]

    return run


def _cases():
    for path in DOC_FILES:
        for line, _, _ in extract_blocks(path.read_text()):
            yield pytest.param(path, line, id=f"{path.relative_to(ROOT)}:{line}")


@pytest.mark.parametrize("path, line", list(_cases()))
def test_docs_code_block_runs(run_doc, path, line):
    status, detail = run_doc(path)[line]
    if status == "skip":
        pytest.skip(detail)
    assert status == "pass", f"{path.name}, block at line {line}:\n{detail}"


def test_extract_blocks_finds_indented_and_marked_blocks():
    text = textwrap.dedent("""\
        Intro.

        ```python
        x = 1
        ```

        1. A step:

           ```python
           y = x + 1
           ```

        <!-- docs-test: skip needs a real cluster -->
        ```python
        connect()
        ```

        ```bash
        echo not python
        ```
    """)
    assert extract_blocks(text) == [
        (4, "x = 1", None),
        (10, "y = x + 1", None),
        (15, "connect()", "needs a real cluster"),
    ]
    with pytest.raises(ValueError, match="without a reason"):
        extract_blocks("<!-- docs-test: skip -->\n```python\npass\n```\n")
    with pytest.raises(ValueError, match="unclosed code fence"):
        extract_blocks("```python\npass\n")


def test_every_docs_file_is_collected():
    names = {p.relative_to(ROOT).as_posix() for p in DOC_FILES}
    assert {"README.md", "docs/design.md", "docs/distributed.md"} <= names
    # the README has python blocks, so the parametrization is not empty
    assert extract_blocks((ROOT / "README.md").read_text())


def test_runner_skips_only_for_missing_optional_packages(tmp_path):
    """A block needing a missing optional package is skipped (also behind
    fastbp-style ImportError hints), later blocks using its names too; any
    other error, a missing non-optional module included, fails."""
    doc = tmp_path / "example.md"
    doc.write_text(textwrap.dedent('''\
        ```python
        import not_a_real_optional_pkg
        ```

        ```python
        try:
            import not_a_real_optional_pkg
        except ImportError as exc:
            raise ImportError('pip install "fastbp[x]"') from exc
        ```

        ```python
        not_a_real_optional_pkg.run()
        ```

        ```python
        import not_a_real_required_pkg
        ```

        ```python
        assert 1 + 1 == 3
        ```

        ```python
        print("fine")
        ```
    '''))
    OPTIONAL.add("not_a_real_optional_pkg")
    try:
        results = run_doc_file(doc, tmp_path / "work")
    finally:
        OPTIONAL.discard("not_a_real_optional_pkg")
    statuses, details = zip(*(results[line] for line in sorted(results)), strict=True)
    assert statuses == ("skip", "skip", "skip", "fail", "fail", "pass")
    assert "not_a_real_required_pkg" in details[3]
    assert "AssertionError" in details[4]
