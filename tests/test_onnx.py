"""ONNX export without detours: skl2onnx.to_onnx(fastbp_model, X[:1]).

fastbp registers skl2onnx converters that go through to_sklearn() and
skl2onnx's converter for scikit-learn's MLP; the exported graph, run by
onnxruntime, predicts what the fastbp model predicts. Models that converter
cannot express raise a ValueError naming the feature.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_regression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fastbp import BPClassifier, BPRegressor

skl2onnx = pytest.importorskip("skl2onnx", reason="skl2onnx not installed")
rt = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16.0, y[:300]


def _run(onx, X):
    session = rt.InferenceSession(onx.SerializeToString(),
                                  providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X})


def _targets(kind, y):
    return {
        "multiclass": y,
        "binary": y % 2,
        "strings": np.where(y > 4, "high", "low"),
        "multilabel": np.column_stack([y % 2, y > 4, y == 3]).astype(int),
    }[kind]


@pytest.mark.parametrize("kind", ["multiclass", "binary", "strings", "multilabel"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
def test_classifier_converts_directly(digits, kind, activation):
    X, y = digits
    X = X.astype(np.float32)
    y = _targets(kind, y)
    clf = BPClassifier((16, 8), activation=activation, max_iter=20, random_state=0,
                       backend="numpy").fit(X, y)
    onx = skl2onnx.to_onnx(clf, X[:1], options={"zipmap": False})
    labels, proba = _run(onx, X)
    np.testing.assert_array_equal(labels, clf.predict(X))
    np.testing.assert_allclose(proba, clf.predict_proba(X), rtol=0, atol=1e-5)


def test_classifier_converts_to_a_float64_graph(digits):
    X, y = digits
    clf = BPClassifier((16,), max_iter=20, random_state=0, backend="numpy").fit(X, y)
    labels, proba = _run(skl2onnx.to_onnx(clf, X[:1], options={"zipmap": False}), X)
    assert proba.dtype == np.float64
    np.testing.assert_array_equal(labels, clf.predict(X))
    np.testing.assert_allclose(proba, clf.predict_proba(X), rtol=0, atol=1e-10)


def test_classifier_converts_with_skl2onnx_default_zipmap(digits):
    X, y = digits
    X = X.astype(np.float32)
    clf = BPClassifier((16,), max_iter=20, random_state=0, backend="numpy").fit(X, y)
    labels, proba = _run(skl2onnx.to_onnx(clf, X[:1]), X)  # one {class: p} per row
    np.testing.assert_array_equal(labels, clf.predict(X))
    got = np.array([[row[c] for c in clf.classes_] for row in proba])
    np.testing.assert_allclose(got, clf.predict_proba(X), rtol=0, atol=1e-5)


@pytest.mark.parametrize("out_activation", [None, "tanh"])
@pytest.mark.parametrize("dtype, atol", [(np.float32, 1e-5), (np.float64, 1e-10)])
def test_regressor_converts_directly(out_activation, dtype, atol):
    X, y = make_regression(n_samples=200, n_features=5, random_state=0)
    X, y = X.astype(dtype), y / np.abs(y).max()
    reg = BPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=50,
                      out_activation=out_activation, random_state=0,
                      backend="numpy").fit(X, y)
    (pred,) = _run(skl2onnx.to_onnx(reg, X[:1]), X)
    assert pred.shape == (len(X), 1)
    np.testing.assert_allclose(pred.ravel(), reg.predict(X), rtol=0, atol=atol)


def test_pipeline_with_a_fastbp_step_converts(digits):
    X, y = digits
    X = X.astype(np.float32)
    pipe = make_pipeline(StandardScaler(), BPClassifier((16,), max_iter=20, random_state=0,
                                                        backend="numpy")).fit(X, y)
    labels, proba = _run(skl2onnx.to_onnx(pipe, X[:1], options={"zipmap": False}), X)
    np.testing.assert_array_equal(labels, pipe.predict(X))
    np.testing.assert_allclose(proba, pipe.predict_proba(X), rtol=0, atol=1e-5)


@pytest.mark.parametrize("model, match", [
    ("softplus", "no 'softplus' hidden activation"),
    ("maxout", "no 'maxout' hidden activation"),
    ("poisson", "no 'exp' output activation"),
    ("softplus_output", "no 'softplus' output activation"),
    ("multioutput", "handles one target; this multi-output model has 2"),
    ("multilabel2", "multilabel model with two labels"),
])
def test_unsupported_models_raise_naming_the_feature(digits, model, match):
    X, y = digits
    Xr, yr = make_regression(n_samples=80, n_features=4, random_state=0)
    yr = np.abs(yr) / np.abs(yr).max()
    est, X, y = {
        "softplus": (BPClassifier((4,), activation="softplus"), X, y),
        "maxout": (BPClassifier((4,), activation="maxout"), X, y),
        "poisson": (BPRegressor(loss="poisson", hidden_layer_sizes=(4,)), Xr, yr),
        "softplus_output": (
            BPRegressor(out_activation="softplus", hidden_layer_sizes=(4,)), Xr, yr),
        "multioutput": (BPRegressor(hidden_layer_sizes=(4,)), Xr, np.c_[yr, yr]),
        "multilabel2": (BPClassifier((4,)), X, np.column_stack([y % 2, y > 4]).astype(int)),
    }[model]
    est.set_params(max_iter=2, random_state=0, backend="numpy").fit(X, y)
    with pytest.raises(ValueError, match=match):
        skl2onnx.to_onnx(est, X[:1].astype(np.float32))


@pytest.mark.parametrize("order", ["fastbp first", "skl2onnx first"])
def test_converters_register_in_either_import_order(order):
    # A fresh interpreter: importing fastbp must not import skl2onnx (it loads
    # onnx), yet to_onnx works whichever package is imported first.
    imports = (["import fastbp", "assert 'skl2onnx' not in sys.modules", "import skl2onnx"]
               if order == "fastbp first" else ["import skl2onnx", "import fastbp"])
    code = "\n".join(["import sys", *imports]) + "\n" + textwrap.dedent("""
        import numpy as np
        X = np.random.RandomState(0).rand(40, 3).astype(np.float32)
        clf = fastbp.BPClassifier((4,), solver="lbfgs", max_iter=5, random_state=0,
                                  backend="numpy").fit(X, X[:, 0] > 0.5)
        onx = skl2onnx.to_onnx(clf, X[:1], options={"zipmap": False})
        assert "skl2onnx" in sys.modules
        print("converted", len(onx.graph.node) > 0)
    """)
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", code],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "converted True"


def test_register_onnx_converters_can_be_called_again(digits):
    from fastbp.interop import register_onnx_converters

    register_onnx_converters()
    register_onnx_converters()
    X, y = digits
    X = X.astype(np.float32)
    clf = BPClassifier((8,), max_iter=5, random_state=0, backend="numpy").fit(X, y)
    labels, _ = _run(skl2onnx.to_onnx(clf, X[:1], options={"zipmap": False}), X)
    np.testing.assert_array_equal(labels, clf.predict(X))


# ------------------------------------------ activations scikit-learn's MLP lacks

NEW_ACTIVATIONS = ["leaky_relu", "elu", "selu", "gelu", "silu", ["relu", "gelu"],
                   ("selu", "tanh"), ["leaky_relu", "logistic"]]


@pytest.mark.parametrize("activation", NEW_ACTIVATIONS)
@pytest.mark.parametrize("dtype, atol", [(np.float32, 1e-5), (np.float64, 1e-10)])
def test_new_and_per_layer_activations_convert(digits, activation, dtype, atol):
    X, y = digits
    X = X.astype(dtype)
    hidden = (16,) if isinstance(activation, str) else (16, 8)
    clf = BPClassifier(hidden, activation=activation, negative_slope=0.3, max_iter=20,
                       random_state=0, backend="numpy").fit(X, y)
    onx = skl2onnx.to_onnx(clf, X[:1], options={"zipmap": False})
    labels, proba = _run(onx, X)
    np.testing.assert_array_equal(labels, clf.predict(X))
    if dtype == np.float64 and "gelu" in activation:
        atol = 1e-6  # onnxruntime has no double Erf: erf in float
    np.testing.assert_allclose(proba, clf.predict_proba(X), rtol=0, atol=atol)


@pytest.mark.parametrize("target_opset, op", [(18, "Erf"), (20, "Gelu")])
def test_gelu_is_one_operator_from_opset_20_and_the_erf_form_before(digits, target_opset, op):
    X, y = digits
    X = X.astype(np.float32)
    clf = BPClassifier((16,), activation="gelu", max_iter=20, random_state=0,
                       backend="numpy").fit(X, y)
    onx = skl2onnx.to_onnx(clf, X[:1], options={"zipmap": False}, target_opset=target_opset)
    assert op in {n.op_type for n in onx.graph.node}
    labels, proba = _run(onx, X)
    np.testing.assert_array_equal(labels, clf.predict(X))
    np.testing.assert_allclose(proba, clf.predict_proba(X), rtol=0, atol=1e-5)


@pytest.mark.parametrize("activation", ["silu", ["elu", "leaky_relu"]])
@pytest.mark.parametrize("dtype, atol", [(np.float32, 1e-5), (np.float64, 1e-10)])
def test_regressor_with_new_activations_converts(activation, dtype, atol):
    X, y = make_regression(n_samples=200, n_features=5, random_state=0)
    X, y = X.astype(dtype), y / np.abs(y).max()
    hidden = (8,) if isinstance(activation, str) else (8, 6)
    reg = BPRegressor(hidden_layer_sizes=hidden, activation=activation, solver="lbfgs",
                      max_iter=50, random_state=0, backend="numpy").fit(X, y)
    (pred,) = _run(skl2onnx.to_onnx(reg, X[:1]), X)
    np.testing.assert_allclose(pred.ravel(), reg.predict(X), rtol=0, atol=atol)


@pytest.mark.parametrize("activation, match", [
    (["relu", "maxout"], "no 'maxout' hidden activation"),
    (["softplus", "gelu"], "no 'softplus' hidden activation"),
])
def test_per_layer_lists_onnx_cannot_express_raise_naming_it(digits, activation, match):
    X, y = digits
    clf = BPClassifier((4, 3), activation=activation, max_iter=2, random_state=0,
                       backend="numpy").fit(X, y)
    with pytest.raises(ValueError, match=match):
        skl2onnx.to_onnx(clf, X[:1].astype(np.float32))
