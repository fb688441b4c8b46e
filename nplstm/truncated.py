"""The original LSTM learning rule: a truncated gradient, with the cell state's derivatives carried forward.

Hochreiter & Schmidhuber (1997, section 4 and appendix A.1) did not backpropagate through time. Errors
that reach the pre-activations of the gates and of the cell input stop there: they change the weights
into those units but never travel back through h_{t-1} (the recurrent path is truncated). What does
travel through time is the cell state's dependence on those weights, carried forward RTRL-style along
the constant error carousel, so the gradient is exact for the carousel path within the truncation.
Gers, Schmidhuber & Cummins (2000) added the forget gate to the carried derivatives; Gers, Schraudolph
& Schmidhuber (2002, JMLR 3) added peepholes and state that no error flows back from the gates through
the peepholes into the cell (`peephole_error=False`, the default here).

Notation of docs/math.md, gate blocks i, f, g, o; z_t = [x_t, h_{t-1}, 1] (B, K), K = I + H + 1, and
U = [W; R; b] (K, 4H), so a_t = z_t U + peephole terms. The truncation: in every derivative below,
h_{t-1} inside a_t is a constant, and so (by default) is the cell state a peephole reads. Then

    ∂c_t/∂a_i = g_t σ'(a_i),  ∂c_t/∂a_f = c_{t-1} σ'(a_f),  ∂c_t/∂a_g = i_t g'(a_g)   (d_i, d_f, d_g)
    e_t[k, q] = ∂c_t/∂U[k, q] = κ_t ⊙ e_{t-1}[k, q] + z_t[k] d_q,t      q ∈ {i, f, g}, e_0 = 0
    e^p_t[q]  = ∂c_t/∂p_q     = κ_t ⊙ e^p_{t-1}[q] + c_{t-1} ⊙ d_q,t    q ∈ {i, f} (diagonal peepholes)
    κ_t = f_t (the carousel; 1 without a forget gate), or with peephole_error=True
    κ_t = f_t + d_i p_i + d_f p_f (c_{t-1} also reaches c_t through the gates that peek at it).

With δh_t = ∂ℓ_t/∂h_t (the loss of step t through h_t alone), the gradient of ℓ_t is

    δc_t = δh_t ⊙ o_t act'(c_t)  [+ δa_o ⊙ p_o with peephole_error=True]
    δa_o = δh_t ⊙ act(c_t) σ'(a_o)                         (the output gate: a plain local gradient)
    ∂ℓ_t/∂U[k, q] = Σ_rows δc_t e_t[k, q]  (q ∈ i, f, g),   ∂ℓ_t/∂U[k, o] = Σ_rows z_t[k] δa_o
    ∂ℓ_t/∂p_q = Σ_rows δc_t ⊙ e^p_t[q]  (q ∈ i, f),        ∂ℓ_t/∂p_o = Σ_rows δa_o ⊙ c_t

`online_step` / `online_gradients` compute exactly this after every step, so a caller may update the
weights after every step, as the papers did. For fixed weights the sum over steps equals a backward
pass along the carousel alone, ĉ_t = δc_t + κ_{t+1} ĉ_{t+1}, δa_q,t = ĉ_t d_q,t (the traces' sum
reordered): `truncated_backward` computes it that way, with one GEMM per weight, from the engine's
Cache. tests/test_truncated.py holds both to each other and to finite differences of the truncated
forward. Cells: diagonal peepholes or none, and every variant flag of variants.Variant but gate recurrence.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import reference
from .lstm import F, G, I, O, Cache, _local_derivatives, lstm_forward, weight_grads
from .variants import VANILLA, Variant


def _check_variant(v: Variant) -> None:
    if v.peephole not in ("diagonal", None):
        raise ValueError(f"peephole: the truncated rule is local to each cell, so expected 'diagonal' or None, "
                         f"got {v.peephole!r}")
    if v.gate_recurrence:
        raise ValueError("gate_recurrence (FGR): not supported by the truncated rule, expected False")


def _derivatives(gates4, c_prev, act_c, v: Variant):
    """lstm._local_derivatives for gates4 (S, B, 4, H): d_da in the same layout, and dh_dc (S, B, H)."""
    d_da, dh_dc = np.empty(gates4.shape, gates4.dtype), np.empty(c_prev.shape, gates4.dtype)
    _local_derivatives(gates4.transpose(0, 2, 1, 3), c_prev, act_c, d_da.transpose(0, 2, 1, 3), dh_dc,
                       np.empty_like(dh_dc), v)
    return d_da, dh_dc


def _carry(f, d_da, p, v: Variant, peephole_error: bool):
    """κ = ∂c_t/∂c_{t-1} in the truncated graph: f_t, plus the peepholes' path with peephole_error. (..., H)"""
    if peephole_error and v.peephole is not None:
        return f + d_da[..., I, :] * p[0] + d_da[..., F, :] * p[1]
    return f


