"""One LSTM layer in one direction: the equations of docs/math.md, forward and backward in time.

Arrays are time-major inside, (T, B, ·). Rows of the batch are sorted by length, longest
first, so the sequences still running at step t are the first n_t = batch_sizes[t] rows
(PyTorch's PackedSequence uses the same layout). Rows past n_t are finished: their state
is left alone and their gradient rows stay zero.

Gate blocks along the 4H axis are in the order i, f, g, o.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .ops import sigmoid

I, F, G, O = range(4)  # gate blocks along the 4H axis
IF = slice(I, G)        # i and f together: the gates that peek at c_{t-1}


class Cache(NamedTuple):
    """What the backward pass needs from the forward pass of one layer and direction."""
    x: np.ndarray            # (T, B, I) input
    gates: np.ndarray        # (T, B, 4, H) activations i, f, g, o (f = 1 without a forget gate)
    c: np.ndarray            # (T+1, B, H) cell states, c[0] = c_0
    h: np.ndarray            # (T+1, B, H) hidden states, h[0] = h_0
    tanh_c: np.ndarray       # (T, B, H) tanh(c_t)
    batch_sizes: tuple       # n_t for t = 0..T-1, non-increasing
    peephole: str | None     # "diagonal", "full" or None
    forget_gate: bool


def lstm_forward(x, h0, c0, W, R, b, p=None, *, batch_sizes, peephole="diagonal", forget_gate=True):
    """Run one direction over the whole sequence.

    x: (T, B, I); h0, c0: (B, H); W: (I, 4H); R: (H, 4H); b: (4H,);
    p: (p_i, p_f, p_o), each (H,) for "diagonal" or (H, H) for "full"; None without peepholes.
    Returns h (T+1, B, H) with h[1:] the outputs, c (T+1, B, H), and the Cache.
    Rows past n_t keep zeros in h[t+1], c[t+1]: the caller reads final states at each row's length.
    """
    T, B, _ = x.shape
    H = R.shape[0]
    ragged = batch_sizes[-1] < B
    alloc = np.zeros if ragged else np.empty  # finished rows must hold finite zeros for the GEMMs below
    gates = x @ W                            # (T, B, 4H): input projections of all steps in one GEMM
    gates += b
    gates4 = gates.reshape(T, B, 4, H)       # same memory, one gate per block
    h = alloc((T + 1, B, H), dtype=x.dtype)
    c = alloc((T + 1, B, H), dtype=x.dtype)
    tanh_c = alloc((T, B, H), dtype=x.dtype)
    h[0], c[0] = h0, c0
    if peephole == "diagonal":
        p_if = np.stack(p[:2])               # (2, H)
    elif peephole == "full":
        p_if = np.concatenate(p[:2], axis=1)  # (H, 2H): c_prev @ [P_i | P_f]
    for t, n in enumerate(batch_sizes):
        a = gates[t, :n]                     # (n, 4H), activated in place below
        a4 = gates4[t, :n]                   # (n, 4, H) view of a
        a += h[t, :n] @ R                    # a_t = x_t W + h_{t-1} R + b
        c_prev, c_t = c[t, :n], c[t + 1, :n]
        if peephole == "diagonal":           # i and f peek at c_{t-1}
            a4[:, IF] += c_prev[:, None, :] * p_if
        elif peephole == "full":
            a[:, :2 * H] += c_prev @ p_if
        if forget_gate:
            sigmoid(a[:, :2 * H], out=a[:, :2 * H])  # i_t, f_t in one call
            np.multiply(a4[:, F], c_prev, out=c_t)   # f_t * c_{t-1}
        else:
            sigmoid(a4[:, I], out=a4[:, I])
            a4[:, F] = 1.0                           # the 1997 LSTM: f ≡ 1
            c_t[...] = c_prev
        np.tanh(a4[:, G], out=a4[:, G])              # g_t = tanh(a_g)
        c_t += a4[:, I] * a4[:, G]                   # c_t = f_t c_{t-1} + i_t g_t
        if peephole == "diagonal":                   # o peeks at the new c_t
            a4[:, O] += c_t * p[2]
        elif peephole == "full":
            a4[:, O] += c_t @ p[2]
        sigmoid(a4[:, O], out=a4[:, O])              # o_t
        np.tanh(c_t, out=tanh_c[t, :n])
        np.multiply(a4[:, O], tanh_c[t, :n], out=h[t + 1, :n])  # h_t = o_t tanh(c_t)
    return h, c, Cache(x, gates4, c, h, tanh_c, tuple(batch_sizes), peephole, forget_gate)


def lstm_backward(dy, dh_n, dc_n, cache: Cache, W, R, p=None):
    """Backpropagate through time for one direction.

    dy: (T, B, H) gradient of the outputs h_1..h_T (rows past n_t are ignored);
    dh_n, dc_n: (B, H) gradient of each row's final state.
    Returns dx (T, B, I), dh0 (B, H), dc0 (B, H) and grads {"W", "R", "b", "p_i", "p_f", "p_o"}.
    """
    x, gates4, c, h, tanh_c, batch_sizes, peephole, forget_gate = cache
    T, B, _ = x.shape
    H = R.shape[0]
    ragged = batch_sizes[-1] < B
    da_all = (np.zeros if ragged else np.empty)((T, B, 4 * H), dtype=x.dtype)  # dL/da_t
    da4_all = da_all.reshape(T, B, 4, H)
    dh = dh_n.astype(x.dtype, copy=True)   # (B, H) running dL/dh_t; finished rows carry dh_n
    dc = dc_n.astype(x.dtype, copy=True)   # (B, H) running dL/dc_t
    if peephole == "diagonal":
        p_if = np.stack(p[:2])               # (2, H)
    elif peephole == "full":
        p_if_T = np.concatenate(p[:2], axis=1).T  # (2H, H)
    for t in reversed(range(T)):
        n = batch_sizes[t]
        i, f, g, o = (gates4[t, :n, k] for k in range(4))
        tc = tanh_c[t, :n]
        da = da_all[t, :n]                   # (n, 4H)
        da4 = da4_all[t, :n]                 # (n, 4, H)
        dh_t = dh[:n]
        dh_t += dy[t, :n]                    # h_t feeds the output and step t+1
        dc_t = dc[:n]
        # backprop h_t = o_t tanh(c_t)
        dc_t += dh_t * o * (1 - tc * tc)
        np.multiply(dh_t * tc, o * (1 - o), out=da4[:, O])        # through σ into a_o
        if peephole == "diagonal":           # o_t peeked at c_t
            dc_t += da4[:, O] * p[2]
        elif peephole == "full":
            dc_t += da4[:, O] @ p[2].T
        # backprop c_t = f_t c_{t-1} + i_t g_t
        c_prev = c[t, :n]
        np.multiply(dc_t * g, i * (1 - i), out=da4[:, I])          # into a_i
        np.multiply(dc_t * i, 1 - g * g, out=da4[:, G])            # into a_g through tanh
        if forget_gate:
            np.multiply(dc_t * c_prev, f * (1 - f), out=da4[:, F])  # into a_f
            dc_t *= f                                               # the carousel: dc_{t-1} = dc_t f_t
        else:
            da4[:, F] = 0.0                                         # f ≡ 1: dc_{t-1} = dc_t
        if peephole == "diagonal":           # i_t, f_t peeked at c_{t-1}
            dc_t += (da4[:, IF] * p_if).sum(axis=1)
        elif peephole == "full":
            dc_t += da[:, :2 * H] @ p_if_T
        np.matmul(da, R.T, out=dh_t)         # backprop a_t into h_{t-1}
    # Weight gradients: one GEMM each over all steps and rows (finished rows have da = 0).
    da2 = da_all.reshape(T * B, 4 * H)
    grads = {
        "W": x.reshape(T * B, -1).T @ da2,
        "R": h[:-1].reshape(T * B, H).T @ da2,
        "b": da2.sum(axis=0),
    }
    if peephole == "diagonal":
        grads["p_i"] = np.einsum("tbh,tbh->h", da4_all[:, :, I], c[:-1])
        grads["p_f"] = np.einsum("tbh,tbh->h", da4_all[:, :, F], c[:-1])
        grads["p_o"] = np.einsum("tbh,tbh->h", da4_all[:, :, O], c[1:])
    elif peephole == "full":
        c_prev2, c2 = c[:-1].reshape(T * B, H), c[1:].reshape(T * B, H)
        grads["p_i"] = c_prev2.T @ da4_all[:, :, I].reshape(T * B, H)
        grads["p_f"] = c_prev2.T @ da4_all[:, :, F].reshape(T * B, H)
        grads["p_o"] = c2.T @ da4_all[:, :, O].reshape(T * B, H)
    dx = da_all @ W.T                        # (T, B, I)
    return dx, dh, dc, grads
