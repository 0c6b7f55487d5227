"""The optimizer state's save / restore (the roll-back of an epoch that was
interrupted or gave non-finite weights)."""

import numpy as np
import pytest

from fastbp.solvers import OptState


def _scribble(state):
    """Change everything save() records, as an epoch would."""
    state.m[...] = 1.5
    state.v[...] = 2.5
    state.t += 7
    state.learning_rate *= 0.5
    state.epoch += 1
    state.lr_factor = 0.25


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_restore_gives_back_the_zero_moments_of_a_new_state(solver, dtype):
    state = OptState(solver, 11, dtype, 1e-3)
    saved = state.save()
    _scribble(state)
    state.restore(saved)
    assert state.m.dtype == dtype and state.v.dtype == dtype
    assert state.m.shape == (11,) and state.v.shape == ((11,) if solver == "adam" else (0,))
    # bit for bit +0.0 (not -0.0)
    assert not state.m.view(np.uint8).any() and not state.v.view(np.uint8).any()
    assert (state.t, state.learning_rate, state.epoch, state.lr_factor) == (0, 1e-3, 0, 1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_restore_keeps_negative_zeros_and_values_bit_for_bit(dtype):
    state = OptState("adam", 6, dtype, 1e-3)
    state.m[2] = -0.0  # equal to 0.0, but not the same bits
    state.v[4] = np.finfo(dtype).tiny
    m, v = state.m.copy(), state.v.copy()
    saved = state.save()
    _scribble(state)
    state.restore(saved)
    np.testing.assert_array_equal(state.m.view(np.uint8), m.view(np.uint8))
    np.testing.assert_array_equal(state.v.view(np.uint8), v.view(np.uint8))


def test_saving_again_into_a_record_of_zero_moments_records_the_new_values():
    # Epoch 1 saves a new (zero) state; epoch 2 saves into the same record.
    state = OptState("adam", 5, np.float64, 1e-3)
    saved = state.save()
    state.m[...] = np.arange(5.0)
    state.v[...] = np.arange(5.0) ** 2
    state.t = 3
    m, v = state.m.copy(), state.v.copy()
    saved = state.save(into=saved)
    _scribble(state)
    state.restore(saved)
    np.testing.assert_array_equal(state.m, m)
    np.testing.assert_array_equal(state.v, v)
    assert state.t == 3
    # and a third save reuses the record's buffers
    m_buffer = saved["m"]
    state.m[...] = 9.0
    assert state.save(into=saved)["m"] is m_buffer
    np.testing.assert_array_equal(m_buffer, 9.0)
