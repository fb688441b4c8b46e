"""LSTM.internals(): the gates and states of the last forward, in the caller's layout."""
import numpy as np
import pytest

import nplstm
from nplstm.ops import sigmoid


def test_internals_match_outputs_and_equations():
    rng = np.random.default_rng(0)
    lstm = nplstm.LSTM(3, 4, num_layers=2, bidirectional=True, peephole="diagonal", dtype=np.float64, seed=1)
    x = rng.standard_normal((3, 6, 3))
    lengths = np.array([4, 6, 2])
    y, (h_n, c_n) = lstm.forward(x, lengths=lengths)
    inside = lstm.internals()
    assert list(inside) == ["l0", "l0_reverse", "l1", "l1_reverse"]
    top = np.concatenate([inside["l1"]["h"], inside["l1_reverse"]["h"]], axis=-1)
    for b, L in enumerate(lengths):
        np.testing.assert_allclose(top[b, :L], y[b, :L])
        np.testing.assert_allclose(inside["l1"]["c"][b, L - 1], c_n[2, b])      # forward ends at its length
        np.testing.assert_allclose(inside["l1_reverse"]["c"][b, 0], c_n[3, b])  # reverse ends at t = 0
    # the first step of the forward direction from zero state: c_0 = i_0 g_0, i_0 = σ(x_0 W_i + b_i)
    p = lstm.params
    a = x[:, 0] @ p["l0.W"] + p["l0.b"]
    np.testing.assert_allclose(inside["l0"]["i"][:, 0], sigmoid(a[:, :4]), rtol=1e-12)
    np.testing.assert_allclose(inside["l0"]["c"][:, 0], inside["l0"]["i"][:, 0] * np.tanh(a[:, 8:12]), rtol=1e-12)


def test_internals_before_forward():
    with pytest.raises(ValueError, match="before forward"):
        nplstm.LSTM(2, 3).internals()


@pytest.mark.parametrize("B,lengths", [(1, None), (3, None), (3, [2, 5, 4])])
def test_returned_arrays_survive_the_next_call(B, lengths):
    """Scratch memory is reused between calls; nothing handed to the caller may alias it."""
    rng = np.random.default_rng(1)
    lstm = nplstm.LSTM(2, 3, bidirectional=True, seed=0)
    lengths = None if lengths is None else np.array(lengths)
    x1, x2 = (rng.standard_normal((B, 5, 2)).astype(np.float32) for _ in range(2))
    y1, (h1, c1) = lstm.forward(x1, lengths=lengths)
    inside1 = lstm.internals()
    dx1, (dh1, _) = lstm.backward(np.ones_like(y1))
    returned = (y1, h1, c1, dx1, dh1, inside1["l0"]["c"], *lstm.grads.values())
    kept = [a.copy() for a in returned]
    lstm.forward(x2, lengths=lengths)
    lstm.backward(np.full_like(y1, 2.0))
    for before, after in zip(kept, returned):
        np.testing.assert_array_equal(before, after)
