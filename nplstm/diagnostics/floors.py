"""Floors: how fast a step could be if it were built from NumPy calls, measured on this machine.

gemm_floor times the step's matrix products alone. numpy_floor adds the fewest elementwise NumPy calls
the equations need per time step (eight forward, six backward, the local derivatives over whole chunks),
each on contiguous memory with `out=` buffers: the same calls and array sizes as a step, on the most
favourable layout, without the engine's bookkeeping (ragged rows, variants, views). Its numbers are not an
LSTM's (the gate blocks are reinterpreted memory, not transposed copies); its time is a lower bound for a
NumPy LSTM that makes one call per operation. Both use the vanilla cell without peepholes, and both take the
faster, on this machine and at this size, of two ways to arrange the GEMMs of the forward: x_t W + b for a
chunk of steps in one GEMM and h_{t-1} R each step (then one more elementwise call, their sum), or one
[x_t, 1, h_{t-1}] [W; b; R] each step, as one (B, K)·(K, 4H) product (lstm.py makes the same products, as
four per-gate calls below H = 512).
"""
from __future__ import annotations

import numpy as np

from ..lstm import CHUNK
from .timing import timed


def gemm_step(B, T, I, H, forward_only=False):
    """A function that makes the BLAS calls of one training step (or forward) alone, the forward's arranged
    the faster way (module docstring). No elementwise work: the time an LSTM built on NumPy's BLAS cannot go
    below."""
    return _faster(_gemm_step(B, T, I, H, forward_only, fused) for fused in (False, True))


