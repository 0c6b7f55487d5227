"""The classic 3-2-2 backpropagation worked example, through ``fastbp.backprop``.

One sample x = (1, 4, 5) with target t = (0.1, 0.05); a hidden layer of two
logistic units and an output layer of two logistic units; squared error
E = 1/2 sum_k (o_k - t_k)^2. The script prints the forward pass, the loss and
every gradient -- each weight and bias of both layers -- and checks them
against a hand-written backward pass (the chain rule, written out) and
against central finite differences.

Run::

    python examples/worked_example_322.py
"""

import numpy as np

from fastbp import backprop
from fastbp.activations import logistic

X = np.array([[1.0, 4.0, 5.0]])
T = np.array([[0.1, 0.05]])
W1 = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])  # input i -> hidden j
B1 = np.array([0.5, 0.5])
W2 = np.array([[0.7, 0.8], [0.9, 0.1]])              # hidden j -> output k
B2 = np.array([0.5, 0.5])


def by_hand():
    """The backward pass written out with the chain rule (no fastbp)."""
    h = logistic(X @ W1 + B1)                 # hidden outputs
    o = logistic(h @ W2 + B2)                 # network outputs
    d_out = (o - T) * o * (1 - o)             # dE/d(net_out) = (o - t) o (1 - o)
    d_hid = (d_out @ W2.T) * h * (1 - h)      # dE/d(net_hidden)
    return h, o, [X.T @ d_hid, h.T @ d_out], [d_hid.sum(0), d_out.sum(0)]


def finite_differences(eps=1e-6):
    """Central differences of the loss, one parameter at a time."""
    params = [W1, B1, W2, B2]

    def loss(ps):
        h = logistic(X @ ps[0] + ps[1])
        o = logistic(h @ ps[2] + ps[3])
        return 0.5 * np.sum((o - T) ** 2)

    grads = []
    for k, p in enumerate(params):
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            plus = [q.copy() for q in params]
            minus = [q.copy() for q in params]
            plus[k][idx] += eps
            minus[k][idx] -= eps
            g[idx] = (loss(plus) - loss(minus)) / (2 * eps)
        grads.append(g)
    return [grads[0], grads[2]], [grads[1], grads[3]]


def main():
    """Print the forward pass, the loss and every gradient of the example."""
    loss, dW, db = backprop(
        X, T, [W1, W2], [B1, B2],
        activation="logistic", out_activation="logistic", loss="squared_error",
    )
    h, o, dW_hand, db_hand = by_hand()
    dW_fd, db_fd = finite_differences()

    print("forward pass")
    print(f"  hidden outputs h = {np.round(h[0], 6)}")
    print(f"  network outputs o = {np.round(o[0], 6)}   targets t = {T[0]}")
    print(f"  loss E = 1/2 sum (o - t)^2 = {loss:.6f}")
    print()
    names = ["input", "hidden", "output"]
    for layer in (1, 0):  # backpropagation goes from the output backwards
        print(f"layer {layer + 1} ({names[layer]} -> {names[layer + 1]})")
        fan_in, fan_out = dW[layer].shape
        for i in range(fan_in):
            for j in range(fan_out):
                print(f"  dE/dW{layer + 1}[{i},{j}] = {dW[layer][i, j]: .6f}"
                      f"   (by hand {dW_hand[layer][i, j]: .6f},"
                      f" finite diff. {dW_fd[layer][i, j]: .6f})")
        for j in range(fan_out):
            print(f"  dE/db{layer + 1}[{j}]   = {db[layer][j]: .6f}"
                  f"   (by hand {db_hand[layer][j]: .6f},"
                  f" finite diff. {db_fd[layer][j]: .6f})")
        print()
    print(f"  a bias shared by both hidden units would get the sum: "
          f"{db[0].sum():.6f}")
    for a, b, c in zip(dW + db, dW_hand + db_hand, dW_fd + db_fd):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(a, c, rtol=1e-6, atol=1e-9)
    print("all gradients agree with the hand-written chain rule and with finite "
          "differences")


if __name__ == "__main__":
    main()
