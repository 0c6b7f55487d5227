"""What the bench runs: the workload, the implementations compared, the data,
and the FLOPs and GEMM shapes of a case.

Every estimator does the same work: same layer sizes, activation, solver and
hyper-parameters, minibatches of the same size over a reshuffled epoch, a
fixed number of epochs (``tol=0`` and ``n_iter_no_change`` huge so nothing
stops early).

FLOPs are counted per sample and per epoch, with P the number of weights
(biases and elementwise work not counted):

* forward ``2P``; weight gradients ``2P``; delta propagation ``2P`` minus the
  first layer (no delta is propagated into the input);
* sparse input: the first layer's products count ``2 * nnz * units`` instead;
* predict: ``2P`` per sample.
"""

import importlib.util
import warnings

import numpy as np
import scipy.sparse as sp

FLOP_NOTE = (
    "FLOPs counted per sample as forward 2P + weight gradients 2P + delta "
    "propagation 2P minus the first layer (P = number of weights; biases and "
    "elementwise work not counted); sparse first layer: 2*nnz*units per product; "
    "predict: 2P."
)

BACKEND_ORDER = ("cython", "cython-1t", "numpy", "sklearn", "sklearn-1t", "torch")
BACKEND_LABELS = {
    "cython": "fastbp-cython",
    "cython-1t": "fastbp-cython (1 BLAS thread)",
    "numpy": "fastbp-numpy",
    "sklearn": "scikit-learn",
    "sklearn-1t": "scikit-learn (1 BLAS thread)",
    "torch": "pytorch-cpu",
}

# Workload W (docs/performance.md, "Targets").
W_ROWS, W_FEATURES, W_HIDDEN, W_CLASSES = 20_000, 784, (256,), 10
W_BATCHES = (32, 256, 1024)

# The training controls and network options the bench prices on W at batch
# 256, compiled backend: (key, label, parameters), the parameters any keywords
# of make_classifier (fastbp-only ones included); "defaults" (relu, no
# dropout) is the baseline of the others.
CONTROLS_BATCH = 256
CONTROLS = (
    ("defaults", "defaults", {}),
    ("adamw", "AdamW (weight_decay=1e-2)", {"weight_decay": 1e-2}),
    ("clip", "clipping (max_grad_norm=1.0)", {"max_grad_norm": 1.0}),
    ("both", "AdamW + clipping", {"weight_decay": 1e-2, "max_grad_norm": 1.0}),
    ("leaky_relu", "leaky_relu (vs relu)", {"activation": "leaky_relu"}),
    ("elu", "elu (vs relu)", {"activation": "elu"}),
    ("selu", "selu (vs relu)", {"activation": "selu"}),
    ("gelu", "gelu (vs relu)", {"activation": "gelu"}),
    ("silu", "silu (vs relu)", {"activation": "silu"}),
    ("dropout", "dropout=0.2", {"dropout": 0.2}),
)

# Keywords of make_classifier only fastbp's estimators take.
FASTBP_ONLY = ("weight_decay", "max_grad_norm", "dropout", "negative_slope", "init")

# Sizes per mode of ``python -m fastbp bench``: rows of W, features, hidden
# layers, epochs per timed fit (idle / busy), batch sizes (idle / busy),
# predict rows, memory rows, threading rows, grid rows, GEMM peak size and
# repeats, and the training controls' epochs per fit and interleaved rounds
# on W's rows (and whether the run judges their targets).
CONFIGS = {
    "full": dict(rows=W_ROWS, features=W_FEATURES, hidden=W_HIDDEN, epochs=2,
                 batches=W_BATCHES, busy_epochs=1, busy_batches=W_BATCHES,
                 busy_predict=True, predict_rows=100_000, memory_rows=100_000,
                 thread_rows=10_000, grid_rows=4_000, gemm=1536, gemm_repeats=5,
                 controls_epochs=1, controls_rounds=7,
                 controls_judge=True),
    "quick": dict(rows=2_048, features=W_FEATURES, hidden=W_HIDDEN, epochs=1,
                  batches=W_BATCHES, busy_epochs=1, busy_batches=(32,),
                  busy_predict=False, predict_rows=20_000, memory_rows=10_000,
                  thread_rows=2_000, grid_rows=1_000, gemm=768, gemm_repeats=3,
                  controls_epochs=1, controls_rounds=2,
                  controls_judge=False),
    "tiny": dict(rows=512, features=64, hidden=(32,), epochs=1,
                 batches=(32, 256), busy_epochs=1, busy_batches=(32,),
                 busy_predict=True, predict_rows=2_000, memory_rows=1_000,
                 thread_rows=256, grid_rows=200, gemm=128, gemm_repeats=2,
                 controls_epochs=1, controls_rounds=2,
                 controls_judge=False),
}