def _gemm_step(B, T, I, H, forward_only, fused):
    rng = np.random.default_rng(0)
    xh, Wb = rng.random((T * B, I + 1 + H), dtype=np.float32), rng.random((I + 1, 4 * H), dtype=np.float32)
    x2, hs = xh[:, :I + 1], xh[:, I + 1:]    # [x_t, 1] and h_{t-1}, side by side as lstm.py keeps them
    R, R_T = rng.random((H, 4 * H), dtype=np.float32), rng.random((4 * H, H), dtype=np.float32)
    h, da = rng.random((B, H), dtype=np.float32), rng.random((T * B, 4 * H), dtype=np.float32)
    rec = np.empty((B, 4 * H), np.float32)
    dh, W_T = np.empty((B, H), np.float32), np.ascontiguousarray(Wb[:-1].T)

    S = max(1, min(T, CHUNK // (B * 4 * H)))  # lstm.py projects a chunk of S steps' inputs at once

    rows, M = xh.reshape(T, B, -1), rng.random((I + 1 + H, 4 * H), dtype=np.float32)

    def step():
        if fused:
            for t in range(T):
                np.matmul(rows[t], M, out=rec)   # [x_t, 1, h_{t-1}] [W; b; R]
        else:
            for s0 in range(0, T, S):
                np.matmul(x2[s0 * B:(s0 + S) * B], Wb)   # input projections, the bias in the GEMM
            for _ in range(T):
                np.matmul(h, R, out=rec)     # forward recurrence
        if forward_only:
            return
        for t in range(T):
            np.matmul(da[t * B:(t + 1) * B], R_T, out=dh)  # backward recurrence
        if H < 512:                          # [dW; db; dR] in one GEMM, as lstm.weight_grads
            da.T @ xh
        else:
            x2.T @ da, hs.T @ da
        da @ W_T                             # dx
    return step


def numpy_step(B, T, I, H, forward_only=False):
    """A function that makes the step's GEMMs plus the fewest elementwise NumPy calls of a training step
    (or forward), every view it indexes made beforehand (untimed), constants as 0-d arrays; of the two
    arrangements of the forward's GEMMs, the faster one here (module docstring).

    Forward, per step: a_t (x_t W + h_{t-1} R, one call, or two with the chunked projection); one tanh over
    the four blocks (σ by halving, as lstm.py);
    ·½ and +½ for i, f, o; c = f c; i g; c += i g; tanh c; h = o tanh c. Training keeps every step's gates,
    c and tanh c; the forward alone reuses one buffer for them. Backward, per step: δh += δy; δa_o;
    δh ∂h/∂c and δc += it; δa_i, δa_f, δa_g at once; δc ∘= f; δa Rᵀ. Before each chunk of steps the local
    derivatives: σ' = s - s² over the four blocks, 1 - g², the four chain-rule factors and ∂h/∂c = o (1 - tanh² c).
    """
    return _faster(_numpy_step(B, T, I, H, forward_only, fused) for fused in (False, True))


def _numpy_step(B, T, I, H, forward_only, fused):
    rng = np.random.default_rng(0)
    f32, one = np.float32, np.array(1, np.float32)
    xh, Wb = rng.random((T * B, I + 1 + H), dtype=f32), rng.random((I + 1, 4 * H), dtype=f32)
    x2 = xh[:, :I + 1]
    R, R_T, W_T = (rng.random(shape, dtype=f32) / (4 * H) for shape in ((H, 4 * H), (4 * H, H), (4 * H, I)))
    S = max(1, min(T, CHUNK // (B * 4 * H)))
    proj = np.empty((S, B, 4 * H), f32)                     # one chunk's x_t W + b
    keep = T if not forward_only else 1                     # the forward alone overwrites one step's buffers
    z = rng.random((keep, 4, B, H), dtype=f32) * 0.1        # the gates, gate-major, as the cache keeps them
    c, tanh_c = np.zeros((keep + 1, B, H), f32), np.zeros((keep, B, H), f32)
    h = np.zeros((T + 1, B, H), f32)
    rec, tmp = np.empty((4, B, H), f32), np.empty((B, H), f32)
    scale, shift = np.full((4, B, H), 0.5, f32), np.full((4, B, H), 0.5, f32)
    k = (lambda t: 0) if forward_only else (lambda t: t)
    chunks = [(s0, min(S, T - s0), x2[s0 * B:(s0 + S) * B], proj[:min(S, T - s0)].reshape(-1, 4 * H))
              for s0 in range(0, T, S)]
    steps = [(h[t], rec.reshape(B, 4 * H), proj[t % S].reshape(4, B, H), z[k(t)], *z[k(t)],   # reinterpreted:
              c[k(t)], c[k(t) + 1] if not forward_only else c[0], tanh_c[k(t)], h[t + 1])    # contiguous blocks
             for t in range(T)]
    rows, M = xh.reshape(T, B, -1), rng.random((I + 1 + H, 4 * H), dtype=f32) / (4 * H)
    fused_steps = [(rows[t], z[k(t)].reshape(B, 4 * H)) + st[3:] for t, st in enumerate(steps)]

    # The cell's eight calls are written out in both loops below on purpose: a helper called per step would
    # add a Python call to every step of a kernel whose point is to have as little as possible.
    def forward_fused():
        for row, a_2, a, i, f, g, o, c_prev, c_t, tanh_c_t, h_t in fused_steps:
            np.matmul(row, M, a_2)                          # a_t = [x_t, 1, h_{t-1}] [W; b; R]
            np.tanh(a, a)
            a *= scale
            a += shift
            np.multiply(f, c_prev, c_t)
            c_t += np.multiply(i, g, tmp)
            np.tanh(c_t, tanh_c_t)
            np.multiply(o, tanh_c_t, h_t)

    def forward():
        if fused:
            return forward_fused()
        for s0, m, x_chunk, proj_chunk in chunks:
            np.matmul(x_chunk, Wb, out=proj_chunk)
            for h_prev, rec_2, proj_t, a, i, f, g, o, c_prev, c_t, tanh_c_t, h_t in steps[s0:s0 + m]:
                np.matmul(h_prev, R, rec_2)
                np.add(proj_t, rec, a)
                np.tanh(a, a)
                a *= scale
                a += shift
                np.multiply(f, c_prev, c_t)
                c_t += np.multiply(i, g, tmp)
                np.tanh(c_t, tanh_c_t)
                np.multiply(o, tanh_c_t, h_t)
    if forward_only:
        return forward

    dy, da = rng.random((T, B, H), dtype=f32), np.empty((T, 4, B, H), f32)
    d_da, dh_dc = np.empty((S, 4, B, H), f32), np.empty((S, B, H), f32)
    dh, dc = np.zeros((B, H), f32), np.zeros((B, H), f32)
    back = []
    for end in range(T, 0, -S):
        start = max(0, end - S)
        n, gates = end - start, z[start:end]
        local = (gates, d_da[:n], d_da[:n, 2], gates[:, 2], dh_dc[:n], tanh_c[start:end], gates[:, 3],
                 [(d_da[:n, q], factor) for q, factor in
                  ((0, gates[:, 2]), (1, c[start:end]), (2, gates[:, 0]), (3, tanh_c[start:end]))])
        back.append((local, [(dy[t], d_da[t - start, 3], da[t, 3], dh_dc[t - start], d_da[t - start, :3], da[t, :3],
                              z[t, 1], da[t].reshape(B, 4 * H)) for t in range(end - 1, start - 1, -1)]))
    da2 = da.reshape(T * B, 4 * H)

    def step():
        forward()
        for (gates, d, d_g, g, dhdc, tc, o, factors), per_step in back:
            np.multiply(gates, gates, out=d)
            np.subtract(gates, d, out=d)                    # σ' = s - s²
            np.multiply(g, g, out=d_g)
            np.subtract(one, d_g, out=d_g)                  # tanh' = 1 - g²
            for d_q, factor in factors:
                d_q *= factor
            np.multiply(tc, tc, out=dhdc)
            np.subtract(one, dhdc, out=dhdc)
            dhdc *= o
            for dy_t, d_o, da_o, dhdc_t, d_ifg, da_ifg, f, da_t in per_step:
                np.add(dh, dy_t, dh)
                np.multiply(dh, d_o, da_o)
                np.add(dc, np.multiply(dh, dhdc_t, tmp), dc)
                np.multiply(dc, d_ifg, da_ifg)
                np.multiply(dc, f, dc)
                np.matmul(da_t, R_T, dh)                    # reinterpreted, as in the forward
        if H < 512:
            da2.T @ xh
        else:
            x2.T @ da2, xh[:, I + 1:].T @ da2
        da2 @ W_T
    return step


def gemm_floor(B, T, I, H, repeat=5, forward_only=False) -> float:
    """Seconds of gemm_step, best of `repeat` after a warm-up call."""
    return _best(gemm_step(B, T, I, H, forward_only), repeat)


def numpy_floor(B, T, I, H, repeat=5, forward_only=False) -> float:
    """Seconds of numpy_step, best of `repeat` after a warm-up call."""
    return _best(numpy_step(B, T, I, H, forward_only), repeat)


def _faster(steps):
    """The faster of the step functions, each timed (best of 3) after a warm-up call."""
    return min(steps, key=lambda step: _best(step, 3))


def _best(step, repeat):
    step()
    return min(timed(step) for _ in range(repeat))
