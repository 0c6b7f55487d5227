"""Network: layer shapes, the one flat parameter buffer and its views,
packing, and scikit-learn's initialisation."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from fastbp.network import Network


def test_flat_buffer_layout_is_weights_then_biases_like_sklearn_pack():
    net = Network([3, 4, 2], "relu", "identity", "squared_error")
    params = np.arange(net.n_params, dtype=float)
    coefs, intercepts = net.views(params)
    assert [c.shape for c in coefs] == [(3, 4), (4, 2)]
    assert [b.shape for b in intercepts] == [(4,), (2,)]
    assert net.n_params == 3 * 4 + 4 * 2 + 4 + 2
    assert net.n_coefs == 20
    # scikit-learn's _pack: hstack of raveled coefs_ then intercepts_.
    assert_array_equal(np.hstack([a.ravel() for a in coefs + intercepts]), params)


def test_views_share_memory_with_the_buffer():
    net = Network([2, 3, 1], "tanh", "logistic", "log_loss")
    params = np.zeros(net.n_params)
    coefs, intercepts = net.views(params)
    coefs[1][2, 0] = 5.0
    intercepts[0][1] = -1.0
    assert params[net.coef_offsets[1] + 2] == 5.0
    assert params[net.intercept_offsets[0] + 1] == -1.0
    params[0] = 7.0
    assert coefs[0][0, 0] == 7.0


@pytest.mark.parametrize("k", [2, 3])
def test_maxout_hidden_layers_have_units_times_k_columns(k):
    net = Network([5, 4, 3, 2], "maxout", "softmax", "log_loss", maxout_pieces=k)
    assert net.coef_shapes == [(5, 4 * k), (4, 3 * k), (3, 2)]
    coefs, intercepts = net.views(np.zeros(net.n_params))
    assert [b.shape[0] for b in intercepts] == [4 * k, 3 * k, 2]


def test_maxout_pieces_are_ignored_for_other_activations():
    net = Network([5, 4, 2], "relu", "identity", "squared_error", maxout_pieces=3)
    assert net.coef_shapes == [(5, 4), (4, 2)]


def test_pack_round_trips_and_checks_shapes():
    net = Network([3, 2, 2], "logistic", "logistic", "squared_error")
    rng = np.random.RandomState(0)
    coefs = [rng.normal(size=(3, 2)), rng.normal(size=(2, 2))]
    intercepts = [rng.normal(size=2), rng.normal(size=2)]
    params = net.pack(coefs, intercepts)
    c2, b2 = net.views(params)
    for a, b in zip(coefs + intercepts, c2 + b2, strict=True):
        assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"coefs\[1\] has shape"):
        net.pack([coefs[0], np.zeros((3, 2))], intercepts)
    with pytest.raises(ValueError, match=r"intercepts\[0\] has shape"):
        net.pack(coefs, [np.zeros(3), intercepts[1]])
    with pytest.raises(ValueError, match="Expected 2"):
        net.pack(coefs[:1], intercepts[:1])


@pytest.mark.parametrize("activation", ["relu", "logistic", "sigmoid", "tanh"])
def test_init_params_draws_exactly_as_sklearn(activation):
    layer_units = [4, 6, 5, 3]
    net = Network(layer_units, activation, "softmax", "log_loss")
    params = net.init_params(np.random.RandomState(42))
    rs = np.random.RandomState(42)
    factor = 2.0 if activation in ("logistic", "sigmoid") else 6.0
    expected = []
    for fi, fo in zip(layer_units[:-1], layer_units[1:]):
        bound = np.sqrt(factor / (fi + fo))
        expected.append((rs.uniform(-bound, bound, (fi, fo)), rs.uniform(-bound, bound, fo)))
    coefs, intercepts = net.views(params)
    for (W, b), c, i in zip(expected, coefs, intercepts, strict=True):
        assert_array_equal(c, W)
        assert_array_equal(i, b)  # biases are random too, as in scikit-learn


def test_init_params_float32_buffer():
    net = Network([4, 3, 2], "relu", "identity", "squared_error", dtype=np.float32)
    params = net.init_params(np.random.RandomState(0))
    assert params.dtype == np.float32
    assert params.shape == (net.n_params,)
    c64 = Network([4, 3, 2], "relu", "identity", "squared_error").init_params(np.random.RandomState(0))
    assert_array_equal(params, c64.astype(np.float32))


def test_canonical_output_pairs_and_codes():
    assert Network([2, 2], "relu", "identity", "squared_error").canonical_output
    assert Network([2, 2], "relu", "softmax", "log_loss").canonical_output
    assert Network([2, 1], "relu", "exp", "poisson").canonical_output
    assert not Network([2, 2], "relu", "logistic", "squared_error").canonical_output
    net = Network([2, 2, 2], "sigmoid", "logistic", "log_loss")
    assert net.activation == "logistic"
    assert net.n_layers == 3 and net.n_weight_layers == 2


@pytest.mark.parametrize("k", [2, 3])
def test_from_coefs_reads_maxout_units_from_the_columns(k):
    shapes = [(5, 4 * k), (4, 3 * k), (3, 2)]
    rng = np.random.RandomState(0)
    coefs = [rng.normal(size=s) for s in shapes]
    intercepts = [rng.normal(size=s[1]) for s in shapes]
    net, params = Network.from_coefs(coefs, intercepts, "maxout", "softmax", "log_loss",
                                     maxout_pieces=k)
    assert net.layer_units == [5, 4, 3, 2]
    got_c, got_b = net.views(params)
    for a, b in zip(got_c + got_b, coefs + intercepts, strict=True):
        assert_array_equal(a, b)


def test_from_coefs_casts_to_the_dtype_and_names_the_lists_in_errors():
    coefs = [np.ones((3, 4), dtype=int), np.ones((4, 1), dtype=int)]
    intercepts = [np.zeros(4, dtype=int), np.zeros(1, dtype=int)]
    net, params = Network.from_coefs(coefs, intercepts, "relu", "identity", "squared_error",
                                     dtype=np.float32)
    assert params.dtype == np.float32 and net.dtype == np.float32
    with pytest.raises(ValueError, match=r"coefs_\[0\] has 3 rows, but X has 2 features"):
        Network.from_coefs(coefs, intercepts, "relu", "identity", "squared_error",
                           n_features=2, names=("coefs_", "intercepts_"))
    with pytest.raises(ValueError, match=r"coefs_\[1\] has 1 columns, but the model has 2 outputs"):
        Network.from_coefs(coefs, intercepts, "relu", "identity", "squared_error",
                           n_outputs=2, names=("coefs_", "intercepts_"))


# ------------------------------------------------- one activation per hidden layer


def test_per_layer_activations_mix_maxout_with_others():
    net = Network([5, 4, 3, 6, 2], ["maxout", "gelu", "sigmoid"], "softmax", "log_loss",
                  maxout_pieces=3)
    assert net.activation == ("maxout", "gelu", "logistic")  # canonical, per layer
    assert net.activations == ("maxout", "gelu", "logistic")
    assert net.activation_code is None
    assert net.pieces == (3, 1, 1)
    assert net.coef_shapes == [(5, 12), (4, 3), (3, 6), (6, 2)]
    # maxout keeps H for its arg-max, gelu for its derivative; logistic not
    assert net.keeps_pre_activation == (True, True, False)


def test_one_name_keeps_the_single_string_representation():
    net = Network([5, 4, 3, 2], "swish", "softmax", "log_loss")
    assert net.activation == "silu"
    assert net.activations == ("silu", "silu")
    assert net.activation_code == net.activation_codes[0]
    assert net.keeps_pre_activation == (True, True)
    relu = Network([5, 4, 3, 2], "relu", "softmax", "log_loss")
    assert relu.keeps_pre_activation == (False, False)


def test_activation_list_must_have_one_entry_per_hidden_layer():
    with pytest.raises(ValueError, match="activation has 1 entry, but the network has 2 hidden layers"):
        Network([5, 4, 3, 2], ["relu"], "softmax", "log_loss")
    with pytest.raises(ValueError, match=r"activation\[0\] must be one of"):
        Network([5, 4, 2], ["mish"], "softmax", "log_loss")


def _sklearn_draws(layer_units, factors, seed=42):
    rs = np.random.RandomState(seed)
    out = []
    for (fi, fo), factor in zip(zip(layer_units[:-1], layer_units[1:]), factors, strict=True):
        bound = np.sqrt(factor / (fi + fo))
        out.append((rs.uniform(-bound, bound, (fi, fo)), rs.uniform(-bound, bound, fo)))
    return out


@pytest.mark.parametrize(
    "activation,factors",
    [
        (["logistic", "sigmoid"], [2.0, 2.0, 2.0]),  # = "logistic"
        (["relu", "tanh"], [6.0, 6.0, 6.0]),
        # W_l takes hidden layer l's factor, the output layer the last one's
        (["logistic", "relu"], [2.0, 6.0, 6.0]),
        (["relu", "logistic"], [6.0, 2.0, 2.0]),
    ],
)
def test_glorot_factor_per_layer_for_activation_lists(activation, factors):
    layer_units = [4, 6, 5, 3]
    net = Network(layer_units, activation, "softmax", "log_loss")
    assert net.glorot_factors() == factors
    coefs, intercepts = net.views(net.init_params(np.random.RandomState(42)))
    for (W, b), c, i in zip(_sklearn_draws(layer_units, factors), coefs, intercepts, strict=True):
        assert_array_equal(c, W)
        assert_array_equal(i, b)


def test_all_logistic_list_initialises_as_logistic():
    a = Network([4, 6, 5, 3], ["logistic", "logistic"], "softmax", "log_loss")
    b = Network([4, 6, 5, 3], "logistic", "softmax", "log_loss")
    assert_array_equal(a.init_params(np.random.RandomState(0)), b.init_params(np.random.RandomState(0)))


def test_from_coefs_reads_maxout_columns_of_a_mixed_list():
    shapes = [(5, 4), (4, 3 * 2), (3, 2)]  # relu (4 units), maxout (3 units x 2)
    rng = np.random.RandomState(0)
    coefs = [rng.normal(size=s) for s in shapes]
    intercepts = [rng.normal(size=s[1]) for s in shapes]
    net, params = Network.from_coefs(coefs, intercepts, ["relu", "maxout"], "softmax",
                                     "log_loss", maxout_pieces=2)
    assert net.layer_units == [5, 4, 3, 2]
    assert net.coef_shapes == shapes
    bad = [rng.normal(size=(5, 4)), rng.normal(size=(4, 5)), rng.normal(size=(5, 2))]
    with pytest.raises(ValueError, match=r"coefs\[1\] has 5 columns, not a multiple of maxout_pieces=2"):
        Network.from_coefs(bad, [np.zeros(4), np.zeros(5), np.zeros(2)], ["relu", "maxout"],
                           "softmax", "log_loss")