# --------------------------------------------------------------- backends
def torch_available():
    """Whether torch is installed (found, not imported: importing it is slow)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def skip_reason(backend, *, activation="relu", solver="adam", sparse_input=False,
                memory=False):
    """Why ``backend`` cannot run a case, or None when it can."""
    if backend in ("cython", "cython-1t"):
        from ..backends import cython_available

        if not cython_available():
            return "fastbp's compiled backend is not built"
        return None
    if backend == "numpy":
        return None
    if backend in ("sklearn", "sklearn-1t"):
        if activation in ("softplus", "maxout"):
            return f"scikit-learn has no {activation} activation"
        return None
    if backend == "torch":
        if not torch_available():
            return "torch is not importable"
        if activation == "maxout":
            return "no maxout in the torch comparison loop"
        if solver == "lbfgs":
            return "torch's LBFGS is not scikit-learn's L-BFGS-B"
        if sparse_input:
            return "sparse input not in the torch comparison loop"
        if memory:
            return "torch's allocations are invisible to tracemalloc"
        return None
    return f"unknown backend {backend!r}"


def make_classifier(backend, hidden=(256,), *, activation="relu", solver="adam",
                    batch_size=256, max_iter=1, alpha=1e-4, learning_rate_init=1e-3,
                    momentum=0.9, nesterovs_momentum=True, maxout_pieces=2,
                    random_state=0, **fastbp_only):
    """A classifier doing a fixed number of epochs (no early stop) on ``backend``.

    ``fastbp_only`` are keywords of fastbp's own (``FASTBP_ONLY``: e.g.
    ``weight_decay``, ``max_grad_norm``, ``dropout``): only fastbp's backends
    take them."""
    unknown = sorted(set(fastbp_only) - set(FASTBP_ONLY))
    if unknown:
        raise TypeError(f"make_classifier() got unexpected keyword arguments {unknown}")
    kw = dict(
        hidden_layer_sizes=tuple(hidden), activation=activation, solver=solver,
        batch_size=batch_size, max_iter=max_iter, alpha=alpha,
        learning_rate_init=learning_rate_init, momentum=momentum,
        nesterovs_momentum=nesterovs_momentum, random_state=random_state,
        tol=0.0, n_iter_no_change=10**9, shuffle=True,
    )
    if solver == "lbfgs":
        kw["max_fun"] = 10**9
    if backend in ("cython", "cython-1t", "numpy"):
        from ..estimators import BPClassifier

        est = BPClassifier(backend=backend.split("-")[0], maxout_pieces=maxout_pieces,
                           **fastbp_only, **kw)
        return _OneThread(est) if backend == "cython-1t" else est
    if fastbp_only:
        raise ValueError(f"{', '.join(sorted(fastbp_only))}: fastbp's own; backend "
                         f"{backend!r} has none of them")
    if backend in ("sklearn", "sklearn-1t"):
        from sklearn.neural_network import MLPClassifier

        est = MLPClassifier(**kw)
        return _OneThread(est) if backend == "sklearn-1t" else est
    if backend == "torch":
        from .torch_ref import TorchClassifier

        return TorchClassifier(**kw)
    raise ValueError(f"unknown backend {backend!r}")


def control_skip_reason(params):
    """Why fastbp cannot fit a case with ``params`` (e.g. an activation this
    build lacks), or None when it can: a tiny fit on the NumPy backend."""
    X = np.linspace(-1.0, 1.0, 16, dtype=np.float32).reshape(8, 2)
    y = np.arange(8) % 2
    try:
        est = make_classifier("numpy", (2,), batch_size=4, max_iter=1, **params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X, y)
    except (ValueError, TypeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


class _OneThread:
    """Runs an estimator's fit / predict with BLAS limited to one thread."""

    def __init__(self, est):
        self.est = est

    def __getattr__(self, name):
        attr = getattr(self.est, name)
        if name in ("fit", "partial_fit", "predict", "predict_proba"):
            def run(*a, **k):
                from threadpoolctl import threadpool_limits

                with threadpool_limits(limits=1, user_api="blas"):
                    out = attr(*a, **k)
                return self if out is self.est else out
            return run
        return attr


