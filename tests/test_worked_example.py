"""The classic 3-2-2 worked example: logistic hidden and output units,
E = 1/2 sum (o - t)^2, one sample."""

import numpy as np
from numpy.testing import assert_allclose

from fastbp import backprop
from fastbp.activations import logistic

X = np.array([[1.0, 4.0, 5.0]])
T = np.array([[0.1, 0.05]])
W1 = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
B1 = np.array([0.5, 0.5])
W2 = np.array([[0.7, 0.8], [0.9, 0.1]])
B2 = np.array([0.5, 0.5])

ATOL = 5e-7  # the published values have six decimals


def _run(backend, dtype=np.float64):
    return backprop(
        X.astype(dtype), T.astype(dtype), [W1, W2], [B1, B2],
        activation="logistic", out_activation="logistic",
        loss="squared_error", backend=backend,
    )


def test_forward_pass_hidden_and_output_values():
    hidden = logistic(X @ W1 + B1)
    assert_allclose(hidden, [[0.986613, 0.995033]], atol=ATOL)
    out = logistic(hidden @ W2 + B2)
    assert_allclose(out, [[0.889551, 0.800400]], atol=ATOL)


def test_worked_example_loss(backend):
    loss, _, _ = _run(backend)
    assert abs(loss - 0.593245) < ATOL


def test_worked_example_output_layer_gradients(backend):
    _, dW, db = _run(backend)
    assert_allclose(dW[1], [[0.076535, 0.118279], [0.077188, 0.119288]], atol=ATOL)
    assert_allclose(db[1], [0.077574, 0.119884], atol=ATOL)


def test_worked_example_hidden_layer_gradients(backend):
    _, dW, db = _run(backend)
    assert_allclose(
        dW[0],
        [[0.001984, 0.000404], [0.007936, 0.001617], [0.009920, 0.002021]],
        atol=ATOL,
    )
    assert_allclose(db[0], [0.001984, 0.000404], atol=ATOL)


def test_worked_example_shared_bias_gradient_is_the_sum_not_0_0008(backend):
    # A well-known write-up prints 0.0008 for a bias shared by both hidden
    # units; the gradient of a shared bias is the sum of the per-unit ones.
    _, _, db = _run(backend)
    assert abs(db[0].sum() - 0.002388) < 1e-6
    assert abs(db[0].sum() - 0.0008) > 1e-3


def test_worked_example_float32(backend):
    loss, dW, db = _run(backend, np.float32)
    assert dW[0].dtype == np.float32 and db[1].dtype == np.float32
    assert abs(loss - 0.593245) < 1e-5
    assert_allclose(db[1], [0.077574, 0.119884], atol=1e-5)
    assert_allclose(dW[0][2], [0.009920, 0.002021], atol=1e-5)


def test_worked_example_inputs_are_not_modified(backend):
    coefs = [W1.copy(), W2.copy()]
    intercepts = [B1.copy(), B2.copy()]
    backprop(X, T, coefs, intercepts, activation="logistic",
             out_activation="logistic", backend=backend)
    assert_allclose(coefs[0], W1, rtol=0, atol=0)
    assert_allclose(intercepts[1], B2, rtol=0, atol=0)
