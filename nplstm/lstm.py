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

I, F, G, O = range(4)  # gate blocks along the 4H axis
IF = slice(I, G)        # i and f together: the gates that peek at c_{t-1}


class Workspace:
    """Scratch arrays kept between calls, by name. A fresh multi-megabyte array costs page faults
    on first touch, which shows at large sizes; reusing one does not. Whatever a call takes from
    a workspace is overwritten by the next call that uses the same workspace."""

    def __init__(self):
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple, dtype, zero: bool = False) -> np.ndarray:
        a = self._arrays.get(name)
        if a is None or a.shape != shape or a.dtype != dtype:
            a = self._arrays[name] = np.empty(shape, dtype)
        if zero:
            a.fill(0)
        return a


def _fresh(name: str, shape: tuple, dtype, zero: bool = False) -> np.ndarray:
    return (np.zeros if zero else np.empty)(shape, dtype)


class Variant(NamedTuple):
    """Which parts the cell has (Greff et al. 2017, "LSTM: A Search Space Odyssey"); the defaults
    are their vanilla LSTM. A removed gate keeps its block in the 4H layout, unused, with zero gradient."""
    peephole: str | None = "diagonal"  # "diagonal": p (H,); "full": P (H, H); None (NP)
    input_gate: bool = True            # False: i ≡ 1 (NIG)
    forget_gate: bool = True           # False: f ≡ 1 (NFG, the 1997 LSTM)
    output_gate: bool = True           # False: o ≡ 1 (NOG)
    input_activation: str = "tanh"     # "identity": g = a_g (NIAF)
    output_activation: str = "tanh"    # "identity": h = o c (NOAF)
    coupled: bool = False              # True: f = 1 - i (CIFG)
    gate_recurrence: bool = False      # True: [i, f, o]_{t-1} R_gates joins a_{i,f,o} (FGR)


VANILLA = Variant()
ACTIVATIONS = ("tanh", "identity")
# Greff et al.'s names: each changes one thing of the vanilla LSTM
VARIANTS = {"vanilla": VANILLA, "NIG": Variant(input_gate=False), "NFG": Variant(forget_gate=False),
            "NOG": Variant(output_gate=False), "NIAF": Variant(input_activation="identity"),
            "NOAF": Variant(output_activation="identity"), "NP": Variant(peephole=None),
            "CIFG": Variant(coupled=True), "FGR": Variant(gate_recurrence=True)}


