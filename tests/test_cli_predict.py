"""train -> save -> predict on CSV files: the saved Pipeline takes the CSV's
columns by name (categorical one-hot encoded, pandas' index column ignored)
and ``python -m fastbp predict`` writes one prediction per row, in order."""

import warnings

import joblib
import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from fastbp import __main__ as entry  # noqa: E402


def _frame(n, seed):
    """Label: 'yes' when x + (colour == 'red') * 2 > 1 -- the colour matters."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    noise = rng.normal(size=n)
    label = np.where(x + 2.0 * (colour == "red") > 1.0, "yes", "no")
    return pd.DataFrame({"key": [f"row{seed}-{i}" for i in range(n)], "x": x,
                         "colour": colour, "noise": noise, "label": label})


@pytest.fixture
def trained(tmp_path, capsys):
    train = tmp_path / "train.csv"
    _frame(240, 0).to_csv(train)  # pandas' default index as the first column
    model = tmp_path / "model.joblib"
    code = entry.main(["--csv", str(train), "--target", "label", "--drop", "key",
                       "--epochs", "150", "--no-compare", "--no-progress",
                       "--save", str(model)])
    out, err = capsys.readouterr()
    assert code == 0, err
    return model, out


def test_training_reports_the_decisions(trained):
    _, out = trained
    assert "ignoring the first column: an unnamed 0..n-1 index" in out
    assert "one-hot encoding 1 categorical column: colour" in out
    assert "treating 'label' as classification: 2 distinct labels" in out


def test_saved_model_is_a_pipeline_on_the_csv_columns(trained):
    model, _ = trained
    pipe = joblib.load(model)
    assert list(pipe.feature_names_in_) == ["x", "colour", "noise"]
    assert pipe[-1].coefs_[0].dtype == np.float32  # trained in --dtype float32
    assert pipe[-1].n_features_in_ == 2 + 3  # x, noise and three colours
    new = _frame(60, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no feature-name warning
        pred = pipe.predict(new)
    assert (pred == new["label"]).mean() > 0.85  # the colour was learnt
    reordered = new[["noise", "label", "colour", "x", "key"]]
    np.testing.assert_array_equal(pipe.predict(reordered), pred)  # columns by name
    with pytest.raises(ValueError, match="columns are missing: {'colour'}"):
        pipe.predict(new.drop(columns="colour"))


def test_predict_writes_one_row_per_input_row_in_order(trained, tmp_path, capsys):
    model, _ = trained
    new = _frame(60, 2)
    new.to_csv(tmp_path / "new.csv")  # with an index column too
    preds = tmp_path / "preds.csv"
    code = entry.main(["predict", str(model), str(tmp_path / "new.csv"), "--id", "key",
                       "--output", str(preds)])
    assert code == 0, capsys.readouterr().err
    got = pd.read_csv(preds)
    assert list(got.columns) == ["key", "prediction"]
    assert list(got["key"]) == list(new["key"])
    expected = joblib.load(model).predict(new)
    np.testing.assert_array_equal(got["prediction"].to_numpy(), expected)


def test_predict_proba_columns_sum_to_one(trained, tmp_path, capsys):
    model, _ = trained
    _frame(20, 3).to_csv(tmp_path / "new.csv", index=False)
    code = entry.main(["predict", str(model), str(tmp_path / "new.csv"), "--proba"])
    out, err = capsys.readouterr()
    assert code == 0, err
    from io import StringIO

    got = pd.read_csv(StringIO(out))  # no --output: CSV on stdout
    assert list(got.columns) == ["prediction", "proba_no", "proba_yes"]
    assert len(got) == 20
    np.testing.assert_allclose(got["proba_no"] + got["proba_yes"], 1.0, atol=1e-5)
    assert (np.where(got["proba_yes"] > 0.5, "yes", "no") == got["prediction"]).all()


def test_predict_names_a_missing_column(trained, tmp_path, capsys):
    model, _ = trained
    _frame(10, 4).drop(columns="noise").to_csv(tmp_path / "new.csv", index=False)
    code = entry.main(["predict", str(model), str(tmp_path / "new.csv")])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.strip() == (f"fastbp: error: {tmp_path / 'new.csv'} lacks column 'noise' "
                           "that the model was trained on")


def test_regression_round_trip(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    frame["y"] = np.round(100 + 30 * X[:, 0] - 20 * X[:, 1]).astype(int)  # many integers
    frame.to_csv(tmp_path / "r.csv", index=False)
    model = tmp_path / "r.joblib"
    code = entry.main(["--csv", str(tmp_path / "r.csv"), "--target", "y", "--epochs", "200",
                       "--no-compare", "--no-progress", "--save", str(model)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "as regression:" in out and "distinct integer values" in out
    code = entry.main(["predict", str(model), str(tmp_path / "r.csv"), "-o",
                       str(tmp_path / "p.csv")])
    assert code == 0
    pred = pd.read_csv(tmp_path / "p.csv")["prediction"]
    assert np.corrcoef(pred, frame["y"])[0, 1] > 0.9  # in the target's units
    code = entry.main(["predict", str(model), str(tmp_path / "r.csv"), "--proba"])
    assert code == 2 and "is a regressor" in capsys.readouterr().err


@pytest.mark.parametrize("target, name", [("label", "BPClassifier"), ("y", "BPRegressor")])
def test_progress_display_on_csv_models_and_not_saved(tmp_path, capsys, target, name):
    frame = _frame(80, 5)
    frame["y"] = frame["x"] * 3.5 + 1.25
    frame.drop(columns="y" if target == "label" else "label").to_csv(tmp_path / "d.csv")
    model = tmp_path / "m.joblib"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = entry.main(["--csv", str(tmp_path / "d.csv"), "--target", target, "--drop",
                           "key", "--epochs", "2", "--no-compare", "--save", str(model)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert [str(w.message) for w in caught if "callbacks" in str(w.message)] == []
    assert f"{name} epoch 1/2" in err and f"{name} epoch 2/2" in err
    pipe = joblib.load(model)
    for part in [pipe, pipe[-1], getattr(pipe[-1], "regressor", None),
                 getattr(pipe[-1], "regressor_", None)]:
        assert not hasattr(part, "_skl_callbacks")


def test_skops_round_trip(tmp_path, capsys):
    pytest.importorskip("skops")
    pytest.importorskip("fastbp.persistence")
    train = tmp_path / "train.csv"
    _frame(120, 0).to_csv(train, index=False)
    model = tmp_path / "model.skops"
    code = entry.main(["--csv", str(train), "--target", "label", "--drop", "key",
                       "--epochs", "20", "--no-compare", "--no-progress",
                       "--save", str(model)])
    assert code == 0, capsys.readouterr().err
    code = entry.main(["predict", str(model), str(train), "-o", str(tmp_path / "p.csv")])
    assert code == 0, capsys.readouterr().err
    assert len(pd.read_csv(tmp_path / "p.csv")) == 120
