"""``python -m fastbp`` (issue #5, point 1): the main job and its errors."""

import csv
import os
import subprocess
import sys

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris

import fastbp
from fastbp import __main__ as cli
from fastbp.backends import cython_available

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastbp.__file__)))


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_csv(path, header, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        if header is not None:
            w.writerow(header)
        w.writerows(rows)
    return str(path)


@pytest.fixture
def iris_csv(tmp_path):
    d = load_iris()
    rows = [list(x) + [d.target_names[t]] for x, t in zip(d.data, d.target)]
    return write_csv(tmp_path / "iris.csv", list(d.feature_names) + ["species"], rows)


def test_help_lists_subcommands_and_options(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in ["train", "bench", "--hidden", "--activation", "--solver", "--batch-size",
                 "--epochs", "--backend", "--dtype", "--csv", "--target", "--save"]:
        assert word in out, word


def test_default_job_on_digits(capsys):
    code, out, err = run(capsys, "--epochs", "3", "--no-progress")
    assert code == 0, err
    assert "digits" in out
    backend = "cython" if cython_available() else "numpy"
    assert f"fastbp ({backend})" in out
    assert "scikit-learn MLP" in out
    if backend == "cython":
        assert "fastbp (numpy)" in out  # the comparison with the NumPy backend
    rows = [line for line in out.splitlines() if "accuracy" in line]
    assert len(rows) == (3 if backend == "cython" else 2)
    for line in rows:
        acc = float(line.split("accuracy")[1].split()[0])
        assert 0.0 <= acc <= 1.0
        assert " s " in line  # a fit time


def test_options_reach_the_model(capsys, tmp_path):
    path = tmp_path / "m.joblib"
    code, out, err = run(capsys, "--hidden", "12,6", "--activation", "tanh",
                         "--solver", "sgd", "--batch-size", "64", "--epochs", "2",
                         "--backend", "numpy", "--dtype", "float64", "--no-compare",
                         "--no-progress", "--save", str(path))
    assert code == 0, err
    model = joblib.load(path)
    assert model.hidden_layer_sizes == (12, 6)
    assert model.activation == "tanh" and model.solver == "sgd"
    assert model.batch_size == 64 and model.n_iter_ == 2
    assert model.backend_ == "numpy" and model.coefs_[0].dtype == np.float64
    assert "scikit-learn MLP" not in out


def test_progress_bar(capsys):
    code, out, err = run(capsys, "--epochs", "2", "--no-compare", "--backend", "numpy")
    assert code == 0
    assert "BPClassifier" in out + err


def test_progress_without_rich(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "rich", None)
    code, out, err = run(capsys, "--epochs", "2", "--no-compare", "--backend", "numpy")
    assert code == 0
    assert "BPClassifier epoch 2/2" in err


def test_csv_classification_save_and_load(capsys, tmp_path, iris_csv):
    path = tmp_path / "iris.joblib"
    code, out, err = run(capsys, "--csv", iris_csv, "--target", "species",
                         "--epochs", "50", "--save", str(path), "--no-progress")
    assert code == 0, err
    assert "iris.csv" in out and "3 classes" in out
    model = joblib.load(path)  # a Pipeline(StandardScaler, BPClassifier)
    X = load_iris().data
    assert set(model.predict(X)) <= {"setosa", "versicolor", "virginica"}
    assert (model.predict(X) == np.array(load_iris().target_names)[load_iris().target]).mean() > 0.8


def test_csv_regression(capsys, tmp_path):
    d = load_diabetes()
    rows = [list(x) + [t + 0.25] for x, t in zip(d.data[:200], d.target[:200])]
    path = write_csv(tmp_path / "d.csv", list(d.feature_names) + ["y"], rows)
    code, out, err = run(capsys, "--csv", path, "--target", "y", "--epochs", "5",
                         "--no-compare", "--no-progress")
    assert code == 0, err
    assert "BPRegressor" in out and "R^2" in out


def test_plot_option(capsys, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib not installed")
    png = tmp_path / "curve.png"
    code, out, err = run(capsys, "--epochs", "3", "--no-compare", "--no-progress",
                         "--backend", "numpy", "--plot", str(png))
    assert code == 0, err
    assert png.stat().st_size > 1000


BAD_OPTIONS = [
    ["--hidden", "0"],
    ["--hidden", "ten"],
    ["--activation", "swish"],
    ["--solver", "rmsprop"],
    ["--batch-size", "-3"],
    ["--epochs", "zero"],
    ["--backend", "gpu"],
    ["--dtype", "float16"],
    ["--frobnicate"],
    ["--target", "y"],
    ["--csv", "x.csv"],
    ["train", "extra-positional"],
]


def _assert_usage_error(code, out, err, needle=None):
    assert code == 2
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fastbp: error: ")
    if needle:
        assert needle in lines[0]


@pytest.mark.parametrize("argv", BAD_OPTIONS, ids=" ".join)
def test_bad_options(capsys, argv):
    code, out, err = run(capsys, *argv)
    _assert_usage_error(code, out, err)


@pytest.mark.parametrize("case, needle", [
    ("empty", "is empty"),
    ("blank_lines", "is empty"),
    ("missing_target", "target column 'label' not in"),
    ("non_numeric", "non-numeric value 'abc'"),
    ("header_only", "no data rows"),
    ("missing_value", "missing value in feature column 'b'"),
    ("nan_value", "missing or infinite value"),
    ("ragged", "fields, the header has"),
    ("single_class", "single class"),
    ("no_file", "not found"),
])
def test_bad_csv(capsys, tmp_path, case, needle):
    header = ["a", "b", "label"]
    good = [[1, 2, "x"], [3, 4, "y"], [5, 6, "x"], [7, 8, "y"], [1, 1, "x"], [2, 2, "y"]]
    p = tmp_path / "data.csv"
    if case == "empty":
        p.write_text("")
    elif case == "blank_lines":
        p.write_text("\n\n  \n")
    elif case == "missing_target":
        write_csv(p, ["a", "b", "c"], good)
    elif case == "non_numeric":
        write_csv(p, header, good[:2] + [[1, "abc", "x"]] + good[2:])
    elif case == "header_only":
        write_csv(p, header, [])
    elif case == "missing_value":
        write_csv(p, header, good + [[1, "", "x"]])
    elif case == "nan_value":
        write_csv(p, header, good + [[1, "nan", "x"]])
    elif case == "ragged":
        write_csv(p, header, good + [[1, 2]])
    elif case == "single_class":
        write_csv(p, header, [[i, i, "x"] for i in range(6)])
    elif case == "no_file":
        p = tmp_path / "nope.csv"
    code, out, err = run(capsys, "--csv", str(p), "--target", "label", "--no-progress")
    _assert_usage_error(code, out, err, needle)


def test_bench_dispatch(monkeypatch):
    import fastbp._bench as bench

    seen = []
    monkeypatch.setattr(bench, "main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["bench", "--quick", "--x"]) == 0
    assert seen == [["--quick", "--x"]]


def test_real_entry_point(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    bad = subprocess.run([sys.executable, "-m", "fastbp", "--epochs", "-1"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("fastbp: error:")
    assert "Traceback" not in bad.stderr
