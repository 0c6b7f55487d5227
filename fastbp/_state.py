"""What a fitted estimator's pickled state holds, and how it comes back.

The state of a BPClassifier / BPRegressor (what ``pickle``, ``joblib`` and
``skops`` store) holds only builtins, NumPy arrays and the scikit-learn /
NumPy objects scikit-learn's own MLP holds (a ``LabelBinarizer``, a
``RandomState``). fastbp's internal objects are not stored:

* the ``Network`` and the flat parameter buffer are rebuilt from
  ``coefs_`` / ``intercepts_`` on load (``coefs_`` / ``intercepts_`` are views
  into the new buffer again);
* the optimizer state (``OptState``: moments, velocities, step count,
  learning rate) is stored as a plain dict and rebuilt, so ``partial_fit`` and
  ``warm_start`` continue where the saved model stopped.

So a skops file of a fastbp model asks its reader to trust the estimator
class and nothing else of fastbp, and a loaded state is checked for
consistency (layer shapes, optimizer buffers) before any kernel sees it.
"""

import numpy as np

from .solvers import SOLVER_CODES, OptState

# Marks a dict in the state that stands for one of fastbp's internal objects.
_TAG = "__fastbp_internal__"


def _encode_opt_state(state):
    attrs = dict(vars(state))
    attrs.pop("code", None)  # derived from the solver name on load
    return {_TAG: "OptState", "attrs": attrs}


def _decode_opt_state(encoded, where):
    attrs = dict(encoded.get("attrs") or {})
    solver = attrs.get("solver")
    if solver not in SOLVER_CODES:
        raise ValueError(
            f"{where}: the saved optimizer state names the unknown solver {solver!r}."
        )
    state = OptState.__new__(OptState)
    state.__dict__.update(attrs)
    state.code = SOLVER_CODES[solver]
    for name in ("m", "v"):
        if not isinstance(getattr(state, name, None), np.ndarray):
            raise ValueError(f"{where}: the saved optimizer state has no array {name!r}.")
    return state


# The internal types that are stored as plain data: type -> (tag, encode).
_ENCODERS = {OptState: ("OptState", _encode_opt_state)}
_DECODERS = {"OptState": _decode_opt_state}


def _is_encoded(value):
    return isinstance(value, dict) and _TAG in value


class PlainStateMixin:
    """``__getstate__`` / ``__setstate__`` storing builtins and arrays only.

    Put it first among the bases of an estimator derived from ``_BaseBP``. It
    relies on the estimator's ``_network_from_attributes(dtype)`` (network and
    packed buffer from ``coefs_`` / ``intercepts_``) and
    ``_set_buffer(net, params)``.
    """

    def __getstate__(self):
        # A copy: on Python >= 3.11 object.__getstate__ returns the live __dict__.
        state = dict(super().__getstate__())
        # Rebuilt on load from coefs_ / intercepts_, which carry the values.
        state.pop("_net", None)
        state.pop("_params", None)
        for key, value in state.items():
            encoder = _ENCODERS.get(type(value))
            if encoder is not None:
                state[key] = encoder[1](value)
        return state

    def __setstate__(self, state):
        state = dict(state)
        where = f"loading a {type(self).__name__}"
        for key, value in state.items():
            if _is_encoded(value):
                decode = _DECODERS.get(value[_TAG])
                if decode is None:
                    raise ValueError(f"{where}: unknown internal object {value[_TAG]!r}.")
                state[key] = decode(value, where)
        # Files written before this mixin existed hold a Network object.
        state.pop("_net", None)
        super().__setstate__(state)
        if "coefs_" in state:
            self._rebuild_buffer(where)

    def _rebuild_buffer(self, where):
        """Network and flat buffer from coefs_ / intercepts_, after checking
        that the loaded attributes describe one network."""
        coefs = self.coefs_
        intercepts = getattr(self, "intercepts_", None)
        if (not isinstance(coefs, list) or not isinstance(intercepts, list)
                or not coefs or len(coefs) != len(intercepts)):
            raise ValueError(
                f"{where}: coefs_ and intercepts_ must be non-empty lists of equal length."
            )
        checked = {}
        for name, arrays, ndim in (("coefs_", coefs, 2), ("intercepts_", intercepts, 1)):
            checked[name] = []
            for i, a in enumerate(arrays):
                a = np.asarray(a)
                if a.dtype.kind in "biu":  # e.g. integer weights a user assigned
                    a = a.astype(np.float64)
                if a.ndim != ndim or a.dtype not in (np.float32, np.float64):
                    raise ValueError(
                        f"{where}: {name}[{i}] must be a {ndim}-D float32 or float64 array."
                    )
                checked[name].append(a)
        self.coefs_, self.intercepts_ = checked["coefs_"], checked["intercepts_"]
        dtype = self.coefs_[0].dtype
        try:
            net, params = self._network_from_attributes(dtype)
        except Exception as exc:  # any malformed saved parameter
            raise ValueError(f"{where}: the saved weights do not form a network: {exc}") from exc
        n_in = getattr(self, "n_features_in_", net.layer_units[0])
        n_out = getattr(self, "n_outputs_", net.layer_units[-1])
        if n_in != net.layer_units[0] or n_out != net.layer_units[-1]:
            raise ValueError(
                f"{where}: n_features_in_={n_in} and n_outputs_={n_out} do not "
                f"match the weights' layer sizes {net.layer_units}."
            )
        self._set_buffer(net, params)
        best = getattr(self, "_best_params", None)
        if best is not None:
            best = np.asarray(best)
            if best.shape != params.shape:
                raise ValueError(f"{where}: _best_params does not match the network.")
            self._best_params = best.astype(dtype)
        opt = getattr(self, "_opt_state", None)
        if opt is not None:
            n_v = net.n_params if opt.solver == "adam" else 0
            if opt.m.shape != params.shape or opt.v.shape != (n_v,):
                raise ValueError(
                    f"{where}: the saved optimizer state does not match the network."
                )
            if opt.m.dtype != dtype or opt.v.dtype != dtype:
                opt.astype(dtype)
