"""``python -m fastbp``: the subcommands, the main job, the progress display
and every user error (one line, exit code 2, before any training)."""

import csv
import os
import subprocess
import sys

import joblib
import numpy as np
import pytest

import fastbp
from fastbp import __main__ as entry
from fastbp import cli
from fastbp.backends import cython_available

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastbp.__file__)))


def run(capsys, *argv):
    code = entry.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_csv(path, header, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        if header is not None:
            w.writerow(header)
        w.writerows(rows)
    return str(path)


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exc:
        entry.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in ["train", "predict", "bench", "default"]:
        assert word in out, word


def test_train_help_lists_options(capsys):
    with pytest.raises(SystemExit) as exc:
        entry.main(["train", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in ["--hidden", "--activation", "--solver", "--batch-size", "--epochs",
                 "--backend", "--dtype", "--csv", "--target", "--features", "--drop",
                 "--categorical", "--task", "--save", "--plot", "--repeat"]:
        assert word in out, word


def test_choices_come_from_the_package_tables():
    from fastbp.activations import ALIASES, HIDDEN_ACTIVATIONS
    from fastbp.backends import BACKENDS

    train = next(a for a in cli.build_parser()._subparsers._group_actions[0].choices.values()
                 if a.prog.endswith("[train]"))
    by_dest = {a.dest: a for a in train._actions}
    parse = by_dest["activation"].type
    for name in set(HIDDEN_ACTIVATIONS) | set(ALIASES):   # every name, alone or in a list
        assert parse(name) == name and parse(f"relu,{name}") == ["relu", name]
        assert name in by_dest["activation"].help
    with pytest.raises(Exception, match="unknown activation 'mish'"):
        parse("mish")
    assert tuple(by_dest["backend"].choices) == BACKENDS
    assert set(by_dest["solver"].choices) == {"adam", "sgd", "lbfgs"}


def test_default_job_on_digits(capsys):
    code, out, err = run(capsys, "--epochs", "3", "--no-progress", "--repeat", "2")
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
        assert "s median (" in line and "2 fits)" in line  # median and range of 2 fits
    assert f"fastbp ({backend}) fits" in out and "than scikit-learn MLP (median times)" in out


def test_train_is_the_default_subcommand(capsys, monkeypatch):
    seen = []
    monkeypatch.setattr(cli.train, "run", lambda args: seen.append(args) or 0)
    assert entry.main(["--epochs", "3"]) == 0
    assert entry.main(["train", "--epochs", "4"]) == 0
    assert [a.epochs for a in seen] == [3, 4]


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
    assert not hasattr(model, "_skl_callbacks")  # the progress display is not saved
    assert "scikit-learn MLP" not in out


def test_per_layer_activations_dropout_and_slope_reach_the_model(capsys, tmp_path):
    path = tmp_path / "m.joblib"
    code, out, err = run(capsys, "--hidden", "12,6", "--activation", "leaky_relu,swish",
                         "--negative-slope", "0.2", "--dropout", "0.1,0", "--epochs", "2",
                         "--backend", "numpy", "--no-progress", "--repeat", "1",
                         "--save", str(path))
    assert code == 0, err
    model = joblib.load(path)
    assert model.activation == ["leaky_relu", "swish"]
    assert model.negative_slope == 0.2 and model.dropout == [0.1, 0.0]
    assert "leaky_relu,swish negative_slope=0.2 dropout=0.1,0" in out
    # scikit-learn's MLP has one activation for every layer: left out, saying why
    assert "scikit-learn MLP: skipped (it applies one activation to every hidden layer" in out


def test_dropout_leaves_scikit_learn_out_of_the_comparison(capsys):
    code, out, err = run(capsys, "--hidden", "12", "--dropout", "0.2", "--epochs", "2",
                         "--no-progress", "--repeat", "1")
    assert code == 0, err
    assert "scikit-learn MLP: skipped (no dropout in scikit-learn)" in out
    code, out, err = run(capsys, "--hidden", "12,6", "--activation", "tanh,tanh", "--epochs", "2",
                         "--no-progress", "--repeat", "1")
    assert code == 0, err
    assert "scikit-learn MLP  " in out or "scikit-learn MLP " in out  # one activation: compared
    assert "skipped" not in out


def test_progress_bar_prints_one_line_per_epoch_when_not_a_terminal(capsys):
    code, out, err = run(capsys, "--epochs", "3", "--no-compare", "--backend", "numpy")
    assert code == 0, err
    lines = [line for line in err.splitlines() if "BPClassifier epoch" in line]
    assert [line.split()[2] for line in lines] == ["1/3", "2/3", "3/3"]
    assert "\r" not in err
    code, out, err = run(capsys, "--epochs", "3", "--no-compare", "--backend", "numpy",
                         "--no-progress")
    assert code == 0 and "epoch" not in err


def test_progress_bar_on_a_terminal_is_rich(monkeypatch):
    pytest.importorskip("rich")
    from sklearn.callback import ProgressBar

    from fastbp._callbacks import TextProgress
    from fastbp.cli.progress import progress_callbacks

    class Tty:
        def isatty(self):
            return True

        def write(self, text):
            pass

    monkeypatch.setattr(sys, "stdout", Tty())
    (cb,) = progress_callbacks(True, stream=Tty())
    assert isinstance(cb, ProgressBar)
    monkeypatch.setitem(sys.modules, "rich", None)
    (cb,) = progress_callbacks(True, stream=Tty())
    assert isinstance(cb, TextProgress)
    assert progress_callbacks(False, stream=Tty()) == []


def test_the_displayed_fit_is_not_timed(capsys, monkeypatch):
    """With the comparison on, the fit with the progress display is kept but
    only the interleaved fits without it are timed."""
    from fastbp.cli import report

    timed = []
    real = report.time_interleaved

    def spy(contenders, fit, repeat, on_round=None):
        def checked_fit(model):
            timed.append(getattr(cli.train.final_estimator(model), "_skl_callbacks", None))
            fit(model)
        return real(contenders, checked_fit, repeat, on_round)

    monkeypatch.setattr(report, "time_interleaved", spy)
    code, out, err = run(capsys, "--epochs", "2", "--repeat", "2", "--backend", "numpy")
    assert code == 0, err
    assert len(timed) == 2 * 2  # fastbp (numpy) and scikit-learn, twice each
    assert not any(timed)  # no callbacks on a timed fit


def test_plot_option(capsys, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib not installed")
    png = tmp_path / "curve.png"
    code, out, err = run(capsys, "--epochs", "3", "--no-compare", "--no-progress",
                         "--backend", "numpy", "--plot", str(png))
    assert code == 0, err
    assert png.stat().st_size > 1000


# ------------------------------------------------------------ every user error

HEADER = ["a", "b", "label"]
GOOD = [[1, 2, "x"], [3, 4, "y"], [5, 6, "x"], [7, 8, "y"], [1, 1, "x"], [2, 2, "y"]]


def _data_file(tmp_path, case):
    """A CSV file (or a path) for one bad-data case."""
    p = tmp_path / "data.csv"
    if case == "empty":
        p.write_text("")
    elif case == "blank_lines":
        p.write_text("\n\n  \n")
    elif case == "non_numeric":
        write_csv(p, HEADER, GOOD[:2] + [[1, "abc", "x"]] + GOOD[2:])
    elif case == "header_only":
        write_csv(p, HEADER, [])
    elif case == "missing_value":
        write_csv(p, HEADER, GOOD + [[1, "", "x"]])
    elif case == "nan_value":
        write_csv(p, HEADER, GOOD + [[1, "nan", "x"]])
    elif case == "ragged_short":
        write_csv(p, HEADER, GOOD + [[1, 2]])
    elif case == "ragged_long":
        write_csv(p, HEADER, GOOD + [[1, 2, "x", 9]])
    elif case == "single_class":
        write_csv(p, HEADER, [[i, i, "x"] for i in range(6)])
    elif case == "empty_target":
        write_csv(p, HEADER, GOOD + [[1, 2, ""]])
    elif case == "no_file":
        p = tmp_path / "nope.csv"
    elif case == "latin1":
        p.write_bytes("a,b,label\n1,2,caf\u00e9\n".encode("latin-1"))
    else:
        write_csv(p, HEADER, GOOD)
    return str(p)


def _model_file(tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump({"not": "a model"}, path)
    return str(path)


# (argv with {csv}, {dir}, {model} placeholders, data case, words of the message)
ERRORS = [
    # options
    (["--hidden", "0"], None, "--hidden"),
    (["--hidden", "ten"], None, "--hidden"),
    (["--hidden", "64,,32"], None, "argument --hidden: wants positive layer sizes"),
    (["--hidden", "64,"], None, "--hidden"),
    (["--activation", "mish"], None, "unknown activation 'mish'"),
    (["--activation", "relu,,tanh"], None, "unknown activation ''"),
    (["--hidden", "32,16", "--activation", "relu,tanh,elu"], None,
     "--activation gives 3 values for 2 hidden layers"),
    (["--dropout", "1"], None, "argument --dropout: wants rates in [0, 1)"),
    (["--dropout", "-0.1"], None, "argument --dropout"),
    (["--hidden", "32,16", "--dropout", "0.1,0.2,0.3"], None,
     "--dropout gives 3 values for 2 hidden layers"),
    (["--dropout", "0.2", "--solver", "lbfgs"], None, "--dropout needs --solver adam or sgd"),
    (["--negative-slope", "-1"], None, "argument --negative-slope: expected a number >= 0"),
    (["--solver", "rmsprop"], None, "invalid choice"),
    (["--batch-size", "-3"], None, "--batch-size"),
    (["--epochs", "zero"], None, "positive integer"),
    (["--learning-rate", "-1"], None, "positive number"),
    (["--repeat", "0"], None, "positive integer"),
    (["--backend", "gpu"], None, "invalid choice"),
    (["--dtype", "float16"], None, "invalid choice"),
    (["--frobnicate"], None, "unrecognized arguments"),
    (["--target", "y"], None, "--target needs --csv"),
    (["--csv", "{csv}"], "good", "--csv needs --target"),
    (["--drop", "a"], None, "--drop needs --csv"),
    (["--categorical", "a"], None, "--categorical needs --csv"),
    (["--task", "regress"], None, "--task needs --csv"),
    (["train", "extra-positional"], None, "unrecognized arguments"),
    (["--csv", "{csv}", "--target", "label", "--drop", "a,,b"], "good", "--drop"),
    # output paths: checked before the data are read
    (["--plot", "{dir}/curve.txt"], None, "unsupported image format .txt"),
    (["--plot", "{dir}/curve"], None, "unsupported image format (none)"),
    (["--plot", "{dir}/missing/curve.png"], None, "does not exist"),
    (["--plot", "{dir}"], None, "is a directory"),
    (["--save", "{dir}/missing/m.joblib"], None, "does not exist"),
    (["--save", "{dir}/readonly/m.joblib"], None, "not writable"),
    (["--save", "{dir}"], None, "is a directory"),
    # data
    (["--csv", "{csv}", "--target", "label"], "empty", "is empty"),
    (["--csv", "{csv}", "--target", "label"], "blank_lines", "is empty"),
    (["--csv", "{csv}", "--target", "c"], "good", "target column 'c' not in"),
    (["--csv", "{csv}", "--target", "label"], "non_numeric", "line 4: non-numeric value 'abc'"),
    (["--csv", "{csv}", "--target", "label"], "header_only", "no data rows"),
    (["--csv", "{csv}", "--target", "label"], "missing_value",
     "line 8: missing value in feature column 'b'"),
    (["--csv", "{csv}", "--target", "label"], "nan_value",
     "line 8: missing or infinite value 'nan'"),
    (["--csv", "{csv}", "--target", "label"], "ragged_short", "line 8: 2 fields, the header has 3"),
    (["--csv", "{csv}", "--target", "label"], "ragged_long", "line 8: 4 fields, the header has 3"),
    (["--csv", "{csv}", "--target", "label"], "single_class", "single class"),
    (["--csv", "{csv}", "--target", "label"], "empty_target", "line 8: empty target value"),
    (["--csv", "{csv}", "--target", "label"], "no_file", "CSV file not found"),
    (["--csv", "{csv}", "--target", "label"], "latin1", "cannot read CSV file"),
    (["--csv", "{csv}", "--target", "label", "--features", "a,zz"], "good",
     "--features: no column 'zz'"),
    (["--csv", "{csv}", "--target", "label", "--drop", "zz"], "good", "--drop: no column 'zz'"),
    (["--csv", "{csv}", "--target", "label", "--drop", "a,b"], "good", "no feature columns"),
    (["--csv", "{csv}", "--target", "label", "--features", "a,label"], "good", "is the target"),
    (["--csv", "{csv}", "--target", "label", "--features", "a", "--drop", "a"], "good",
     "in both --features and --drop"),
    (["--csv", "{csv}", "--target", "label", "--categorical", "zz"], "good",
     "--categorical: no column 'zz'"),
    (["--csv", "{csv}", "--target", "label", "--task", "regress"], "good",
     "--task regress: target column 'label' is not numeric"),
    # predict
    (["predict"], None, "the following arguments are required"),
    (["predict", "{dir}/none.joblib", "{csv}"], "good", "model file not found"),
    (["predict", "{model}", "{csv}"], "good", "holds a dict, not a model"),
    (["predict", "{model}", "{csv}", "--output", "{dir}/missing/p.csv"], "good",
     "--output"),
]


@pytest.mark.parametrize("argv, case, needle", ERRORS,
                         ids=[" ".join(a) + (f" [{c}]" if c else "") for a, c, _ in ERRORS])
def test_user_errors_are_one_line_exit_2_before_training(capsys, tmp_path, monkeypatch,
                                                        argv, case, needle):
    from fastbp import BPClassifier, BPRegressor

    fits = []
    for Est in (BPClassifier, BPRegressor):
        monkeypatch.setattr(Est, "fit", lambda self, *a, **k: fits.append(self))
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o500)
    if os.access(readonly, os.W_OK):  # root can write anywhere
        if "readonly" in " ".join(argv):
            pytest.skip("running as root: no unwritable directory")
    if case:
        pytest.importorskip("pandas")  # CSV files are read with pandas (the cli extra)
    fills = {"csv": _data_file(tmp_path, case) if case else "", "dir": str(tmp_path),
             "model": _model_file(tmp_path)}
    code, out, err = run(capsys, *[a.format(**fills) for a in argv])
    assert code == 2
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fastbp: error: ")
    assert needle in lines[0]
    assert fits == [] and out == ""  # nothing was trained or reported


def test_missing_matplotlib_gives_an_install_hint(capsys, tmp_path, monkeypatch):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out, err = run(capsys, "--plot", str(tmp_path / "c.png"), "--epochs", "1")
    assert code == 2
    assert err.strip() == ('fastbp: error: --plot needs matplotlib, which is not installed: '
                           'pip install "fastbp[plot]"')
    assert out == ""  # before any work


@pytest.mark.parametrize("subcommand", ["train", "predict"])
def test_missing_pandas_gives_an_install_hint(capsys, tmp_path, monkeypatch, subcommand):
    data = _data_file(tmp_path, "good")
    model = tmp_path / "m.joblib"
    joblib.dump(fastbp.BPClassifier(), model)
    argv = (["--csv", data, "--target", "label"] if subcommand == "train"
            else ["predict", str(model), data])
    for name in list(sys.modules):
        if name == "pandas" or name.startswith("pandas."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pandas", None)
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.strip() == ("fastbp: error: reading CSV files needs pandas, which is not "
                           'installed: pip install "fastbp[cli]"')


def test_bench_dispatch(monkeypatch):
    import fastbp._bench as bench

    seen = []
    monkeypatch.setattr(bench, "main", lambda argv: seen.append(argv) or 0)
    assert entry.main(["bench", "--quick", "--x"]) == 0
    assert seen == [["--quick", "--x"]]


def test_real_entry_point(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    bad = subprocess.run([sys.executable, "-m", "fastbp", "--epochs", "-1"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("fastbp: error:")
    assert "Traceback" not in bad.stderr


def test_digits_example_prints_held_out_accuracy_per_epoch(capsys, monkeypatch):
    import importlib.util

    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from fastbp import BPClassifier

    spec = importlib.util.spec_from_file_location(
        "digits_main_job", os.path.join(ROOT, "examples", "digits_main_job.py"))
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    monkeypatch.setattr(example, "progress", lambda: fastbp._callbacks.TextProgress())
    example.main(["--epochs", "2", "--repeat", "1"])
    out = capsys.readouterr().out
    line = next(s for s in out.splitlines() if "test accuracy per epoch" in s)
    first = line.split(":")[1].split()[0]
    assert "times as long as fastbp's" in out

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, stratify=y,
                                              random_state=0)
    one_epoch = BPClassifier(hidden_layer_sizes=(128,), max_iter=1, random_state=0,
                             early_stopping=True, n_iter_no_change=2).fit(X_tr, y_tr)
    assert first == f"{one_epoch.score(X_te, y_te):.3f}"  # the test split, not training