class Cache(NamedTuple):
    """What the backward pass needs from the forward pass of one layer and direction."""
    x1: np.ndarray           # (T, B, I+1) the input with a column of ones: [x_t, 1]
    gates: np.ndarray        # (T, B, 4, H) activations i, f, g, o (1 for a removed gate)
    c: np.ndarray            # (T+1, B, H) cell states, c[0] = c_0
    h: np.ndarray            # (T+1, B, H) hidden states, h[0] = h_0
    tanh_c: np.ndarray       # (T, B, H) the output activation of c_t: tanh(c_t), or c_t itself (NOAF)
    batch_sizes: tuple       # n_t for t = 0..T-1, non-increasing
    variant: Variant

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
    alloc = _fresh if ws is None else ws.get
    # Trick 1, halving: σ(a) = (1 + tanh(a/2)) / 2. The i, f, o columns of W, R, b and the peepholes
    # are halved once here, so the buffer below holds a/2 for i, f, o (a for g), and one tanh call per
    # step activates i, f and g together; `u *= 0.5; u += 0.5` then turns tanh(a/2) into σ(a).
    half = np.full(4 * H, 0.5, x.dtype)
    half[G * H:(G + 1) * H] = 1.0
    Wb = np.concatenate([W, b[None]]) * half  # Trick 2: [x_t, 1] [W; b] = x_t W + b, the bias rides in the GEMM
    # Trick 3, few GEMMs for all steps: for a chunk of S steps at once, `z` starts as x_t W + b (halved);
    # each step adds h_{t-1} R and activates its row in place, so after step t, z[t] holds the gates
    # i, f, g, o. Training keeps every step's z (the cache); inference reuses one chunk's worth.
    S = max(1, min(T, CHUNK // (B * 4 * H)))
    name = "" if keep else "inference "      # inference's small buffers do not evict training's
    x1 = alloc(name + "x1", (T if keep else S, B, x.shape[2] + 1), x.dtype)
    x1[..., -1] = 1.0
    z = alloc(name + "gates", (T if keep else S, B, 4 * H), x.dtype)
    z4 = z.reshape(z.shape[0], B, 4, H)      # same memory, one gate per block
    R_half = R * half
    if peephole == "diagonal":
        p_if, p_o = np.stack(p[:2]) * 0.5, p[2] * 0.5              # (2, H), (H,)
    elif peephole == "full":
        p_if, p_o = np.concatenate(p[:2], axis=1) * 0.5, p[2] * 0.5  # (H, 2H): c_prev @ [P_i | P_f]
    Rg_half = None if not v.gate_recurrence else R_gates * 0.5     # every column is a σ gate's
    unused = [q for q, kept in ((I, v.input_gate), (F, v.forget_gate and not v.coupled), (O, v.output_gate))
              if not kept]                   # blocks whose pre-activation the cell never uses
    tanh_g = v.input_activation == "tanh"
    tanh_all = peephole is None and tanh_g   # one tanh call can activate all four blocks
    h, h0, hs = hidden_states(alloc, h0, T, x.dtype, ragged, keep, out)   # hs[t] is h_{t+1}
    c = alloc(name + "c", (T + 1 if keep else 1, B, H), x.dtype, zero=ragged)   # inference: c_t overwrites c_{t-1}
    tanh_c = alloc(name + "tanh_c", (T if keep else 1, B, H), x.dtype, zero=ragged)
    c[0] = c0
    rec = alloc("rec", (B, 4 * H), x.dtype)  # h_{t-1} R, reused every step
    tmp = alloc("tmp", (B, 2, H), x.dtype)  # products added into a_t or c_t: no allocation inside the loop
    tmp_if, tmp_1, a_fixed = tmp.reshape(B, 2 * H), alloc("tmp_1", (B, H), x.dtype), alloc("a", (B, 4 * H), x.dtype)
    # Trick 4, few Python-level costs per step (they dominate at small sizes): constants are 0-d arrays
    # (a Python float is converted on every call), outputs are passed by position, and the views of the
    # scratch arrays are made again only when n_t changes. Inference, which keeps no gates, activates
    # every step in one fixed buffer, so that its gate views too are made only then.
    one_half, one = np.array(0.5, x.dtype), np.array(1.0, x.dtype)
    shift = 1 - half                         # ½ for i, f, o and 0 for g: σ(a) = tanh(a/2) · ½ + ½
    n_prev, gates_prev = None, None          # n_t of the step before; FGR: [i, f, o] of step t-1, (n, 3H)
    for s0 in range(0, T, S):
        s1 = min(T, s0 + S)
        k0 = s0 if keep else 0               # where this chunk's steps sit in x1 and z
        x1[k0:k0 + s1 - s0, :, :-1] = x[s0:s1]
        np.matmul(x1[k0:k0 + s1 - s0].reshape(-1, x1.shape[2]), Wb, out=z[k0:k0 + s1 - s0].reshape(-1, 4 * H))
        for t in range(s0, s1):
            n = batch_sizes[t]
            if n != n_prev:                  # the first n_t rows of the scratch arrays
                n_prev = n
                rec_n, tmp_n, tmp_if_n, tmp_1_n = rec[:n], tmp[:n], tmp_if[:n], tmp_1[:n]
                if not keep:                 # inference: a_t, c_t and tanh c_t live in fixed buffers
                    a, a4, a_if, i, f, g, o = _gate_views(a_fixed[:n], H)
                    c_prev = c_t = c[0, :n]  # c_t overwrites c_{t-1}
                    c_prev3, tanh_c_t = c_prev[:, None, :], tanh_c[0, :n]
            j = k0 + t - s0
            h_prev = hs[t - 1, :n] if t else h0[:n]
            if keep:                         # training: a_t is row t of the cache, then its gates
                a = z[j, :n]
                a += np.matmul(h_prev, R_half, rec_n)        # a_t = x_t W + h_{t-1} R + b
                a, a4, a_if, i, f, g, o = _gate_views(a, H)
                c_prev, c_t, tanh_c_t = c[t, :n], c[t + 1, :n], tanh_c[t, :n]
                c_prev3 = c_prev[:, None, :]
            else:
                np.add(z[j, :n], np.matmul(h_prev, R_half, rec_n), a)   # the same a_t, in the fixed buffer
            if Rg_half is not None and t > 0:    # FGR: + [i, f, o]_{t-1} R_gates
                a4[:, [I, F, O]] += (gates_prev[:n] @ Rg_half).reshape(n, 3, H)
            if peephole == "diagonal":           # i and f peek at c_{t-1}
                np.multiply(c_prev3, p_if, tmp_n)
                a_if += tmp_if_n
            elif peephole == "full":
                a_if += np.matmul(c_prev, p_if, tmp_if_n)
            if a_out is not None:                # undo the halving: diagnostics see a_t itself
                np.divide(a, half, out=a_out[t, :n])
                for q in unused:
                    a_out[t, :n, q * H:(q + 1) * H] = 0.0
            if tanh_all:                         # o does not wait for c_t: one tanh, one ½ (1 + ·) for all four
                np.tanh(a, a)
                a *= half
                a += shift                       # i, f, o = (1 + tanh(a/2)) / 2; g = tanh(a_g) · 1 + 0
            else:
                a_k = a[:, :3 * H] if tanh_g else a_if   # tanh(a_i/2), tanh(a_f/2) [, g_t = tanh(a_g)]
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
                    o += np.multiply(c_t, p_o, tmp_1_n)
                else:
                    o += np.matmul(c_t, p_o, tmp_1_n)
                if a_out is not None and v.output_gate:
                    np.multiply(o, 2, out=a_out[t, :n, O * H:])
                np.tanh(o, o)
                o *= one_half
                o += one_half                    # o_t
            if not v.output_gate:
                o[...] = 1.0                     # NOG: o ≡ 1
            if v.output_activation == "tanh":
                np.tanh(c_t, tanh_c_t)
            else:
                tanh_c_t[...] = c_t              # NOAF: h_t = o_t c_t
            np.multiply(o, tanh_c_t, hs[t, :n])  # h_t = o_t tanh(c_t)
            if Rg_half is not None:
                gates_prev = a4[:, [I, F, O]].reshape(n, 3 * H)   # a copy: the chunk's z is reused
    if not keep:
        return hs, c[0], None
    return h, c, Cache(x1, z4, c, h, tanh_c, tuple(batch_sizes), v)


def _gate_views(a, H: int):
    """a (n, 4H) -> a, a4 (n, 4, H), a_if (n, 2H), i, f, g, o (n, H): views; a/2 (a for g) until activated."""
    a4 = a.reshape(a.shape[0], 4, H)
    return a, a4, a[:, :2 * H], a4[:, I], a4[:, F], a4[:, G], a4[:, O]


def hidden_states(alloc, h0, T: int, dtype, ragged: bool, keep: bool, out=None):
    """Where a forward writes h_t: (h, h0, hs) with hs[t] = h_{t+1}, (T, B, H), and h0 the state read at t = 0.

    Training keeps h (T+1, B, H) for the backward, h[0] = h_0 (from the workspace `alloc`); inference keeps no
    h: it reads h_0 from the caller and writes h_1..h_T into `out` (or a fresh array), so h is None.
    """
    B, H = h0.shape
    if not keep:
        return None, h0, out if out is not None else _fresh("h", (T, B, H), dtype, zero=ragged)
    h = alloc("h", (T + 1, B, H), dtype, zero=ragged)
    h[0] = h0
    return h, h[0], h[1:]


CHUNK = 1 << 17  # elements of local derivatives computed at once: ~512 KiB of float32 stays in cache


def _local_derivatives(gates4, c_prev, tanh_c, d_da, dh_dc, v: Variant):
    """Per-step factors of the backward pass, for a chunk of steps at once (fewer, larger NumPy calls).

    gates4: (S, B, 4, H) i, f, g, o; c_prev, tanh_c: (S, B, H). Fills and returns
    d_da (S, B, 4, H) = [∂c/∂a_i, ∂c/∂a_f, ∂c/∂a_g, ∂h/∂a_o], so that δa_i = δc ⊙ d_da[i] (and f, g)
    and δa_o = δh ⊙ d_da[o]; and dh_dc (S, B, H) = ∂h/∂c = o (1 - tanh² c), so that δc += δh ⊙ dh_dc.
    """
    i, f, g, o = (gates4[:, :, k] for k in range(4))
    np.multiply(gates4, gates4, out=d_da)
    np.subtract(gates4, d_da, out=d_da)      # σ' = s - s² for i, f, o
    if v.input_activation == "tanh":
        np.subtract(1, g * g, out=d_da[:, :, G])  # tanh' = 1 - g²
    else:
        d_da[:, :, G] = 1.0                  # NIAF: g = a_g
    if v.coupled:
        d_da[:, :, I] *= g - c_prev          # CIFG: c = (1 - i) c_{t-1} + i g, so ∂c/∂i = g - c_{t-1}
    else:
        d_da[:, :, I] *= g                   # ∂c/∂i = g
    if v.forget_gate and not v.coupled:
        d_da[:, :, F] *= c_prev              # ∂c/∂f = c_{t-1}
    else:
        d_da[:, :, F] = 0.0                  # f ≡ 1, or f = 1 - i: no pre-activation of f to train
    d_da[:, :, G] *= i                       # ∂c/∂g = i
    d_da[:, :, O] *= tanh_c                  # ∂h/∂o = tanh(c)
    if not v.input_gate:
        d_da[:, :, I] = 0.0                  # i ≡ 1
    if not v.output_gate:
        d_da[:, :, O] = 0.0                  # o ≡ 1
    if v.output_activation == "tanh":
        np.multiply(tanh_c, tanh_c, out=dh_dc)
        np.subtract(1, dh_dc, out=dh_dc)
        dh_dc *= o                           # ∂h/∂c = o (1 - tanh² c)
    else:
        dh_dc[...] = o                       # NOAF: ∂h/∂c = o
    return d_da, dh_dc


def lstm_backward(dy, dh_n, dc_n, cache: Cache, W, R, p=None, *, R_gates=None, ws: Workspace | None = None,
                  da_out: np.ndarray | None = None):
    """Backpropagate through time for one direction.

    dy: (T, B, H) gradient of the outputs h_1..h_T (rows past n_t are ignored);
    dh_n, dc_n: (B, H) gradient of each row's final state; R_gates: (3H, 3H) with gate recurrence;
    ws: a Workspace for scratch arrays;
    da_out: None, or a (T, B, 4H) array that receives δa_t = dL/da_t for every step (diagnostics).
    Returns dx (T, B, I), dh0 (B, H), dc0 (B, H) and grads {"W", "R", "b", "p_i", "p_f", "p_o", "R_gates"}.
    """
    x1, gates4, c, h, tanh_c, batch_sizes, v = cache
    peephole = v.peephole
    T, B, _ = x1.shape
    H = R.shape[0]
    ragged = batch_sizes[-1] < B
    alloc = _fresh if ws is None else ws.get
    if da_out is None:
        da_all = alloc("da", (T, B, 4 * H), x1.dtype, zero=ragged)
    else:
        da_all = da_out
        if ragged:
            da_all.fill(0)                   # finished rows stay 0
    da4_all = da_all.reshape(T, B, 4, H)     # δa_t = dL/da_t
    dh = dh_n.astype(x1.dtype, copy=True)   # (B, H) running δh_t; finished rows carry dh_n
    dc = dc_n.astype(x1.dtype, copy=True)   # (B, H) running δc_t
    if peephole == "diagonal":
        p_if, p_o = np.stack(p[:2]), p[2]    # (2, H), (H,)
    elif peephole == "full":
        p_if = np.ascontiguousarray(np.concatenate(p[:2], axis=1).T)  # (2H, H) = [P_i | P_f]ᵀ
        p_o = np.ascontiguousarray(p[2].T)
    fgr = v.gate_recurrence
    if fgr:                                  # δ[i, f, o]_{t-1} = δa_t M, M (4H, 3H): R_gatesᵀ, no g rows
        M = np.zeros((4, H, 3 * H), x1.dtype)
        M[[I, F, O]] = R_gates.reshape(3 * H, 3, H).transpose(1, 2, 0)
        M = M.reshape(4 * H, 3 * H)
        dgates = np.zeros((B, 3 * H), x1.dtype)  # δ[i, f, o]_t arriving from step t+1's pre-activations
        trainable = [(I, v.input_gate), (F, v.forget_gate and not v.coupled), (O, v.output_gate)]
    # Trick: the local derivatives depend on the forward alone, so they are computed for a chunk of
    # `chunk` steps at once (few large NumPy calls) and the time loop only multiplies by them.
    chunk = max(1, min(T, CHUNK // (B * 4 * H)))
    d_da, dh_dc = alloc("d_da", (chunk, B, 4, H), x1.dtype), alloc("dh_dc", (chunk, B, H), x1.dtype)
    tmp, tmp2 = alloc("tmp", (B, H), x1.dtype), alloc("tmp2", (B, 2, H), x1.dtype)
    R_T = np.ascontiguousarray(R.T)          # a row-major copy: δa Rᵀ runs faster than on the view
    n_prev = None
    for end in range(T, 0, -chunk):          # chunks [start, end), the last chunk first
        start = max(0, end - chunk)
        _local_derivatives(gates4[start:end], c[start:end], tanh_c[start:end], d_da[:end - start],
                           dh_dc[:end - start], v)
        for t in range(end - 1, start - 1, -1):
            n = batch_sizes[t]
            if n != n_prev:                  # views of the running and scratch arrays, as in the forward
                n_prev = n
                dh_t, dc_t, tmp_n, tmp2_n = dh[:n], dc[:n], tmp[:n], tmp2[:n]
                dc_t3 = dc_t[:, None, :]     # (n, 1, H): δc_t for the three blocks i, f, g at once
            d_da_t, dh_dc_t = d_da[t - start, :n], dh_dc[t - start, :n]
            da, da4 = da_all[t, :n], da4_all[t, :n]
            dh_t += dy[t, :n]                # h_t feeds the output y_t and step t+1
            # backprop h_t = o_t tanh(c_t)
            np.multiply(dh_t, d_da_t[:, O], da4[:, O])               # δa_o
            if fgr:                          # o_t also fed a_{t+1} through R_gates
                _add_gate_recurrence(da4, dgates[:n], gates4[t, :n], trainable, v.coupled, H, O)
            dc_t += np.multiply(dh_t, dh_dc_t, tmp_n)               # δc_t += δh_t o_t (1 - tanh² c_t)
            if peephole == "diagonal":       # o_t peeked at c_t
                dc_t += np.multiply(da4[:, O], p_o, tmp_n)
            elif peephole == "full":
                dc_t += np.matmul(da4[:, O], p_o, tmp_n)
            # backprop c_t = f_t c_{t-1} + i_t g_t into a_i, a_f, a_g at once
            np.multiply(dc_t3, d_da_t[:, :O], da4[:, :O])
            if fgr:                          # i_t, f_t also fed a_{t+1} through R_gates
                _add_gate_recurrence(da4, dgates[:n], gates4[t, :n], trainable, v.coupled, H, I, F)
            if v.forget_gate:
                dc_t *= gates4[t, :n, F]     # the carousel: δc_{t-1} = δc_t f_t
            if peephole == "diagonal":       # i_t, f_t peeked at c_{t-1}: δc_{t-1} += δa_i p_i + δa_f p_f
                pf = np.multiply(da4[:, IF], p_if, tmp2_n)   # (a sum over 2 terms: two adds beat a reduction)
                dc_t += np.add(pf[:, 0], pf[:, 1], tmp_n)
            elif peephole == "full":
                dc_t += np.matmul(da[:, :2 * H], p_if, tmp_n)
            if fgr:                          # backprop [i, f, o]_{t-1} R_gates into the gates of step t-1
                np.matmul(da, M, dgates[:n])
            np.matmul(da, R_T, dh_t)         # backprop a_t into h_{t-1}
    # Weight gradients: one GEMM each over all steps and rows (finished rows have δa = 0).
    da2 = da_all.reshape(T * B, 4 * H)
    dWb = x1.reshape(T * B, -1).T @ da2      # [dW; db]: the column of ones sums δa over steps and rows
    grads = {"W": dWb[:-1], "R": h[:-1].reshape(T * B, H).T @ da2, "b": dWb[-1]}
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