# ------------------------------------------------------------------- data
def make_dense(n, m=W_FEATURES, n_classes=W_CLASSES, dtype=np.float32, seed=0):
    """Uniform [0, 1) features (MNIST-like scale) and random labels."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, m), dtype=np.float64 if dtype == np.float64 else np.float32)
    y = rng.integers(0, n_classes, n)
    return X, y


def make_sparse(n, m, density, n_classes=W_CLASSES, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.csr_matrix(sp.random_array((n, m), density=density, format="csr",
                                      dtype=dtype, rng=rng))
    X.sort_indices()
    y = rng.integers(0, n_classes, n)
    return X, y


# ------------------------------------------------------------------ FLOPs
def weight_shapes(n_features, hidden, n_outputs, activation="relu", maxout_pieces=2):
    k = maxout_pieces if activation == "maxout" else 1
    fan_in = [n_features, *hidden]
    fan_out = [h * k for h in hidden] + [n_outputs]
    return list(zip(fan_in, fan_out, strict=True))


def train_flops(n_samples, shapes, nnz=None):
    """FLOPs of one epoch over ``n_samples`` rows (see FLOP_NOTE); ``nnz``:
    stored entries of a sparse X (the epoch's rows)."""
    P = sum(a * b for a, b in shapes)
    P1 = shapes[0][0] * shapes[0][1]
    per_sample_rest = 6 * (P - P1)  # forward + weight grad + delta propagation
    if nnz is None:
        first = 4 * P1 * n_samples  # forward + weight gradient
    else:
        first = 4 * nnz * shapes[0][1]
    return per_sample_rest * n_samples + first


def predict_flops(n_samples, shapes):
    return 2 * sum(a * b for a, b in shapes) * n_samples


def n_outputs_for(n_classes):
    return 1 if n_classes == 2 else n_classes


# ------------------------------------------------------------ GEMM shapes
def _row_blocks(n_samples, block):
    """{rows: count} of the blocks an epoch (or a predict) cuts ``n_samples`` into."""
    full, rest = divmod(n_samples, block)
    out = {block: full} if full else {}
    if rest:
        out[rest] = 1
    return out


def train_gemms(n_samples, batch_size, shapes):
    """The matrix products of one dense training epoch, in the order one
    minibatch does them, as ``[(rows_of_batch, count, [(m, k, n), ...])]``:
    forward ``Z (b x in) . W (in x out)`` per layer, then from the last layer
    down the weight gradient ``Z^T (in x b) . D (b x out)`` and, except for
    the first layer, the delta ``D (b x out) . W^T (out x in)``."""
    out = []
    for b, count in _row_blocks(n_samples, min(batch_size, n_samples)).items():
        products = [(b, fin, fout) for fin, fout in shapes]
        for i in range(len(shapes) - 1, -1, -1):
            fin, fout = shapes[i]
            products.append((fin, b, fout))
            if i > 0:
                products.append((b, fout, fin))
        out.append((b, count, products))
    return out


def predict_gemms(n_samples, shapes, block=512):
    """The matrix products of a predict over ``n_samples`` rows in blocks of
    ``block`` rows (the compiled backend's predict block), same format."""
    return [(b, count, [(b, fin, fout) for fin, fout in shapes])
            for b, count in _row_blocks(n_samples, min(block, n_samples)).items()]


def gemm_flops(gemms):
    return sum(2 * m * k * n * count for _, count, products in gemms
               for m, k, n in products)
