"""fastbp.cli.data: reading CSVs with pandas, choosing the feature columns,
and the printed rule that decides classification vs regression."""

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from fastbp.cli.data import (  # noqa: E402
    MAX_INTEGER_CLASSES,
    decide_task,
    pandas_index_column,
    read_csv,
    select_features,
)
from fastbp.cli.options import UsageError  # noqa: E402


def test_diabetes_like_integer_target_is_regression_with_the_rule_printed():
    from sklearn.datasets import load_diabetes

    y = pd.Series(load_diabetes().target.astype(int))
    regression, rule = decide_task(y, "auto", "TARGET")
    assert regression
    assert rule.startswith("treating 'TARGET' as regression: 214 distinct integer values")


@pytest.mark.parametrize("n_distinct, regression", [
    (2, False), (MAX_INTEGER_CLASSES, False), (MAX_INTEGER_CLASSES + 1, True),
])
def test_integer_target_rule_at_the_threshold(n_distinct, regression):
    y = pd.Series(np.arange(100) % n_distinct)
    got, rule = decide_task(y, "auto", "y")
    assert got is regression
    assert f"{n_distinct} distinct integer values" in rule


def test_float_integers_count_as_integers():
    got, rule = decide_task(pd.Series([1.0, 2.0, 1.0, 3.0]), "auto", "y")
    assert got is False and "3 distinct integer values" in rule


def test_non_integer_numbers_are_regression_and_labels_classification():
    assert decide_task(pd.Series([0.5, 1.0, 2.0]), "auto", "y")[0] is True
    got, rule = decide_task(pd.Series(["a", "b", "a"]), "auto", "y")
    assert got is False and "2 distinct labels" in rule


def test_task_option_overrides_the_rule():
    y = pd.Series(np.arange(100))
    assert decide_task(y, "classify", "y")[0] is False
    assert decide_task(pd.Series([0, 1, 0]), "regress", "y")[0] is True
    with pytest.raises(UsageError, match="not numeric"):
        decide_task(pd.Series(["a", "b"]), "regress", "y")


def test_pandas_default_index_column_is_recognised_and_not_a_feature(tmp_path):
    frame = pd.DataFrame({"a": [0.5, 1.5, 2.5], "b": [3, 1, 2], "y": [0, 1, 0]})
    path = tmp_path / "with_index.csv"
    frame.to_csv(path)  # an unnamed first column 0..n-1
    df = read_csv(str(path))
    assert pandas_index_column(df) == "Unnamed: 0"
    X, numeric, cats, notes = select_features(df, str(path), target="y")
    assert list(X.columns) == ["a", "b"] and numeric == ["a", "b"] and cats == []
    assert any("index" in note for note in notes)


@pytest.mark.parametrize("first", [[1, 2, 3], [0, 2, 1]])
def test_a_first_column_that_is_not_an_index_stays_a_feature(tmp_path, first):
    path = tmp_path / "d.csv"
    path.write_text(",a,y\n" + "".join(f"{v},{i},0\n" for i, v in enumerate(first)))
    df = read_csv(str(path))
    assert pandas_index_column(df) is None
    X, *_ = select_features(df, str(path), target="y")
    assert list(X.columns) == ["Unnamed: 0", "a"]


def test_non_numeric_columns_are_categorical_in_auto_mode(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,colour,y\n1,red,0\n2,blue,1\n3,red,0\n")
    df = read_csv(str(path))
    X, numeric, cats, notes = select_features(df, str(path), target="y")
    assert numeric == ["a"] and cats == ["colour"]
    assert "one-hot encoding 1 categorical column: colour" in notes


def test_categorical_list_encodes_numeric_columns_and_rejects_other_words(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("zip,colour,y\n75001,red,0\n10115,blue,1\n75001,red,0\n")
    df = read_csv(str(path))
    X, numeric, cats, _ = select_features(df, str(path), target="y",
                                          categorical=["zip", "colour"])
    assert numeric == [] and cats == ["zip", "colour"]
    with pytest.raises(UsageError, match=r"line 2: non-numeric value 'red' in feature "
                                         r"column 'colour' \(not listed in --categorical\)"):
        select_features(df, str(path), target="y", categorical=["zip"])


def test_features_and_drop_choose_the_columns_in_file_order(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("id,a,b,c,y\n1,1,2,3,0\n2,4,5,6,1\n")
    df = read_csv(str(path))
    X, *_ = select_features(df, str(path), target="y", features=["c", "a"])
    assert list(X.columns) == ["a", "c"]
    X, *_ = select_features(df, str(path), target="y", drop=["id", "b"])
    assert list(X.columns) == ["a", "c"]


def test_line_numbers_count_blank_lines(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,y\n\n1,2,0\n\n3,,1\n")
    df = read_csv(str(path))
    with pytest.raises(UsageError, match="line 5: missing value in feature column 'b'"):
        select_features(df, str(path), target="y")
