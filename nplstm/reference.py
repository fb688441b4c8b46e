"""The LSTM cell written plainly, one step at a time: the equations of docs/math.md, line by line.

This is the file to read to learn how the LSTM computes and backpropagates. It has no tricks: every
gate gets its own array, every backward line names the chain-rule step it takes. The fast engine in
lstm.py (one GEMM over all steps, halved columns, workspaces) computes the same numbers, and
tests/test_reference.py holds it to this file for every variant; this file is in turn checked by
finite differences. It imports NumPy alone, so it can be read without the rest of the package.

Shapes: B batch size, I input size, H hidden size, T steps. One step takes x (B, I), h_prev and
c_prev (B, H). params: "W" (I, 4H), "R" (H, 4H), "b" (4H,), and with peepholes "p_i", "p_f", "p_o",
each (H,) for peephole="diagonal" or (H, H) for peephole="full". Gate blocks along 4H: i, f, g, o.
The sequence functions are time-major: x (T, B, I), h and c (T+1, B, H) with h[0] = h_0, c[0] = c_0.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

PEEPHOLES = ("diagonal", "full", None)


def sigmoid(a: np.ndarray) -> np.ndarray:
    """σ(a) = 1 / (1 + e^-a), any shape."""
    return 0.5 * (1 + np.tanh(0.5 * a))  # the same σ, but tanh saturates where exp(-a) would overflow


def peek(c: np.ndarray, p: np.ndarray, peephole: str) -> np.ndarray:
    """A gate's view of the cell state: c ⊙ p ("diagonal", p (H,)) or c P ("full", P (H, H)); (B, H)."""
    return c * p if peephole == "diagonal" else c @ p


def peek_backward(da: np.ndarray, c: np.ndarray, p: np.ndarray, peephole: str):
    """Backprop a_gate += peek(c, p). da, c: (B, H) -> dc (B, H), dp (H,) or (H, H)."""
    if peephole == "diagonal":
        return da * p, (da * c).sum(axis=0)  # a = c ⊙ p: da/dc = p, da/dp = c, summed over rows
    return da @ p.T, c.T @ da                # a = c P: dc = da Pᵀ, dP = cᵀ da


class StepCache(NamedTuple):
    """What lstm_step_backward needs from lstm_step_forward (all (B, H) unless marked)."""
    x: np.ndarray            # (B, I) input x_t
    h_prev: np.ndarray       # h_{t-1}
    c_prev: np.ndarray       # c_{t-1}
    i: np.ndarray            # input gate
    f: np.ndarray            # forget gate (ones without a forget gate)
    g: np.ndarray            # cell input
    o: np.ndarray            # output gate
    c: np.ndarray            # c_t, the new cell state
    tanh_c: np.ndarray       # tanh(c_t)
    params: dict             # the params of the step (the same arrays, not copies)
    peephole: str | None     # "diagonal", "full" or None
    forget_gate: bool


def lstm_step_forward(x: np.ndarray, h_prev: np.ndarray, c_prev: np.ndarray, params: dict, *,
                      peephole: str | None = "diagonal", forget_gate: bool = True):
    """One LSTM step. x: (B, I); h_prev, c_prev: (B, H) -> h (B, H), c (B, H), StepCache."""
    if peephole not in PEEPHOLES:
        raise ValueError(f"peephole: expected 'diagonal', 'full' or None, got {peephole!r}")
    H = h_prev.shape[1]
    a = x @ params["W"] + h_prev @ params["R"] + params["b"]  # (B, 4H) a = x W + h_prev R + b
    a_i, a_f, a_g, a_o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
    if peephole is not None:                 # i and f peek at the old cell state c_{t-1}
        a_i = a_i + peek(c_prev, params["p_i"], peephole)
        a_f = a_f + peek(c_prev, params["p_f"], peephole)
    i = sigmoid(a_i)                         # input gate
    f = sigmoid(a_f) if forget_gate else np.ones_like(a_f)  # forget gate; f ≡ 1 in the 1997 LSTM
    g = np.tanh(a_g)                         # cell input
    c = f * c_prev + i * g                   # the new cell state
    if peephole is not None:                 # o peeks at the new cell state c_t
        a_o = a_o + peek(c, params["p_o"], peephole)
    o = sigmoid(a_o)                         # output gate
    tanh_c = np.tanh(c)
    h = o * tanh_c                           # the new hidden state
    return h, c, StepCache(x, h_prev, c_prev, i, f, g, o, c, tanh_c, params, peephole, forget_gate)


