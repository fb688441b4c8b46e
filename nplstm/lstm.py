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

from .variants import ACTIVATIONS, VANILLA, VARIANTS, Variant  # noqa: F401  (also importable from here)
from .workspace import Workspace, fresh, hidden_states

I, F, G, O = range(4)  # gate blocks along the 4H axis
IF = slice(I, G)        # i and f together: the gates that peek at c_{t-1}


class Cache(NamedTuple):
    """What the backward pass needs from the forward pass of one layer and direction."""
    x1: np.ndarray           # (T, B, I+1) the input with a column of ones: [x_t, 1]
    gates: np.ndarray        # (T, B, 4, H) activations i, f, g, o (1 for a removed gate); a view of (T, 4, B, H)
    c: np.ndarray            # (T+1, B, H) cell states, c[0] = c_0
    h: np.ndarray            # (T+1, B, H) hidden states, h[0] = h_0
    tanh_c: np.ndarray       # (T, B, H) the output activation of c_t: tanh(c_t), or c_t itself (NOAF)
    batch_sizes: tuple       # n_t for t = 0..T-1, non-increasing
    variant: Variant
    xh: np.ndarray | None = None  # (T+1, B, I+1+H): row t is [x1[t], h[t]]; x1 and h are views of it (None: apart)

    @property
    def peephole(self) -> str | None:
        return self.variant.peephole

    @property
    def forget_gate(self) -> bool:
        return self.variant.forget_gate


