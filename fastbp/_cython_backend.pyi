"""Type stub for the compiled backend (fastbp/_cython_backend.pyx).

The public surface is the backend contract shared with
``fastbp._numpy_backend``; the ``_*_shim`` functions exist for the tests.
"""

from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from .network import Network
from .solvers import Hyper, OptState

_Float = np.float32 | np.float64
_FloatArray = npt.NDArray[np.floating[Any]]
_Input = npt.ArrayLike | sp.spmatrix | sp.sparray

name: Literal["cython"]
DEBUG: bool

def forward(
    net: Network, params: _FloatArray, X: _Input, logits: bool = ...
) -> _FloatArray: ...
def loss_grad(
    net: Network,
    params: _FloatArray,
    X: _Input,
    Y: npt.ArrayLike,
    sample_weight: npt.ArrayLike | None = ...,
    alpha: float = ...,
    grad_out: _FloatArray | None = ...,
) -> tuple[float, _FloatArray]: ...
def train_epoch(
    net: Network,
    params: _FloatArray,
    opt_state: OptState,
    X: _Input,
    Y: npt.ArrayLike,
    sample_weight: npt.ArrayLike | None,
    order: npt.ArrayLike,
    batch_size: int,
    hyper: Hyper,
) -> float: ...

# Test shims (see tests/test_cython_backend.py).
def _gemm_shim(
    trans_a: bool,
    trans_b: bool,
    alpha: float,
    A: _FloatArray,
    B: _FloatArray,
    beta: float,
    C: _FloatArray,
) -> None: ...
def _activation_shim(
    code: int, H: _FloatArray, Z_out: _FloatArray, slope: float = ...
) -> _FloatArray: ...
def _activation_grad_shim(code: int, H: _FloatArray) -> tuple[_FloatArray, _FloatArray]: ...
def _derivative_shim(code: int, Z: _FloatArray, D: _FloatArray, slope: float = ...) -> None: ...
def _maxout_shim(H: _FloatArray, k: int) -> tuple[_FloatArray, npt.NDArray[np.intc]]: ...
def _maxout_backward_shim(
    dZ: _FloatArray, arg: npt.NDArray[np.intc], k: int
) -> _FloatArray: ...
def _chunk_seconds_shim(seconds: float) -> float: ...
def _fuse_bytes_shim(n_bytes: int) -> int: ...
def _small_gemm_shim(madds: int) -> int: ...
def _has_direct_small_kernels() -> bool: ...
def _decide_small_gemm() -> None: ...
def _debug_index_probe() -> float: ...
def _dropout_batch_shim(
    net: Network,
    params: _FloatArray,
    X: npt.ArrayLike,
    Y: npt.ArrayLike,
    rates: tuple[float, ...],
    seed: int | None = ...,
    masks: list[_FloatArray | None] | None = ...,
    alpha: float = ...,
    batches: int = ...,
) -> dict[str, Any]: ...