def truncated_backward(dy: np.ndarray, cache: Cache, p=None, *, peephole_error: bool = False) -> dict:
    """The 1997 rule's gradient summed over a sequence, for the weights the forward pass used.

    dy: (T, B, H) ∂L/∂h_t of every step; cache: lstm_forward's Cache (every row running all T steps);
    p: (p_i, p_f, p_o) each (H,), or None. Returns grads {"W", "R", "b"[, "p_i", "p_f", "p_o"]}, the
    shapes of the params.
    """
    x1, gates4, c, h, tanh_c, batch_sizes, v, _ = cache
    _check_variant(v)
    T, B, _ = x1.shape
    H = h.shape[2]
    if min(batch_sizes) < B:
        raise ValueError(f"truncated_backward: expected every row to run all {T} steps, got lengths "
                         f"down to {min(batch_sizes)}")
    if not isinstance(dy, np.ndarray) or dy.shape != (T, B, H):
        raise ValueError(f"dy: expected shape {(T, B, H)}, got {getattr(dy, 'shape', type(dy).__name__)}")
    d_da, dh_dc = _derivatives(gates4, c[:-1], tanh_c, v)
    da = np.empty((T, B, 4, H), x1.dtype)                  # δa_t in the truncated graph
    da[:, :, O] = dy * d_da[:, :, O]                       # δa_o = δh act(c) σ'(a_o), every step at once
    dc_own = dy * dh_dc                                    # δc_t from h_t alone: δh o act'(c)
    if peephole_error and v.peephole is not None:
        dc_own += da[:, :, O] * p[2]                       # o_t peeked at c_t
    carry = _carry(gates4[:, :, F], d_da, p, v, peephole_error)  # (T, B, H) κ_t
    dc = np.zeros((B, H), x1.dtype)
    for t in range(T - 1, -1, -1):
        dc = dc_own[t] + dc                                # ĉ_t: c_t's own output, and c_{t+1} through κ_{t+1}
        da[t, :, :O] = dc[:, None, :] * d_da[t, :, :O]     # δa_i, δa_f, δa_g = ĉ_t d_q: no path into h_{t-1}
        dc = dc * carry[t]                                 # backprop c_t = f_t c_{t-1} + ... along the carousel
    da2 = da.reshape(T * B, 4 * H)
    grads = weight_grads(cache, da2)                       # [dW; db; dR], as the engine's backward
    if v.peephole is not None:
        grads["p_i"] = np.einsum("tbh,tbh->h", da[:, :, I], c[:-1])
        grads["p_f"] = np.einsum("tbh,tbh->h", da[:, :, F], c[:-1])
        grads["p_o"] = np.einsum("tbh,tbh->h", da[:, :, O], c[1:])
    return grads


def truncated_gradients(params: dict, x: np.ndarray, dy: np.ndarray, h0=None, c0=None, *,
                        variant: Variant = VANILLA, peephole_error: bool = False) -> dict:
    """Forward pass and the 1997 rule's gradient, summed over the sequence, batch-first.

    params: "W" (I, 4H), "R" (H, 4H), "b" (4H,)[, "p_i", "p_f", "p_o" (H,)]; x: (B, T, I);
    dy: (B, T, H) ∂L/∂h_t; h0, c0: (B, H) or None (zeros); variant: variants.Variant (e.g. VARIANTS["NFG"]).
    Returns grads keyed like params.
    """
    _check_variant(variant)
    B, T, _ = x.shape
    H = params["R"].shape[0]
    zeros = np.zeros((B, H), x.dtype)
    p = None if variant.peephole is None else (params["p_i"], params["p_f"], params["p_o"])
    _, _, cache = lstm_forward(np.ascontiguousarray(x.transpose(1, 0, 2)), zeros if h0 is None else h0,
                               zeros if c0 is None else c0, params["W"], params["R"], params["b"], p,
                               batch_sizes=(B,) * T, variant=variant)
    if not isinstance(dy, np.ndarray) or dy.shape != (B, T, H):
        raise ValueError(f"dy: expected shape {(B, T, H)}, got {getattr(dy, 'shape', type(dy).__name__)}")
    return truncated_backward(np.ascontiguousarray(dy.transpose(1, 0, 2)), cache, p,
                              peephole_error=peephole_error)