def lstm_forward(x, h0, c0, W, R, b, p=None, *, batch_sizes, peephole="diagonal", forget_gate=True,
                 variant: Variant | None = None, R_gates=None, ws: Workspace | None = None,
                 a_out: np.ndarray | None = None, keep: bool = True, out: np.ndarray | None = None):
    """Run one direction over the whole sequence.

    x: (T, B, I); h0, c0: (B, H); W: (I, 4H); R: (H, 4H); b: (4H,);
    p: (p_i, p_f, p_o), each (H,) for "diagonal" or (H, H) for "full"; None without peepholes.
    variant: the cell's parts (Variant; None: Variant(peephole, forget_gate=forget_gate));
    R_gates: (3H, 3H) with variant.gate_recurrence, rows [i, f, o]_{t-1}, columns [a_i, a_f, a_o].
    ws: a Workspace to take the cache's arrays from (None: fresh arrays).
    a_out: None, or a (T, B, 4H) array that receives the pre-activations a_t (peepholes included;
    the block of a removed gate is 0), for diagnostics; rows past n_t are left alone.
    keep: False is inference (nplstm.no_grad): no cache, and only a chunk of steps' gates in memory.
    out: with keep=False, None or a (T, B, H) array of any strides (a view into the caller's batch-first
    output, so that no second copy is made) that receives h_1..h_T; zeros in rows past n_t if ragged.
    Returns h (T+1, B, H) with h[1:] the outputs, c (T+1, B, H), and the Cache; with keep=False,
    the outputs h_1..h_T (T, B, H) (`out` if given), c_n (B, H) (each row's state after its own last
    step) and None.
    Rows past n_t keep zeros in h[t+1], c[t+1]: the caller reads final states at each row's length.
    """
    v = Variant(peephole, forget_gate=forget_gate) if variant is None else variant
    peephole = v.peephole
    T, B, _ = x.shape
    H = R.shape[0]
    ragged = batch_sizes[-1] < B             # finished rows must hold finite zeros for the GEMMs below
    alloc = fresh if ws is None else ws.get
    # Trick 1, halving: σ(a) = (1 + tanh(a/2)) / 2. The i, f, o columns of W, R, b and the peepholes
    # are halved once here, so the buffer below holds a/2 for i, f, o (a for g), and one tanh call per
    # step activates i, f and g together; `u *= ½; u += ½` then turns tanh(a/2) into σ(a).
    half = np.full((4, 1, 1), 0.5, x.dtype)  # per gate block: ½ for i, f, o, 1 for g
    half[G] = 1.0
    shift = 1 - half                         # σ(a) = tanh(a/2) · ½ + ½
    # Trick 3, gate blocks: z[t, k] (B, H) is gate k of step t, so the elementwise work on one gate runs over
    # contiguous memory. NumPy pays one inner loop per row for a (B, H) block inside (B, 4H) rows, and for an
    # operand broadcast over the rows, so per-gate constants are repeated over the rows too (scale_b, p_if).
    tanh_all = peephole is None and v.input_activation == "tanh"   # one tanh call can activate all four blocks
    if tanh_all:
        scale_b, shift_b = alloc("scale", (4, B, H), x.dtype), alloc("shift", (4, B, H), x.dtype)
        scale_b[...], shift_b[...] = half, shift
    # Trick 4, one GEMM a step. Training keeps each row [x_t, 1, h_{t-1}] of xh side by side, so
    # [x_t, 1, h_{t-1}] [W; b; R] is a_t (halved), written into z[t], which then holds the gates (the cache);
    # and the backward's dW, db and dR are one GEMM too. Inference makes the same GEMMs (the same bits) on a
    # chunk of S rows, which it refills: h_t goes into row t+1, and out of the chunk at its end.
    I1 = x.shape[2] + 1                      # Trick 2: [x_t, 1] [W; b] = x_t W + b, the bias in the GEMM
    one_gemm = H >= 512                      # one (n, K)·(K, 4H) GEMM a step, copied into the gate blocks, beats
    M = _halved_weights(W, b, R, half, one_gemm)   # four (n, K)·(K, H) ones that write them, once H is large
    S = T if keep else max(1, min(T, CHUNK // (B * 4 * H)))
    name = "" if keep else "inference "      # inference's small buffers do not evict training's
    xh = alloc(name + "xh", (S + 1, B, I1 + H), x.dtype, zero=ragged)   # row t: [x_t, 1], h_{t-1} (h[t])
    xh[..., I1 - 1] = 1.0
    z = alloc("gates", (T, 4, B, H), x.dtype, zero=ragged) if keep else None   # finished rows: finite gates
    if peephole == "diagonal":
        p_if, p_o = alloc("p_if", (2, B, H), x.dtype), alloc("p_o", (B, H), x.dtype)   # p_i, p_f; p_o, per row
        p_if[...], p_o[...] = np.stack(p[:2])[:, None] * 0.5, p[2] * 0.5
    elif peephole == "full":
        p_if, p_o = np.stack(p[:2]) * 0.5, p[2] * 0.5            # (2, H, H): c_prev P_i, c_prev P_f at once
    Rg_half = None if not v.gate_recurrence else R_gates * 0.5     # every column is a σ gate's
    unused = [q for q, kept in ((I, v.input_gate), (F, v.forget_gate and not v.coupled), (O, v.output_gate))
              if not kept]                   # blocks whose pre-activation the cell never uses
    tanh_g = v.input_activation == "tanh"
    h, h0, hs = hidden_states(alloc, h0, T, x.dtype, ragged, keep, out, xh[:, :, I1:] if keep else None)
    xh[0, :, I1:] = h0
    c = alloc(name + "c", (T + 1 if keep else 1, B, H), x.dtype, zero=ragged)   # inference: c_t overwrites c_{t-1}
    tanh_c = alloc(name + "tanh_c", (T if keep else 1, B, H), x.dtype, zero=ragged)
    c[0] = c0
    rec = alloc("rec", (B, 4 * H), x.dtype) if one_gemm else None   # a_t before its split into gate blocks
    tmp = alloc("tmp", (2, B, H), x.dtype)  # products added into a_t or c_t: no allocation inside the loop
    tmp_1, a_fixed = alloc("tmp_1", (B, H), x.dtype), None if keep else alloc("a", (4, B, H), x.dtype)
    a_out4 = None if a_out is None else a_out.reshape(T, B, 4, H)
    # Trick 5, few Python-level costs per step (they dominate at small sizes): 0-d constants (a Python float is
    # converted on every call), outputs passed by position, scratch views made again only when n_t changes;
    # inference, which keeps no gates, activates every step in one fixed buffer, so its gate views too.
    one_half, one = np.array(0.5, x.dtype), np.array(1.0, x.dtype)
    n_prev, gates_prev = None, None          # n_t of the step before; FGR: [i, f, o] of step t-1, (n, 3H)
    for s0 in range(0, T, S):                # training: one chunk of all T steps
        s1 = min(T, s0 + S)
        xh[:s1 - s0, :, :I1 - 1] = x[s0:s1]
        if s0 and ragged:
            xh[1:, :, I1:] = 0.0             # finished rows' h stays 0 in the outputs
        for t in range(s0, s1):
            n = batch_sizes[t]
            if n != n_prev:                  # the first n_t rows of the scratch arrays
                n_prev = n
                tmp_n, tmp_1_n = tmp[:, :n], tmp_1[:n]
                if one_gemm:
                    rec_n = rec[:n]
                    rec_n4 = rec_n.reshape(n, 4, H).transpose(1, 0, 2)   # (4, n, H)
                scale_n, shift_n = (scale_b[:, :n], shift_b[:, :n]) if tanh_all else (None, None)
                if peephole == "diagonal":
                    p_if_n, p_o_n = p_if[:, :n], p_o[:n]
                if not keep:                 # inference: a_t, c_t and tanh c_t live in fixed buffers
                    a = a_fixed[:, :n]
                    i, f, g, o = a
                    c_prev = c_t = c[0, :n]  # c_t overwrites c_{t-1}
                    tanh_c_t = tanh_c[0, :n]
            j = t - s0                       # the step's row in xh
            if keep:                         # training: a_t is z[t], kept in the cache
                a = z[t, :, :n]              # (4, n, H): a_t (halved), then the gates
            if one_gemm:
                np.matmul(xh[j, :n], M, rec_n)
                np.copyto(a, rec_n4)
            else:
                np.matmul(xh[j, :n], M, a)   # a_t = [x_t, 1, h_{t-1}] [W; b; R] = x_t W + h_{t-1} R + b
            if keep:
                i, f, g, o = a
                c_prev, c_t, tanh_c_t = c[t, :n], c[t + 1, :n], tanh_c[t, :n]
            if Rg_half is not None and t > 0:    # FGR: + [i, f, o]_{t-1} R_gates
                a[[I, F, O]] += (gates_prev[:n] @ Rg_half).reshape(n, 3, H).transpose(1, 0, 2)
            a_if = a[IF]                         # a_i/2, a_f/2: then tanh of them, then i_t, f_t
            if peephole == "diagonal":           # i and f peek at c_{t-1}
                a_if += np.multiply(c_prev, p_if_n, tmp_n)
            elif peephole == "full":
                a_if += np.matmul(c_prev, p_if, tmp_n)
            if a_out is not None:                # undo the halving: diagnostics see a_t itself
                np.divide(a, half, out=a_out4[t, :n].transpose(1, 0, 2))
                for q in unused:
                    a_out4[t, :n, q] = 0.0
            if tanh_all:                         # o does not wait for c_t: one tanh, one ½ (1 + ·) for all four
                np.tanh(a, a)
                a *= scale_n
                a += shift_n                     # i, f, o = (1 + tanh(a/2)) / 2; g = tanh(a_g) · 1 + 0
            else:
                a_k = a[:3] if tanh_g else a_if  # tanh(a_i/2), tanh(a_f/2) [, g_t = tanh(a_g)]
                np.tanh(a_k, a_k)
                if peephole is None:
                    np.tanh(o, o)
                    o *= one_half
                    o += one_half                # o_t
                a_if *= one_half
                a_if += one_half                 # i_t, f_t = (1 + tanh(a/2)) / 2
            if not v.input_gate:
                i[...] = 1.0                     # NIG: i ≡ 1
            if v.coupled:
                np.subtract(one, i, f)           # CIFG: f = 1 - i
            if v.forget_gate:
                np.multiply(f, c_prev, c_t)      # f_t c_{t-1} (in inference c_t is c_{t-1}'s own memory)
            else:
                f[...] = 1.0                     # the 1997 LSTM: f ≡ 1
                c_t[...] = c_prev
            c_t += np.multiply(i, g, tmp_1_n)    # c_t = f_t c_{t-1} + i_t g_t
            if peephole is not None:             # o peeks at the new c_t: o holds a_o/2, then σ(a_o)
                if peephole == "diagonal":
                    o += np.multiply(c_t, p_o_n, tmp_1_n)
                else:
                    o += np.matmul(c_t, p_o, tmp_1_n)
                if a_out is not None and v.output_gate:
                    np.multiply(o, 2, out=a_out4[t, :n, O])
                np.tanh(o, o)
                o *= one_half
                o += one_half                    # o_t
            if not v.output_gate:
                o[...] = 1.0                     # NOG: o ≡ 1
            if v.output_activation == "tanh":
                np.tanh(c_t, tanh_c_t)
            else:
                tanh_c_t[...] = c_t              # NOAF: h_t = o_t c_t
            np.multiply(o, tanh_c_t, xh[j + 1, :n, I1:])   # h_t = o_t tanh(c_t), beside x_{t+1}
            if Rg_half is not None:              # a copy, rows [i | f | o]: inference reuses a
                gates_prev = a[[I, F, O]].transpose(1, 0, 2).reshape(n, 3 * H)
        if not keep:                         # the chunk's h_t out, and its last into row 0 for the next chunk
            hs[s0:s1] = xh[1:s1 - s0 + 1, :, I1:]
            xh[0, :, I1:] = xh[s1 - s0, :, I1:]
    if not keep:
        return hs, c[0], None
    return h, c, Cache(xh[:T, :, :I1], z.transpose(0, 2, 1, 3), c, h, tanh_c, tuple(batch_sizes), v, xh)


def _halved_weights(W, b, R, half, one_gemm: bool) -> np.ndarray:
    """[W; b; R] (K = I+1+H rows), gate k's columns times half[k]: (K, 4H) if one_gemm, else (4, K, H), M[k] gate
    k's columns. One new array, scaled in place: inference's peak memory holds one copy of the weights."""
    I, H = W.shape[0], R.shape[0]
    if one_gemm:
        M = np.concatenate([W, b[None], R])
        return np.multiply(M, np.repeat(half.ravel(), H), out=M)
    M = np.empty((4, I + 1 + H, H), W.dtype)
    M[:, :I] = W.reshape(I, 4, H).transpose(1, 0, 2)
    M[:, I] = b.reshape(4, H)
    M[:, I + 1:] = R.reshape(H, 4, H).transpose(1, 0, 2)
    M *= half
    return M


CHUNK = 1 << 17  # elements of local derivatives computed at once: ~512 KiB of float32 stays in cache


def _local_derivatives(gates, c_prev, tanh_c, d_da, dh_dc, carry, v: Variant, p=None):
    """Per-step factors of the backward pass, for a chunk of steps at once (fewer, larger NumPy calls).

    gates: (S, 4, B, H) i, f, g, o; c_prev, tanh_c: (S, B, H). Fills and returns
    d_da (S, 4, B, H) = [∂c/∂a_i, ∂c/∂a_f, ∂c/∂a_g, ∂h/∂a_o], so that δa_i = δc ⊙ d_da[i] (and f, g)
    and δa_o = δh ⊙ d_da[o]; dh_dc (S, B, H) = ∂h/∂c, so that δc_t += δh ⊙ dh_dc; and carry (S, B, H)
    = ∂c_t/∂c_{t-1}, so that δc_{t-1} = δc_t ⊙ carry. p: the diagonal peepholes (p_i, p_f, p_o), folded in
    (None: the caller adds them): the paths c_{t-1} -> a_i, a_f and c_t -> a_o are elementwise too.
    """
    i, f, g, o = (gates[:, k] for k in range(4))
    da_i, da_f, da_g, da_o = (d_da[:, k] for k in range(4))   # (S, B, H) blocks of d_da
    np.multiply(gates, gates, out=d_da)
    np.subtract(gates, d_da, out=d_da)      # σ' = s - s² for i, f, o
    if v.input_activation == "tanh":
        np.multiply(g, g, out=da_g)
        np.subtract(1, da_g, out=da_g)       # tanh' = 1 - g²
    else:
        da_g[...] = 1.0                      # NIAF: g = a_g
    if v.coupled:
        da_i *= g - c_prev                   # CIFG: c = (1 - i) c_{t-1} + i g, so ∂c/∂i = g - c_{t-1}
    else:
        da_i *= g                            # ∂c/∂i = g
    if v.forget_gate and not v.coupled:
        da_f *= c_prev                       # ∂c/∂f = c_{t-1}
    else:
        da_f[...] = 0.0                      # f ≡ 1, or f = 1 - i: no pre-activation of f to train
    da_g *= i                                # ∂c/∂g = i
    da_o *= tanh_c                           # ∂h/∂o = tanh(c)
    if not v.input_gate:
        da_i[...] = 0.0                      # i ≡ 1
    if not v.output_gate:
        da_o[...] = 0.0                      # o ≡ 1
    if v.output_activation == "tanh":
        np.multiply(tanh_c, tanh_c, out=dh_dc)
        np.subtract(1, dh_dc, out=dh_dc)
        dh_dc *= o                           # ∂h/∂c = o (1 - tanh² c)
    else:
        dh_dc[...] = o                       # NOAF: ∂h/∂c = o
    carry[...] = f                           # the carousel: ∂c_t/∂c_{t-1} = f_t (1 without a forget gate)
    if p is not None:
        p_i, p_f, p_o = p
        carry += da_i * p_i                  # + p_i ∂c_t/∂a_i: i_t peeked at c_{t-1}
        carry += da_f * p_f                  # + p_f ∂c_t/∂a_f
        dh_dc += da_o * p_o                  # + p_o ∂h/∂a_o: o_t peeked at c_t
    return d_da, dh_dc, carry


def lstm_backward(dy, dh_n, dc_n, cache: Cache, W, R, p=None, *, R_gates=None, ws: Workspace | None = None,
                  da_out: np.ndarray | None = None):
    """Backpropagate through time for one direction.

    dy: (T, B, H) gradient of the outputs h_1..h_T (rows past n_t are ignored);
    dh_n, dc_n: (B, H) gradient of each row's final state; R_gates: (3H, 3H) with gate recurrence;
    ws: a Workspace for scratch arrays;
    da_out: None, or a (T, B, 4H) array that receives δa_t = dL/da_t for every step (diagnostics).
    Returns dx (T, B, I), dh0 (B, H), dc0 (B, H) and grads {"W", "R", "b", "p_i", "p_f", "p_o", "R_gates"}.
    """
    x1, gates4, c, h, tanh_c, batch_sizes, v, _ = cache
    gates = gates4.transpose(0, 2, 1, 3)     # (T, 4, B, H): the forward's gate blocks
    peephole = v.peephole
    T, B, _ = x1.shape
    H = R.shape[0]
    ragged = batch_sizes[-1] < B
    alloc = fresh if ws is None else ws.get
    if da_out is None:
        da_all = alloc("da", (T, B, 4 * H), x1.dtype, zero=ragged)
    else:
        da_all = da_out
        if ragged:
            da_all.fill(0)                   # finished rows stay 0
    da4_all = da_all.reshape(T, B, 4, H)     # δa_t = dL/da_t
    dh = dh_n.astype(x1.dtype, copy=True)   # (B, H) running δh_t; finished rows carry dh_n
    dc = dc_n.astype(x1.dtype, copy=True)   # (B, H) running δc_t
    fgr = v.gate_recurrence
    fold = peephole == "diagonal" and not fgr   # the peepholes go into the local derivatives
    if peephole == "diagonal":
        p_if, p_o = np.stack(p[:2]), p[2]    # (2, H), (H,)
    elif peephole == "full":
        p_if = np.ascontiguousarray(np.concatenate(p[:2], axis=1).T)  # (2H, H) = [P_i | P_f]ᵀ
        p_o = np.ascontiguousarray(p[2].T)
    if fgr:                                  # δ[i, f, o]_{t-1} = δa_t M, M (4H, 3H): R_gatesᵀ, no g rows
        M = np.zeros((4, H, 3 * H), x1.dtype)
        M[[I, F, O]] = R_gates.reshape(3 * H, 3, H).transpose(1, 2, 0)
        M = M.reshape(4 * H, 3 * H)
        dgates = np.zeros((B, 3 * H), x1.dtype)  # δ[i, f, o]_t arriving from step t+1's pre-activations
        trainable = [(I, v.input_gate), (F, v.forget_gate and not v.coupled), (O, v.output_gate)]
    # Trick: the local derivatives depend on the forward alone, so they are computed for a chunk of
    # `chunk` steps at once (few large NumPy calls, over the gate-major blocks) and the time loop only
    # multiplies by them.
    chunk = max(1, min(T, CHUNK // (B * 4 * H)))
    d_da, dh_dc = alloc("d_da", (chunk, 4, B, H), x1.dtype), alloc("dh_dc", (chunk, B, H), x1.dtype)
    carry, tmp, tmp2 = (alloc(k, shape, x1.dtype) for k, shape in
                        (("carry", (chunk, B, H)), ("dtmp", (B, H)), ("dtmp2", (B, 2, H))))
    R_T = np.ascontiguousarray(R.T)          # a row-major copy: δa Rᵀ runs faster than on the view
    n_prev = None
    for end in range(T, 0, -chunk):          # chunks [start, end), the last chunk first
        start = max(0, end - chunk)
        _local_derivatives(gates[start:end], c[start:end], tanh_c[start:end], d_da[:end - start],
                           dh_dc[:end - start], carry[:end - start], v, p if fold else None)
        for t in range(end - 1, start - 1, -1):
            n, s = batch_sizes[t], t - start
            if n != n_prev:                  # views of the running and scratch arrays, as in the forward
                n_prev = n
                dh_t, dc_t, tmp_n, tmp2_n = dh[:n], dc[:n], tmp[:n], tmp2[:n]
            d_da_t = d_da[s, :, :n]          # (4, n, H)
            da, da4 = da_all[t, :n], da4_all[t, :n]
            dh_t += dy[t, :n]                # h_t feeds the output y_t and step t+1
            # backprop h_t = o_t tanh(c_t)
            np.multiply(dh_t, d_da_t[O], da4[:, O])                  # δa_o
            if fgr:                          # o_t also fed a_{t+1} through R_gates
                _add_gate_recurrence(da4, dgates[:n], gates4[t, :n], trainable, v.coupled, H, O)
            dc_t += np.multiply(dh_t, dh_dc[s, :n], tmp_n)          # δc_t += δh_t ∂h/∂c (with p_o, if folded)
            if peephole == "diagonal" and not fold:   # o_t peeked at c_t
                dc_t += np.multiply(da4[:, O], p_o, tmp_n)
            elif peephole == "full":
                dc_t += np.matmul(da4[:, O], p_o, tmp_n)
            # backprop c_t = f_t c_{t-1} + i_t g_t into a_i, a_f, a_g at once
            np.multiply(dc_t, d_da_t[:O], da4[:, :O].transpose(1, 0, 2))
            if fgr:                          # i_t, f_t also fed a_{t+1} through R_gates
                _add_gate_recurrence(da4, dgates[:n], gates4[t, :n], trainable, v.coupled, H, I, F)
            dc_t *= carry[s, :n]             # the carousel: δc_{t-1} = δc_t f_t (+ the i, f peepholes, if folded)
            if peephole == "diagonal" and not fold:   # i_t, f_t peeked at c_{t-1}: δc_{t-1} += δa_i p_i + δa_f p_f
                pf = np.multiply(da4[:, IF], p_if, tmp2_n)   # (a sum over 2 terms: two adds beat a reduction)
                dc_t += np.add(pf[:, 0], pf[:, 1], tmp_n)
            elif peephole == "full":
                dc_t += np.matmul(da[:, :2 * H], p_if, tmp_n)
            if fgr:                          # backprop [i, f, o]_{t-1} R_gates into the gates of step t-1
                np.matmul(da, M, dgates[:n])
            np.matmul(da, R_T, dh_t)         # backprop a_t into h_{t-1}
    # Weight gradients: one GEMM each over all steps and rows (finished rows have δa = 0).
    da2 = da_all.reshape(T * B, 4 * H)
    grads = weight_grads(cache, da2)
    if peephole == "diagonal":
        grads["p_i"] = np.einsum("tbh,tbh->h", da4_all[:, :, I], c[:-1])
        grads["p_f"] = np.einsum("tbh,tbh->h", da4_all[:, :, F], c[:-1])
        grads["p_o"] = np.einsum("tbh,tbh->h", da4_all[:, :, O], c[1:])
    elif peephole == "full":
        c_prev2, c2 = c[:-1].reshape(T * B, H), c[1:].reshape(T * B, H)
        grads["p_i"] = c_prev2.T @ da4_all[:, :, I].reshape(T * B, H)
        grads["p_f"] = c_prev2.T @ da4_all[:, :, F].reshape(T * B, H)
        grads["p_o"] = c2.T @ da4_all[:, :, O].reshape(T * B, H)
    if fgr:                                  # dR_gates = Σ_t [i, f, o]_{t-1}ᵀ δa_{i,f,o,t}, t >= 1
        grads["R_gates"] = (gates4[:-1][:, :, [I, F, O]].reshape((T - 1) * B, 3 * H).T
                            @ da4_all[1:][:, :, [I, F, O]].reshape((T - 1) * B, 3 * H))
    dx = (da2 @ np.ascontiguousarray(W.T)).reshape(T, B, -1)  # (T, B, I)
    return dx, dh, dc, grads


def weight_grads(cache: Cache, da2: np.ndarray) -> dict:
    """{"W", "b", "R"}: Σ over steps and rows of [x_t, 1]ᵀ δa_t and h_{t-1}ᵀ δa_t (the ones sum δa into db); da2
    (T·B, 4H). With the rows [x_t, 1, h_{t-1}] side by side (cache.xh), one GEMM, faster below H = 512 here."""
    T, B, I1 = cache.x1.shape
    H = da2.shape[1] // 4
    if cache.xh is not None and H < 512:     # δaᵀ [x 1 h], the faster order of the operands here
        g = (da2.T @ cache.xh[:T].reshape(T * B, I1 + H)).T
        return {"W": np.ascontiguousarray(g[:I1 - 1]), "b": g[I1 - 1].copy(), "R": np.ascontiguousarray(g[I1:])}
    X = None if cache.xh is None else cache.xh[:T].reshape(T * B, I1 + H)   # a view: its column blocks need no copy
    x2, h2 = (cache.x1.reshape(T * B, I1), cache.h[:-1].reshape(T * B, H)) if X is None else (X[:, :I1], X[:, I1:])
    return {"W": (dWb := x2.T @ da2)[:-1], "b": dWb[-1], "R": h2.T @ da2}


def _add_gate_recurrence(da4, dgates, gates, trainable, coupled, H, *blocks):
    """FGR: δa_q += δq ⊙ σ'(a_q) for the gates q in `blocks`, δq from step t+1's R_gates term.
    dgates (n, 3H) = [δi, δf, δo]; with CIFG, f = 1 - i sends δf to i with a minus sign."""
    column = {I: 0, F: 1, O: 2}
    for q, kept in trainable:
        if q not in blocks or not kept:
            continue
        s = gates[:, q]
        dq = dgates[:, column[q] * H:(column[q] + 1) * H]
        if q == I and coupled:
            dq = dq - dgates[:, H:2 * H]
        da4[:, q] += dq * s * (1 - s)        # σ'(a) = σ (1 - σ)