def lstm_step_backward(dh: np.ndarray, dc_next: np.ndarray, cache: StepCache):
    """Backprop one step.

    dh: (B, H) everything that reaches h_t (the output's gradient plus what step t+1 sends back);
    dc_next: (B, H) what step t+1 sends back to c_t.
    Returns dx (B, I), dh_prev (B, H), dc_prev (B, H) and grads, a dict with the keys of params.
    """
    x, h_prev, c_prev, i, f, g, o, c, tanh_c, params, peephole, forget_gate = cache
    do = dh * tanh_c                         # h = o * tanh(c): backprop into o
    dtanh_c = dh * o                         # h = o * tanh(c): backprop into tanh(c)
    dc = dc_next + dtanh_c * (1 - tanh_c ** 2)  # backprop through tanh(c), added to what step t+1 sent
    da_o = do * o * (1 - o)                  # backprop through o = σ(a_o)
    if peephole is not None:                 # a_o += peek(c, p_o): the output gate saw the new c too
        dc_from_o, dp_o = peek_backward(da_o, c, params["p_o"], peephole)
        dc = dc + dc_from_o                  # now dc holds every path into c
    df = dc * c_prev                         # c = f * c_prev + i * g: backprop into f
    dc_prev = dc * f                         # ... into c_prev: the carousel
    di = dc * g                              # ... into i
    dg = dc * i                              # ... into g
    da_i = di * i * (1 - i)                  # backprop through i = σ(a_i)
    if forget_gate:
        da_f = df * f * (1 - f)              # backprop through f = σ(a_f)
    else:
        da_f = np.zeros_like(df)             # f ≡ 1 is a constant: a_f is unused
    da_g = dg * (1 - g ** 2)                 # backprop through g = tanh(a_g)
    grads = {}
    if peephole is not None:                 # a_i += peek(c_prev, p_i), a_f += peek(c_prev, p_f)
        dc_prev_from_i, grads["p_i"] = peek_backward(da_i, c_prev, params["p_i"], peephole)
        dc_prev_from_f, grads["p_f"] = peek_backward(da_f, c_prev, params["p_f"], peephole)
        dc_prev = dc_prev + dc_prev_from_i + dc_prev_from_f  # c_prev also reached a_i and a_f
        grads["p_o"] = dp_o
    da = np.concatenate([da_i, da_f, da_g, da_o], axis=1)  # (B, 4H), blocks i, f, g, o
    dx = da @ params["W"].T                  # a = x W + h_prev R + b: backprop into x
    dh_prev = da @ params["R"].T             # ... into h_prev
    grads["W"] = x.T @ da                    # ... into W
    grads["R"] = h_prev.T @ da               # ... into R
    grads["b"] = da.sum(axis=0)              # ... into b, summed over the rows of the batch
    return dx, dh_prev, dc_prev, grads


def lstm_reference_forward(x: np.ndarray, h0: np.ndarray, c0: np.ndarray, params: dict, *,
                           peephole: str | None = "diagonal", forget_gate: bool = True):
    """Run lstm_step_forward over a sequence.

    x: (T, B, I); h0, c0: (B, H).
    Returns h (T+1, B, H) with h[1:] the outputs, c (T+1, B, H), and a list of T StepCaches.
    """
    h, c, caches = [h0], [c0], []
    for t in range(x.shape[0]):
        h_t, c_t, cache = lstm_step_forward(x[t], h[t], c[t], params, peephole=peephole, forget_gate=forget_gate)
        h.append(h_t)
        c.append(c_t)
        caches.append(cache)
    return np.stack(h), np.stack(c), caches


def lstm_reference_backward(dy: np.ndarray, dh_n: np.ndarray, dc_n: np.ndarray, caches: list):
    """Backpropagate through time with lstm_step_backward, last step first.

    dy: (T, B, H) gradient of the outputs h_1..h_T; dh_n, dc_n: (B, H) gradient of the final state.
    Returns dx (T, B, I), dh0 (B, H), dc0 (B, H) and grads summed over the steps (the weights are shared).
    """
    T = len(caches)
    dx = [None] * T
    dh_next, dc_next = dh_n, dc_n            # what reaches h_T, c_T from after the sequence
    grads = {}
    for t in range(T - 1, -1, -1):
        dh = dy[t] + dh_next                 # h_t is the output y_t and feeds step t+1
        dx[t], dh_next, dc_next, step_grads = lstm_step_backward(dh, dc_next, caches[t])
        for name, d in step_grads.items():   # every step used the same params: add its share
            grads[name] = grads[name] + d if name in grads else d
    return np.stack(dx), dh_next, dc_next, grads
