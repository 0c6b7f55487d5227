"""The network: layer sizes, activations, and one flat parameter buffer.

The buffer holds every weight matrix (C order) followed by every bias
vector, the order scikit-learn packs them for L-BFGS::

    params = [W_1.ravel(), ..., W_L.ravel(), b_1, ..., b_L]

``coefs_`` and ``intercepts_`` are views into it, so the optimizers, the
kernels and the user all see one set of numbers.
"""

import numpy as np

from . import activations as act

# Weight initialisations; the first is scikit-learn's and the default.
INITS = (
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
    "lecun_normal", "orthogonal",
)


class Network:
    """Shape of a multilayer perceptron, independent of its parameter values.

    Parameters
    ----------
    layer_units : sequence of int
        ``[n_features, hidden_1, ..., hidden_{L-1}, n_outputs]``: the number of
        *units* (outputs) of each layer.
    activation : str or sequence of str
        Hidden activation: one name for every hidden layer, or one name per
        hidden layer (aliases allowed).
    out_activation : str
        Output activation.
    loss : str
        ``"squared_error"``, ``"log_loss"`` or ``"poisson"``.
    maxout_pieces : int
        Pieces per unit of the "maxout" hidden layers.
    dtype : numpy dtype
        float32 or float64.
    negative_slope : float
        Slope of "leaky_relu" units for negative inputs.

    Attributes
    ----------
    activation : str or tuple of str
        Canonical name(s) as given: one str when ``activation`` was one name,
        a tuple (one per hidden layer) when it was a sequence.
    activations : tuple of str
        Canonical name of each hidden layer's activation, always per layer.
    activation_codes : tuple of int
        Their integer codes for the kernels.
    activation_code : int or None
        The code of ``activation`` when it is one name, else None.
    pieces : tuple of int
        Pieces per unit of each hidden layer: ``maxout_pieces`` for maxout
        layers, 1 for the others (W_l has ``units * pieces`` columns).
    keeps_pre_activation : tuple of bool
        Per hidden layer: whether the backward pass needs its pre-activation
        H (maxout, gelu, silu), so the backends keep it.
    """

    def __init__(
        self, layer_units, activation, out_activation, loss, maxout_pieces=2,
        dtype=np.float64, negative_slope=0.01,
    ):
        self.layer_units = [int(u) for u in layer_units]
        n_hidden = max(len(self.layer_units) - 2, 0)
        self.activations = act.hidden_activations(activation, n_hidden)
        if isinstance(activation, str):
            self.activation = act.canonical(activation)
        else:
            self.activation = self.activations
        self.out_activation = act.canonical(out_activation)
        self.loss = loss
        self.maxout_pieces = int(maxout_pieces)
        self.negative_slope = float(negative_slope)
        self.dtype = np.dtype(dtype)
        self.n_layers = len(self.layer_units)  # as scikit-learn's n_layers_
        self.pieces = tuple(
            self.maxout_pieces if a == "maxout" else 1 for a in self.activations
        )
        self.keeps_pre_activation = tuple(
            a == "maxout" or a in act.NEEDS_PRE_ACTIVATION for a in self.activations
        )
        # Columns of W_l: units * k for maxout hidden layers, units otherwise.
        self.fan_in = self.layer_units[:-1]
        self.fan_out = [
            u * (self.pieces[i] if i < n_hidden else 1)
            for i, u in enumerate(self.layer_units[1:])
        ]
        self.coef_shapes = list(zip(self.fan_in, self.fan_out))
        offsets = np.cumsum([0] + [a * b for a, b in self.coef_shapes])
        self.coef_offsets = offsets[:-1].astype(np.intp)
        start = offsets[-1]
        b_offsets = np.cumsum([start] + self.fan_out)
        self.intercept_offsets = b_offsets[:-1].astype(np.intp)
        self.n_params = int(b_offsets[-1])
        self.n_coefs = int(start)
        # Integer codes for the kernels.
        self.activation_codes = tuple(act.CODES[a] for a in self.activations)
        self.activation_code = (
            act.CODES[self.activation] if isinstance(self.activation, str) else None
        )
        self.out_activation_code = act.CODES[self.out_activation]
        self.loss_code = act.LOSS_CODES[self.loss]
        self.canonical_output = (self.out_activation, self.loss) in act.CANONICAL_PAIRS

    @classmethod
    def from_coefs(
        cls, coefs, intercepts, activation, out_activation, loss, maxout_pieces=2,
        dtype=np.float64, *, n_features=None, n_outputs=None,
        names=("coefs", "intercepts"), negative_slope=0.01,
    ):
        """The network that lists of weights describe, and their packed buffer.

        The layer sizes are read from the shapes (a maxout hidden layer with
        ``u`` units has ``u * maxout_pieces`` columns, whatever the other
        layers' activations); the values are cast to ``dtype``.

        Parameters
        ----------
        coefs, intercepts : list of array-like
            ``coefs[l]`` of shape (fan_in, fan_out), ``intercepts[l]`` of shape
            (fan_out,).
        activation, out_activation, loss, maxout_pieces, dtype, negative_slope
            As for :class:`Network`.
        n_features, n_outputs : int, default=None
            When given, the rows of ``coefs[0]`` and the columns of the last
            layer must match them.
        names : tuple of str, default=("coefs", "intercepts")
            How error messages call the two lists (e.g. ``"coefs_"``).

        Returns
        -------
        net : Network
        params : ndarray of shape (net.n_params,)
        """
        cname, iname = names
        if not isinstance(coefs, (list, tuple)) or not isinstance(intercepts, (list, tuple)):
            raise TypeError(f"{cname} and {iname} must be lists of arrays.")
        if len(coefs) == 0 or len(coefs) != len(intercepts):
            raise ValueError(
                f"{cname} and {iname} must be non-empty lists of equal length, got "
                f"{len(coefs)} and {len(intercepts)}."
            )
        coefs = [np.asarray(W, dtype=dtype) for W in coefs]
        intercepts = [np.asarray(b, dtype=dtype) for b in intercepts]
        hidden = act.hidden_activations(activation, len(coefs) - 1)
        layer_units = [coefs[0].shape[0] if n_features is None else n_features]
        last_index = len(coefs) - 1
        for i, (W, b) in enumerate(zip(coefs, intercepts, strict=True)):
            if W.ndim != 2 or b.ndim != 1 or W.shape[1] != b.shape[0]:
                raise ValueError(
                    f"{cname}[{i}] of shape {W.shape} and {iname}[{i}] of shape "
                    f"{b.shape} don't fit together."
                )
            if W.shape[0] != layer_units[-1]:
                before = "X has" if i == 0 else "the layer before it has"
                unit = "features" if i == 0 else "units"
                raise ValueError(
                    f"{cname}[{i}] has {W.shape[0]} rows, but {before} "
                    f"{layer_units[-1]} {unit}."
                )
            last = i == last_index
            pieces = 1 if last or hidden[i] != "maxout" else maxout_pieces
            if W.shape[1] % pieces:
                raise ValueError(
                    f"{cname}[{i}] has {W.shape[1]} columns, not a multiple of "
                    f"maxout_pieces={maxout_pieces}."
                )
            layer_units.append(W.shape[1] if last else W.shape[1] // pieces)
        if n_outputs is not None and layer_units[-1] != n_outputs:
            raise ValueError(
                f"{cname}[{last_index}] has {layer_units[-1]} columns, but the "
                f"model has {n_outputs} outputs."
            )
        net = cls(
            layer_units, activation, out_activation, loss, maxout_pieces, dtype,
            negative_slope,
        )
        return net, net.pack(coefs, intercepts)

    @property
    def n_weight_layers(self):
        return self.n_layers - 1

    def views(self, params):
        """Return ``(coefs, intercepts)``: lists of views into ``params``."""
        coefs = []
        intercepts = []
        for i, (fi, fo) in enumerate(self.coef_shapes):
            o = self.coef_offsets[i]
            coefs.append(params[o : o + fi * fo].reshape(fi, fo))
            o = self.intercept_offsets[i]
            intercepts.append(params[o : o + fo])
        return coefs, intercepts

    def pack(self, coefs, intercepts, out=None):
        """Copy lists of arrays into a flat buffer, checking their shapes."""
        if len(coefs) != self.n_layers - 1 or len(intercepts) != self.n_layers - 1:
            raise ValueError(
                f"Expected {self.n_layers - 1} coefficient matrices and intercept "
                f"vectors, got {len(coefs)} and {len(intercepts)}."
            )
        if out is None:
            out = np.empty(self.n_params, dtype=self.dtype)
        for i, (fi, fo) in enumerate(self.coef_shapes):
            W = np.asarray(coefs[i])
            b = np.asarray(intercepts[i])
            if W.shape != (fi, fo):
                raise ValueError(
                    f"coefs[{i}] has shape {W.shape}; this network needs {(fi, fo)}."
                )
            if b.shape != (fo,):
                raise ValueError(
                    f"intercepts[{i}] has shape {b.shape}; this network needs {(fo,)}."
                )
            o = self.coef_offsets[i]
            out[o : o + fi * fo] = W.ravel()
            o = self.intercept_offsets[i]
            out[o : o + fo] = b
        return out

    def init_params(self, random_state, init="glorot_uniform"):
        """Initial weights and biases drawn from ``random_state``.

        ``init`` is one of :data:`INITS`. Each layer is drawn in turn, from
        its real weight shape ``(fan_in, fan_out)`` (a maxout hidden layer
        has ``units * maxout_pieces`` columns, so that is its ``fan_out``):

        * "glorot_uniform", scikit-learn's, drawing exactly as it does: the
          weights then the biases from U(-bound, bound),
          bound = sqrt(factor / (fan_in + fan_out)), factor 2 for logistic
          units and 6 otherwise;
        * "glorot_normal": N(0, sqrt(2 / (fan_in + fan_out)));
        * "he_uniform": U(-sqrt(6 / fan_in), sqrt(6 / fan_in));
        * "he_normal": N(0, sqrt(2 / fan_in));
        * "lecun_normal": N(0, sqrt(1 / fan_in));
        * "orthogonal": the Q factor of the QR decomposition of a standard
          Gaussian matrix, its signs corrected by those of R's diagonal (so
          the draw is uniform over orthogonal matrices): orthonormal columns
          when fan_in >= fan_out, orthonormal rows otherwise.

        The normals are not truncated. Every init but "glorot_uniform"
        starts the biases at zero (and draws no numbers for them).
        """
        params = np.empty(self.n_params, dtype=self.dtype)
        coefs, intercepts = self.views(params)
        if init == "glorot_uniform":
            factors = iter(self.glorot_factors())
            for W, b, (fi, fo) in zip(coefs, intercepts, self.coef_shapes):
                bound = np.sqrt(next(factors) / (fi + fo))
                W[...] = random_state.uniform(-bound, bound, (fi, fo))
                b[...] = random_state.uniform(-bound, bound, fo)
            return params
        try:
            draw = _WEIGHT_DRAWS[init]
        except KeyError:
            raise ValueError(f"init must be one of {INITS}, got {init!r}.") from None
        for W, b, (fi, fo) in zip(coefs, intercepts, self.coef_shapes):
            W[...] = draw(random_state, fi, fo)
            b[...] = 0.0
        return params

    def glorot_factors(self):
        """Glorot's factor of each weight layer: 2 for logistic units, else 6.

        One activation name: scikit-learn's rule, its factor for every layer.
        One per hidden layer: W_l takes hidden layer l's, the output layer the
        last hidden layer's (an all-"logistic" list equals "logistic").
        """
        L = self.n_layers - 1
        if isinstance(self.activation, str) or not self.activations:
            names = [self.activation] * L
        else:
            names = [self.activations[min(i, len(self.activations) - 1)] for i in range(L)]
        return [2.0 if name == "logistic" else 6.0 for name in names]

    def __repr__(self):
        return (
            f"Network({self.layer_units}, activation={self.activation!r}, "
            f"out_activation={self.out_activation!r}, loss={self.loss!r}, "
            f"dtype={self.dtype.name})"
        )


def _orthogonal(random_state, fan_in, fan_out):
    """A (fan_in, fan_out) matrix with orthonormal columns (fan_in >= fan_out)
    or rows (fan_in < fan_out), uniformly distributed."""
    rows, cols = max(fan_in, fan_out), min(fan_in, fan_out)
    Q, R = np.linalg.qr(random_state.standard_normal((rows, cols)))
    # QR's Q is not uniform over orthogonal matrices unless diag(R) > 0.
    Q *= np.where(np.diag(R) < 0, -1.0, 1.0)
    return Q if fan_in >= fan_out else Q.T


# init -> draw(random_state, fan_in, fan_out) of one weight matrix (float64).
_WEIGHT_DRAWS = {
    "glorot_normal": lambda rs, fi, fo: rs.normal(0.0, np.sqrt(2.0 / (fi + fo)), (fi, fo)),
    "he_uniform": lambda rs, fi, fo: rs.uniform(-np.sqrt(6.0 / fi), np.sqrt(6.0 / fi), (fi, fo)),
    "he_normal": lambda rs, fi, fo: rs.normal(0.0, np.sqrt(2.0 / fi), (fi, fo)),
    "lecun_normal": lambda rs, fi, fo: rs.normal(0.0, np.sqrt(1.0 / fi), (fi, fo)),
    "orthogonal": _orthogonal,
}
