"""Docstring entries BPClassifier and BPRegressor share, written once.

A line ``    {name}`` alone in either class's docstring stands for the entry
``name`` below (numpydoc layout, 4-space indent); ``fill`` substitutes them.
"""

import re

ENTRIES = {
    "hidden_layer_sizes": """\
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element is the number of units of the ith hidden layer.""",
    "activation": """\
    activation : {"identity", "logistic", "sigmoid", "tanh", "relu", "softplus", \
"maxout", "leaky_relu", "elu", "selu", "gelu", "silu", "swish"} or list of \
str, default="relu"
        Activation of the hidden layers: "identity" ``f(x) = x``;
        "logistic" (alias "sigmoid") ``f(x) = 1 / (1 + exp(-x))``; "tanh";
        "relu" ``f(x) = max(0, x)``; "softplus" ``f(x) = log(1 + exp(x))``;
        "maxout", the maximum of ``maxout_pieces`` linear pieces per unit;
        "leaky_relu" ``f(x) = x if x > 0 else negative_slope * x``; "elu"
        ``f(x) = x if x > 0 else exp(x) - 1``; "selu", the self-normalising
        ``f(x) = scale * (x if x > 0 else alpha * (exp(x) - 1))`` with
        ``scale = 1.0507...`` and ``alpha = 1.6733...``; "gelu" (exact)
        ``f(x) = x * Phi(x)``, ``Phi`` the standard normal CDF; "silu" (alias
        "swish") ``f(x) = x / (1 + exp(-x))``. A list or tuple gives one per
        hidden layer, e.g. ``activation=["relu", "tanh"]`` for
        ``hidden_layer_sizes=(64, 32)``; "maxout" may be one of them.""",
    "solver": """\
    solver : {"lbfgs", "sgd", "adam"}, default="adam"
        Weight optimizer: "lbfgs" is scipy's L-BFGS-B on the full data,
        "sgd" is minibatch gradient descent with (Nesterov) momentum, "adam"
        is the Adam optimizer on minibatches. "lbfgs" often converges faster
        on small datasets; "adam" is a robust default for larger ones.""",
    "alpha": """\
    alpha : float, default=1e-4
        Strength of the L2 penalty ``alpha / (2 n) * sum ||W||^2`` on the
        weights (not the biases), ``n`` being the minibatch size.""",
    "batch_size": """\
    batch_size : int or "auto", default="auto"
        Minibatch size of the stochastic solvers; "auto" is
        ``min(200, n_samples)``. Larger values are clipped to ``n_samples``
        (with a warning). Ignored by "lbfgs".""",
    "learning_rate": """\
    learning_rate : {"constant", "invscaling", "adaptive", "cosine"}, \
default="constant"
        Learning-rate schedule of "sgd" and "adam" (for "adam" it scales the
        base rate before Adam's bias correction; "constant" is scikit-learn's
        Adam): "constant" keeps ``learning_rate_init``; "invscaling" uses
        ``learning_rate_init / (t_ + 1) ** power_t``; "adaptive" divides the
        rate by 5 each time ``n_iter_no_change`` epochs fail to improve the
        training loss (or the validation score) by ``tol``, until it falls
        below 1e-6; "cosine" decays it per epoch to 0 over ``max_iter``
        epochs, ``learning_rate_init * (1 + cos(pi * e / max_iter)) / 2``
        for epoch ``e = 0, 1, ..`` (counted after any warm-up). The rate of
        each epoch is recorded in ``learning_rate_curve_``. For example,
        ``learning_rate="cosine", max_iter=50`` anneals over 50 epochs.""",
    "learning_rate_init": """\
    learning_rate_init : float, default=1e-3
        Initial learning rate of "sgd" and "adam".""",
    "power_t": """\
    power_t : float, default=0.5
        Exponent of the "invscaling" schedule.""",
    "max_iter": """\
    max_iter : int, default=200
        Maximum number of epochs (passes over the data) of "sgd" and "adam",
        or of iterations of "lbfgs".""",
    "shuffle": """\
    shuffle : bool, default=True
        Whether to shuffle the samples before each epoch ("sgd", "adam").""",
    "random_state": """\
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, the shuffling and the early-stopping
        split. Pass an int for reproducible fits; the same value gives the
        same model as scikit-learn's MLP.""",
    "tol": """\
    tol : float, default=1e-4
        Tolerance: when the training loss (or the validation score) does not
        improve by at least ``tol`` for ``n_iter_no_change`` consecutive
        epochs, training stops (unless ``learning_rate="adaptive"``). For
        "lbfgs" it is the gradient tolerance.""",
    "verbose": """\
    verbose : bool, default=False
        Whether to print the loss after each epoch or iteration.""",
    "warm_start": """\
    warm_start : bool, default=False
        When True, the next ``fit`` starts from the current weights (with a
        fresh optimizer state) instead of a new initialisation.""",
    "momentum": """\
    momentum : float, default=0.9
        Momentum of "sgd", between 0 and 1.""",
    "nesterovs_momentum": """\
    nesterovs_momentum : bool, default=True
        Whether "sgd" uses Nesterov's momentum.""",
    "validation_fraction": """\
    validation_fraction : float, default=0.1
        Fraction of the training data held out for early stopping, in
        ``[0, 1)``.
    beta_1 : float, default=0.9
        Exponential decay rate of Adam's first-moment estimates, in ``[0, 1)``.
    beta_2 : float, default=0.999
        Exponential decay rate of Adam's second-moment estimates, in
        ``[0, 1)``.""",
    "epsilon": """\
    epsilon : float, default=1e-8
        Adam's numerical stability term.""",
    "n_iter_no_change": """\
    n_iter_no_change : int, default=10
        Number of epochs without an improvement of ``tol`` before stopping
        ("sgd", "adam").""",
    "max_fun": """\
    max_fun : int, default=15000
        Maximum number of loss evaluations of "lbfgs".""",
    "maxout_pieces": """\
    maxout_pieces : int, default=2
        Linear pieces per unit of "maxout" hidden layers (at least 2):
        ``coefs_[i]`` of a maxout layer then has ``units * maxout_pieces``
        columns. Ignored for the other activations.""",
    "backend": """\
    backend : {"auto", "cython", "numpy"}, default="auto"
        Where the arithmetic runs: "cython" is the compiled backend, "numpy"
        the pure-NumPy reference; both give the same model up to rounding.
        "auto" uses the compiled backend when it is built and NumPy (with one
        warning) otherwise.""",
    "weight_decay": """\
    weight_decay : float, default=0.0
        Decoupled weight decay of "sgd" and "adam" (AdamW with "adam"): each
        minibatch step multiplies the weights (not the biases) by
        ``1 - lr * weight_decay``, ``lr`` the scheduled learning rate,
        besides the gradient step. Unlike ``alpha`` (an L2 penalty in the
        loss and its gradient, which Adam rescales), it does not pass through
        the gradient. For example ``solver="adam", weight_decay=0.01``.
        Ignored by "lbfgs".""",
    "max_grad_norm": """\
    max_grad_norm : float or None, default=None
        When set (> 0), each minibatch's gradient (all layers together) is
        scaled down to this global L2 norm whenever its norm exceeds it,
        before the optimizer step ("sgd", "adam"). For example
        ``max_grad_norm=1.0`` tames exploding gradients.""",
    "warmup_fraction": """\
    warmup_fraction : float, default=0.0
        Fraction of the ``max_iter`` planned epochs, in ``[0, 1]``, over which
        the learning rate ramps up linearly: epoch ``e`` (from 0) of the
        ``w = ceil(warmup_fraction * max_iter)`` warm-up epochs uses
        ``(e + 1) / w`` times the scheduled rate ("sgd", "adam"). For example
        ``warmup_fraction=0.1, learning_rate="cosine"``.""",
    "negative_slope": """\
    negative_slope : float, default=0.01
        Slope of "leaky_relu" units for negative inputs,
        ``f(x) = x if x > 0 else negative_slope * x`` (at least 0). Ignored by
        the other activations.""",
    "dropout": """\
    dropout : float or list of float, default=0.0
        Inverted dropout on the hidden units while training with "sgd" or
        "adam": each minibatch sets each unit's output to 0 with this
        probability (in ``[0, 1)``) and scales the kept ones by
        ``1 / (1 - dropout)``, so nothing changes at prediction. A list gives
        one rate per hidden layer. 0 draws no random numbers: the fit is the
        same as without dropout. Not available with "lbfgs". ``loss_`` and
        ``loss_curve_`` are then the losses of the thinned networks the
        minibatches trained (as the epoch's mean), not of the full one. For
        example ``dropout=0.2`` or ``dropout=[0.5, 0.2]``.""",
    "init": """\
    init : {"glorot_uniform", "glorot_normal", "he_uniform", "he_normal", \
"lecun_normal", "orthogonal"}, default="glorot_uniform"
        How the weights are drawn from ``random_state`` before the first
        epoch. "glorot_uniform" is scikit-learn's initialisation (the same
        numbers for the same ``random_state``): weights and biases from
        ``U(-b, b)``, ``b = sqrt(6 / (fan_in + fan_out))`` (2 instead of 6
        for "logistic" units). The others start the biases at zero and draw
        the weights from "glorot_normal" ``N(0, sqrt(2 / (fan_in +
        fan_out)))``, "he_uniform" ``U(-sqrt(6 / fan_in), sqrt(6 / fan_in))``,
        "he_normal" ``N(0, sqrt(2 / fan_in))``, "lecun_normal"
        ``N(0, sqrt(1 / fan_in))`` (normals not truncated), or "orthogonal"
        (a random orthogonal matrix: orthonormal columns, or rows when a
        layer widens). ``fan_in`` and ``fan_out`` are the shape of the
        layer's ``coefs_`` entry (``units * maxout_pieces`` columns for a
        maxout layer). "he_*" suit relu-like units, "lecun_normal" suits
        "selu". For example ``activation="selu", init="lecun_normal"``.""",
    "transform_layer": """\
    transform_layer : int, default=-1
        The hidden layer whose activations ``transform`` returns, indexed as a
        Python list of the hidden layers: -1 the last, 0 the first. Out of
        range is a ValueError when transforming; it does not change how the
        network trains. For example ``transform_layer=0`` with
        ``hidden_layer_sizes=(64, 32)`` gives 64 features.""",
    "loss_": """\
    loss_ : float
        The training loss (with the L2 penalty) of the last epoch or
        iteration.""",
    "best_loss_": """\
    best_loss_ : float or None
        The lowest training loss of the stochastic solvers; None with
        ``early_stopping=True`` (see ``best_validation_score_``). Only set for
        "sgd" and "adam".""",
    "loss_curve_": """\
    loss_curve_ : list of float
        The training loss after each epoch ("sgd", "adam") or iteration
        ("lbfgs").""",
    "learning_rate_curve_": """\
    learning_rate_curve_ : list of float
        The learning rate of each epoch's steps ("sgd", "adam"; for "adam"
        the base rate before the bias correction), one entry per entry of
        ``loss_curve_``; not set for "lbfgs".""",
    "best_validation_score_": """\
    best_validation_score_ : float or None
        The best of ``validation_scores_``, whose weights the model keeps;
        None without early stopping. Only set for "sgd" and "adam".""",
    "best_epoch_": """\
    best_epoch_ : int or None
        With early stopping, the epoch whose weights the model keeps (the
        best validation score; the weights of the later epochs are
        discarded, i.e. the best weights are always restored):
        ``validation_scores_[best_epoch_ - 1] == best_validation_score_``.
        None without early stopping. Only set for "sgd" and "adam".""",
    "t_": """\
    t_ : int
        The number of training samples the stochastic solver has seen (it
        drives the "invscaling" schedule); 0 for "lbfgs".""",
    "coefs_": """\
    coefs_ : list of ndarray of shape (n_layers_ - 1,)
        The weight matrices: ``coefs_[i]`` has shape ``(fan_in, fan_out)``
        and maps layer ``i`` to layer ``i + 1`` (``fan_out`` is
        ``units * maxout_pieces`` for maxout layers). Writable views into one
        flat parameter buffer; arrays assigned by the user are used from the
        next call on.""",
    "intercepts_": """\
    intercepts_ : list of ndarray of shape (n_layers_ - 1,)
        The bias vectors: ``intercepts_[i]`` has shape ``(fan_out,)`` and is
        added to layer ``i + 1``. Views into the same buffer as ``coefs_``.""",
    "n_features_in_": """\
    n_features_in_ : int
        Number of features seen during fit.""",
    "feature_names_in_": """\
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit. Defined only when ``X`` has
        feature names that are all strings.""",
    "n_iter_": """\
    n_iter_ : int
        The number of epochs ("sgd", "adam") or iterations ("lbfgs") the
        solver ran in the last call to ``fit`` or ``partial_fit``.""",
    "n_layers_": """\
    n_layers_ : int
        Number of layers: input, hidden layers and output.""",
    "backend_": """\
    backend_ : str
        The backend that ran the last fit ("cython" or "numpy").""",
}

_PLACEHOLDER = re.compile(r"^    \{([a-z_]+)\}$", re.M)


def fill(cls):
    """Class decorator: put the shared entries into ``cls.__doc__``."""
    if cls.__doc__:  # None under python -OO
        cls.__doc__ = _PLACEHOLDER.sub(lambda m: ENTRIES[m.group(1)], cls.__doc__)
    return cls