class Traces(NamedTuple):
    """The carried derivatives of the cell state (zeros before the first step)."""
    e: np.ndarray                # (B, K, 3, H) ∂c_t/∂U[k, q] for q = i, f, g; K = I + H + 1 (rows of [W; R; b])
    e_p: np.ndarray | None       # (B, 2, H) ∂c_t/∂p_q for q = i, f; None without peepholes


class OnlineStep(NamedTuple):
    """What online_gradients needs from one online_step."""
    z: np.ndarray                # (B, K) [x_t, h_{t-1}, 1]
    c: np.ndarray                # (B, H) c_t
    d_da: np.ndarray             # (B, 4, H) [d_i, d_f, d_g, ∂h/∂a_o]
    dh_dc: np.ndarray            # (B, H) o act'(c), the local ∂h_t/∂c_t
    traces: Traces               # e_t, e^p_t after this step
    variant: Variant
    peephole_error: bool


def online_init(batch_size: int, input_size: int, hidden_size: int, *, peephole: str | None = "diagonal",
                dtype=np.float64) -> Traces:
    """Zero traces for a fresh sequence (c_0 is a constant)."""
    K = input_size + hidden_size + 1
    e_p = None if peephole is None else np.zeros((batch_size, 2, hidden_size), dtype)
    return Traces(np.zeros((batch_size, K, 3, hidden_size), dtype), e_p)


def online_step(x: np.ndarray, h_prev: np.ndarray, c_prev: np.ndarray, traces: Traces, params: dict, *,
                variant: Variant = VANILLA, peephole_error: bool = False):
    """One step of the plain cell (reference.lstm_step_forward) and the traces carried to it.

    x: (B, I); h_prev, c_prev: (B, H); traces: from online_init or the previous step.
    Returns h (B, H), c (B, H) and an OnlineStep (for online_gradients, and its .traces for the next step).
    """
    _check_variant(variant)
    h, c, sc = reference.lstm_step_forward(x, h_prev, c_prev, params, **variant._asdict())
    B, H = c.shape
    z = np.concatenate([x, h_prev, np.ones((B, 1), x.dtype)], axis=1)            # (B, K)
    gates4 = np.stack([sc.i, sc.f, sc.g, sc.o], axis=1)[None]                    # (1, B, 4, H)
    d_da, dh_dc = (d[0] for d in _derivatives(gates4, c_prev[None], sc.act_c[None], variant))
    p = None if variant.peephole is None else (params["p_i"], params["p_f"], params["p_o"])
    carry = _carry(sc.f, d_da, p, variant, peephole_error)[:, None]            # (B, 1, H) κ_t
    e = carry[:, :, None] * traces.e + z[:, :, None, None] * d_da[:, None, :O]  # e_t = κ e_{t-1} + z d_q
    e_p = None
    if variant.peephole is not None:
        e_p = carry * traces.e_p + c_prev[:, None] * d_da[:, :G]               # e^p_t = κ e^p_{t-1} + c_{t-1} d_q
    return h, c, OnlineStep(z, c, d_da, dh_dc, Traces(e, e_p), variant, peephole_error)


def online_gradients(dh: np.ndarray, step: OnlineStep, params: dict) -> dict:
    """The 1997 rule's gradient of one step's loss. dh: (B, H) ∂ℓ_t/∂h_t -> grads keyed like params."""
    z, c, d_da, dh_dc, (e, e_p), v, peephole_error = step
    K, H = z.shape[1], c.shape[1]
    da_o = dh * d_da[:, O]                                 # δa_o = δh act(c) σ'(a_o)
    dc = dh * dh_dc                                        # δc_t = δh o act'(c)
    if peephole_error and v.peephole is not None:
        dc = dc + da_o * params["p_o"]                     # o_t peeked at c_t
    dU = np.empty((K, 4, H), c.dtype)
    dU[:, :O] = np.einsum("bkqh,bh->kqh", e, dc)           # ∂ℓ/∂U[k, q] = Σ_rows δc_t e_t[k, q]
    dU[:, O] = z.T @ da_o                                  # the output gate's local gradient
    dU = dU.reshape(K, 4 * H)                              # rows of [W; R; b]
    n_in = K - H - 1
    grads = {"W": dU[:n_in], "R": dU[n_in:K - 1], "b": dU[K - 1]}
    if v.peephole is not None:
        dp = np.einsum("bqh,bh->qh", e_p, dc)              # ∂ℓ/∂p_q = Σ_rows δc_t e^p_t[q]
        grads["p_i"], grads["p_f"], grads["p_o"] = dp[0], dp[1], (da_o * c).sum(axis=0)
    return grads
