"""The GRU, as torch.nn.GRU computes it: the plain step, the fast engine, layers and directions, the shell.

Gate blocks along the 3H axis are in PyTorch's order r, z, n:
    r = σ(x W_r + h_prev R_r + b_r),   z = σ(x W_z + h_prev R_z + b_z),
    n = tanh(x W_n + b_in + r ⊙ (h_prev R_n + b_hn)),   h = (1 - z) ⊙ n + z ⊙ h_prev.
Per layer and direction: "W" (I or D·H, 3H), "R" (H, 3H), "b" (3H,) = [b_ir + b_hr, b_iz + b_hz, b_in]
and "b_hn" (H,). PyTorch's two biases always appear summed for r and z, so they fold into b; b_hn
cannot fold into b_in, because r multiplies it.
Layout as in lstm.py and stack.py: batch-first at the shell; time-major (T, B, ·) inside, rows sorted by
length so that the n_t = batch_sizes[t] rows still running at step t come first. Finished rows keep zeros
in h and get zero gradient. The reverse direction runs each sequence reversed within its own length.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import anomaly
from ._checks import check_array, check_dropout, check_dtype, check_int, check_lengths, check_params
from .grad import INFERENCE, check_cache, is_grad_enabled
from .lstm import CHUNK
from .ops import sigmoid
from .stack import LSTMConfig, StackCache, _flip, _masks, _out_view, _ws, batch_sizes_of
from .workspace import fresh, hidden_states

R_, Z_, N_ = range(3)  # gate blocks along the 3H axis
PARAMS = ("W", "R", "b", "b_hn")


# --- the teaching voice: one step, written plainly ---------------------------------------------

class StepCache(NamedTuple):
    """What gru_step_backward needs from gru_step_forward (all (B, H) unless marked)."""
    x: np.ndarray            # (B, I) input x_t
    h_prev: np.ndarray       # h_{t-1}
    r: np.ndarray            # reset gate
    z: np.ndarray            # update gate
    n: np.ndarray            # candidate state
    hn: np.ndarray           # h_prev R_n + b_hn, the part of a_n that r scales
    params: dict             # the params of the step (the same arrays, not copies)


def gru_step_forward(x: np.ndarray, h_prev: np.ndarray, params: dict):
    """One GRU step. x: (B, I); h_prev: (B, H); params "W" (I, 3H), "R" (H, 3H), "b" (3H,), "b_hn" (H,).

    Returns h (B, H) and a StepCache.
    """
    H = h_prev.shape[1]
    ax = x @ params["W"] + params["b"]       # (B, 3H) the input side of r, z, n
    ah = h_prev @ params["R"]                # (B, 3H) the hidden side
    r = sigmoid(ax[:, :H] + ah[:, :H])       # reset gate
    z = sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H])  # update gate
    hn = ah[:, 2 * H:] + params["b_hn"]      # the hidden side of n, before the reset
    n = np.tanh(ax[:, 2 * H:] + r * hn)      # candidate state
    h = (1 - z) * n + z * h_prev             # the new hidden state
    return h, StepCache(x, h_prev, r, z, n, hn, params)


def gru_step_backward(dh: np.ndarray, cache: StepCache):
    """Backprop one step. dh: (B, H), everything that reaches h_t (the output's gradient and step t+1's).

    Returns dx (B, I), dh_prev (B, H) and grads, a dict with the keys of params.
    """
    x, h_prev, r, z, n, hn, params = cache
    dn = dh * (1 - z)                        # h = (1 - z) n + z h_prev: backprop into n
    dz = dh * (h_prev - n)                   # ... into z
    dh_prev = dh * z                         # ... into h_prev, the direct path
    da_n = dn * (1 - n ** 2)                 # backprop through n = tanh(a_n)
    dr = da_n * hn                           # a_n = x W_n + b_in + r hn: backprop into r
    dhn = da_n * r                           # ... into hn = h_prev R_n + b_hn
    da_r = dr * r * (1 - r)                  # backprop through r = σ(a_r)
    da_z = dz * z * (1 - z)                  # backprop through z = σ(a_z)
    dax = np.concatenate([da_r, da_z, da_n], axis=1)  # (B, 3H) gradient of ax = x W + b
    dah = np.concatenate([da_r, da_z, dhn], axis=1)   # (B, 3H) gradient of ah = h_prev R
    dx = dax @ params["W"].T                 # backprop ax into x
    dh_prev = dh_prev + dah @ params["R"].T  # backprop ah into h_prev: the gated paths
    grads = {"W": x.T @ dax, "b": dax.sum(axis=0),      # ... into W, b (summed over the rows)
             "R": h_prev.T @ dah, "b_hn": dhn.sum(axis=0)}  # ... into R, b_hn
    return dx, dh_prev, grads


# --- the fast voice: one layer, one direction, all steps ---------------------------------------
# Gate-major layout: each gate's rows at step t are one contiguous (n, H) block. NumPy's elementwise
# loops run several times faster on that than on the same block strided inside (n, 3H) rows.

class GRUCache(NamedTuple):
    """What gru_backward needs from gru_forward, for one layer and direction."""
    x1: np.ndarray           # (T, B, I+1) the input with a column of ones: [x_t, 1]
    gates: np.ndarray        # (3, T, B, H) r, z, n
    hn: np.ndarray           # (T, B, H) h_{t-1} R_n + b_hn
    h: np.ndarray            # (T+1, B, H) hidden states, h[0] = h_0
    batch_sizes: tuple       # n_t for t = 0..T-1, non-increasing


def _per_gate(M: np.ndarray) -> np.ndarray:
    """(m, 3H) -> (3, m, H): the r, z, n column blocks of a weight matrix, each contiguous."""
    return np.ascontiguousarray(M.reshape(M.shape[0], 3, -1).transpose(1, 0, 2))


def gru_forward(x, h0, W, R, b, b_hn, *, batch_sizes, ws=None, keep: bool = True, out=None, a_out=None):
    """Run one direction over the whole sequence.

    x: (T, B, I); h0: (B, H); W: (I, 3H); R: (H, 3H); b: (3H,); b_hn: (H,); ws: a workspace.Workspace or None;
    keep: False is inference (nplstm.no_grad): one chunk of steps' gates in memory, no cache.
    out: with keep=False, None or a (T, B, H) array of any strides that receives h_1..h_T (lstm_forward's `out`).
    a_out: None, or a (3, T, B, H) array that receives the pre-activations a_r, a_z, a_n (diagnostics).
    Returns h (T+1, B, H), h[1:] the outputs (rows past n_t keep zeros), and the GRUCache; with keep=False,
    the outputs h_1..h_T (T, B, H) (`out` if given) and None.
    """
    T, B, I = x.shape
    H, alloc = R.shape[0], (fresh if ws is None else ws.get)
    ragged = batch_sizes[-1] < B             # finished rows must hold finite zeros for the GEMMs
    S = max(1, min(T, CHUNK // (B * 3 * H)))  # steps whose input projection is computed at once
    name, rows = ("", T) if keep else ("inference ", S)   # inference's buffers hold one chunk
    x1 = alloc(name + "x1", (rows, B, I + 1), x.dtype)
    x1[..., -1] = 1.0                        # [x_t, 1] [W; b] = x_t W + b: the bias rides in the GEMM
    # A (batched) GEMM per chunk of steps: g[k, t] starts as x_t W_k + b_k and becomes gate k in place.
    g = alloc(name + "gates", (3, rows, B, H), x.dtype)
    hn = alloc(name + "hn", (rows, B, H), x.dtype, zero=ragged)
    h, h0, hs = hidden_states(alloc, h0, T, x.dtype, ragged, keep, out)   # hs[t] is h_{t+1}
    hR = alloc("hR", (3, B, H), x.dtype)     # h_{t-1} R_k for k = r, z, n, reused every step
    Wb3, R3 = _per_gate(np.concatenate([W, b[None]])), _per_gate(R)
    for s0 in range(0, T, S):
        s1 = min(T, s0 + S)
        k0 = s0 if keep else 0               # where this chunk's steps sit in x1, g and hn
        x1[k0:k0 + s1 - s0, :, :-1] = x[s0:s1]
        np.matmul(x1[k0:k0 + s1 - s0].reshape(-1, I + 1), Wb3, out=g[:, k0:k0 + s1 - s0].reshape(3, -1, H))
        for t in range(s0, s1):
            n, j = batch_sizes[t], k0 + t - s0
            h_prev, h_t, hR_t, rz = hs[t - 1, :n] if t else h0[:n], hs[t, :n], hR[:, :n], g[:2, j, :n]
            np.matmul(h_prev, R3, out=hR_t)
            a_rz = rz if a_out is None else a_out[:2, t, :n]  # diagnostics keep a_r, a_z apart
            np.add(rz, hR_t[:2], out=a_rz)
            sigmoid(a_rz, out=rz)            # r, z
            r, z, n_t, hn_t = g[R_, j, :n], g[Z_, j, :n], g[N_, j, :n], hn[j, :n]
            np.add(hR_t[N_], b_hn, out=hn_t)  # hn = h_{t-1} R_n + b_hn
            a_n = n_t if a_out is None else a_out[N_, t, :n]
            np.add(n_t, np.multiply(r, hn_t, out=h_t), out=a_n)  # a_n = x W_n + b_in + r hn (h_t as scratch)
            np.tanh(a_n, out=n_t)            # n
            np.subtract(h_prev, n_t, out=h_t)
            h_t *= z
            h_t += n_t                       # h = n + z (h_prev - n) = (1 - z) n + z h_prev
    return (h, GRUCache(x1, g, hn, h, tuple(batch_sizes))) if keep else (hs, None)


def _local_derivatives(g, hn, h_prev, k):
    """Per-step factors of the backward pass, for a chunk of S steps at once (fewer, larger NumPy calls).

    g: (3, S, B, H) r, z, n; hn, h_prev: (S, B, H). Fills k (4, S, B, H) in the blocks of gru_backward's
    δ: [∂h/∂a_n, ∂a_n/∂a_r, ∂h/∂a_z, ∂a_n/∂hn], so δa_n = δh k0, δa_z = δh k2, δa_r = δa_n k1, δhn = δa_n k3.
    """
    r, z, n = g
    np.subtract(1, z, out=k[3])              # 1 - z, for now (k[3] as scratch)
    np.multiply(n, n, out=k[0])
    np.subtract(1, k[0], out=k[0])           # tanh' = 1 - n²
    k[0] *= k[3]                             # ∂h/∂a_n = (1 - z)(1 - n²)
    np.subtract(h_prev, n, out=k[2])
    k[2] *= z
    k[2] *= k[3]                             # ∂h/∂a_z = (h_prev - n) z (1 - z)
    np.subtract(1, r, out=k[1])
    k[1] *= r
    k[1] *= hn                               # ∂a_n/∂a_r = hn r (1 - r)
    k[3] = r                                 # ∂a_n/∂hn = r
    return k


def gru_backward(dy, dh_n, cache: GRUCache, W, R, b_hn=None, *, ws=None, d_out=None):
    """Backpropagate through time for one direction (b_hn is not needed: the cache holds hn).

    dy: (T, B, H) gradient of the outputs h_1..h_T (rows past n_t ignored); dh_n: (B, H) of each row's
    final state. d_out: None, or a zeroed (4, T, B, H) array that receives every step's δ (below; diagnostics).
    Returns dx (T, B, I), dh0 (B, H) and grads {"W", "R", "b", "b_hn"}.
    """
    x1, g, hn, h, batch_sizes = cache
    T, B, _ = x1.shape
    H, alloc = R.shape[0], (fresh if ws is None else ws.get)
    # δ of every step, blocks [δa_n, δa_r, δa_z, δhn] (finished rows stay 0): d[:3] is the gradient
    # of x W + b with W's blocks rolled to (n, r, z), d[1:] that of h_{t-1} R in R's order (r, z, n).
    d = alloc("d", (4, T, B, H), x1.dtype, zero=batch_sizes[-1] < B) if d_out is None else d_out
    dh = dh_n.astype(x1.dtype, copy=True)   # (B, H) running δh_t; finished rows carry dh_n
    chunk = max(1, min(T, CHUNK // (B * 4 * H)))
    k = alloc("k", (4, chunk, B, H), x1.dtype)
    terms = alloc("terms", (4, B, H), x1.dtype)  # the four paths into h_{t-1}, summed
    R_T = _per_gate(R).transpose(0, 2, 1).copy()  # (3, H, H) R_kᵀ, row-major
    for end in range(T, 0, -chunk):          # chunks [start, end), the last chunk first
        start = max(0, end - chunk)
        _local_derivatives(g[:, start:end], hn[start:end], h[start:end], k[:, :end - start])
        for t in range(end - 1, start - 1, -1):
            n, s = batch_sizes[t], t - start
            dh_t, d_t = dh[:n], d[:, t, :n]
            dh_t += dy[t, :n]                # h_t feeds the output y_t and step t+1
            np.multiply(dh_t, k[0::2, s, :n], out=d_t[0::2])     # δa_n, δa_z
            np.multiply(d_t[0], k[1::2, s, :n], out=d_t[1::2])   # δa_r, δhn, from δa_n
            np.multiply(dh_t, g[Z_, t, :n], out=terms[3, :n])    # the direct path δh_t z ...
            np.matmul(d_t[1:], R_T, out=terms[:3, :n])           # ... and the gated ones, δ_k R_kᵀ
            np.sum(terms[:, :n], axis=0, out=dh_t)               # δh_{t-1}
    # Weight gradients: one (batched) GEMM each over all steps and rows.
    d2, x2, h2 = d.reshape(4, T * B, H), x1.reshape(T * B, -1), h[:-1].reshape(T * B, H)
    dWb = np.matmul(x2.T, d2[:3])            # (3, I+1, H) [dW; db], blocks n, r, z
    dWb = np.concatenate([dWb[1], dWb[2], dWb[0]], axis=1)  # (I+1, 3H), blocks r, z, n
    grads = {"W": dWb[:-1], "R": np.concatenate(list(np.matmul(h2.T, d2[1:])), axis=1), "b": dWb[-1],
             "b_hn": d2[3].sum(axis=0)}
    W_T = _per_gate(W).transpose(0, 2, 1)[[N_, R_, Z_]]     # (3, H, I) W_kᵀ, blocks n, r, z
    dx = np.matmul(d2[:3], W_T).sum(axis=0).reshape(T, B, -1)
    return dx, dh, grads


# --- layers, directions, ragged batches ---------------------------------------------------------

@dataclass(frozen=True)
class GRUConfig:
    """The sizes of a GRU. input_size I, hidden_size H, num_layers L, D = 2 if bidirectional else 1."""
    input_size: int            # I
    hidden_size: int           # H
    num_layers: int = 1        # L
    bidirectional: bool = False

    # the layer/direction bookkeeping is the LSTM's: D, and the keys' prefixes in PyTorch's order
    num_directions = LSTMConfig.num_directions
    prefix = staticmethod(LSTMConfig.prefix)
    prefixes = LSTMConfig.prefixes

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Key -> shape: "l{k}.W" (I or D·H, 3H), "l{k}.R" (H, 3H), "l{k}.b" (3H,), "l{k}.b_hn" (H,)."""
        H, D = self.hidden_size, self.num_directions
        return {pre + name: shape for k, _, pre in self.prefixes() for name, shape in
                zip(PARAMS, ((self.input_size if k == 0 else D * H, 3 * H), (H, 3 * H), (3 * H,), (H,)))}


def gru_stack_forward(params, x, h0, lengths, cfg: GRUConfig, workspace: dict | None = None, dropout=None,
                      keep: bool = True):
    """Forward through all layers and directions.

    x: (B, T, I); h0: (L·D, B, H); lengths: (B,) ints in [1, T] or None (all T); workspace, dropout, keep: as in
    stack.py (keep=False: inference, and the StackCache returned is None).
    Returns y (B, T, D·H) with zeros at padded steps, h_n (L·D, B, H), and a stack.StackCache of GRUCaches.
    """
    B, T, _ = x.shape
    order, flip = None, None
    if lengths is not None and (lengths < T).any():     # sort rows longest first, as stack_forward does
        order = np.argsort(-lengths, kind="stable")
        lengths, x, h0 = lengths[order], x[order], h0[:, order]
        t_idx = np.arange(T)[:, None]
        flip = (np.where(t_idx < lengths, lengths - 1 - t_idx, t_idx), np.arange(B))
    lengths = np.full(B, T) if order is None else lengths
    batch_sizes = batch_sizes_of(lengths, T)
    inp, rows, D, H = x.transpose(1, 0, 2), np.arange(B), cfg.num_directions, cfg.hidden_size  # inp (T, B, I)
    caches, h_n, masks = [], [], _masks(dropout, order)
    direct = not keep and order is None      # inference writes straight into the batch-first output (stack.py)
    for k in range(cfg.num_layers):
        if masks is not None and k > 0:
            inp = inp * masks[k - 1]         # dropout on the layer's input
        y_k, outs = (np.empty((B, T, D * H), x.dtype) if direct else None), []
        for d in range(D):
            pre, out = cfg.prefix(k, d), _out_view(y_k, d, H) if direct else None
            h, cache = gru_forward(inp if d == 0 else _flip(inp, flip), h0[k * D + d],
                                   *(params[pre + p] for p in PARAMS), batch_sizes=batch_sizes, ws=_ws(workspace, pre),
                                   keep=keep, out=out)
            caches.append(cache)
            hs = h[1:] if keep else h        # (T, B, H) outputs, in the direction's own time order
            outs.append(hs if d == 0 else _flip(hs, flip))
            h_n.append(hs[lengths - 1, rows])   # each row's state after its own last step
        inp = y_k.transpose(1, 0, 2) if direct else outs[0] if D == 1 else np.concatenate(outs, axis=-1)
    y, h_n = inp.transpose(1, 0, 2), np.stack(h_n)
    if order is None:
        y = y if direct else y.copy()        # its own memory, not the workspace's
    else:
        unsort = np.argsort(order)
        y, h_n = y[unsort], h_n[:, unsort]
    return y, h_n, StackCache(caches, order, lengths, flip, dropout) if keep else None


def gru_stack_backward(dy, dh_n, cache: StackCache, params, cfg: GRUConfig, workspace: dict | None = None,
                       record: dict | None = None):
    """Backward through all layers and directions.

    dy: (B, T, D·H); dh_n: (L·D, B, H); record: None, or a dict that receives {prefix: {"d": (4, T, B, H), "dy":
    (T, B, H)}}, each layer's and direction's δ (gru_backward's d_out) and its dy from above, as in stack.py.
    Returns dx (B, T, I), dh0 (L·D, B, H) and grads keyed like params.
    """
    caches, order, _, flip, dropout = cache
    H, D, masks = cfg.hidden_size, cfg.num_directions, _masks(dropout, order)
    rows = slice(None) if order is None else order   # sorted rows, longest first
    dout, dh_n = dy[rows].transpose(1, 0, 2), dh_n[:, rows]   # dout (T, B, D·H)
    grads, dh0 = {}, [None] * len(caches)
    for k in reversed(range(cfg.num_layers)):
        dinp = 0
        for d in range(D):
            pre, j = cfg.prefix(k, d), k * D + d
            dout_d = dout[..., d * H:(d + 1) * H]
            dout_d = dout_d if d == 0 else _flip(dout_d, flip)
            rec = {} if record is None else record.setdefault(
                pre, {"dy": np.array(dout_d), "d": np.zeros((4,) + dout_d.shape, dout_d.dtype)})
            dx_d, dh0[j], g = gru_backward(dout_d, dh_n[j], caches[j], params[pre + "W"], params[pre + "R"],
                                           ws=_ws(workspace, pre + "backward"), d_out=rec.get("d"))
            dinp = dinp + (dx_d if d == 0 else _flip(dx_d, flip))
            grads.update({pre + name: value for name, value in g.items()})
        dout = dinp if masks is None or k == 0 else dinp * masks[k - 1]   # backprop through the dropout mask
    unsort = slice(None) if order is None else np.argsort(order)   # back to the caller's rows
    return np.ascontiguousarray(dout.transpose(1, 0, 2)[unsort]), np.stack(dh0)[:, unsort], grads


def init_gru_params(cfg: GRUConfig, rng: np.random.Generator, dtype=np.float32) -> dict[str, np.ndarray]:
    """Fresh parameters keyed as in GRUConfig.param_shapes, drawn as torch.nn.GRU draws them: every
    weight and both of its biases uniform in ±1/sqrt(H), the biases then folded (b_r, b_z are sums)."""
    H, limit = cfg.hidden_size, 1 / np.sqrt(cfg.hidden_size)
    params = {}
    for name, shape in cfg.param_shapes().items():
        if name.endswith(".b_hn"):
            continue
        params[name] = rng.uniform(-limit, limit, shape)
        if name.endswith(".b"):              # bias_hh of torch: r and z fold into b, n stays b_hn
            b_hh = rng.uniform(-limit, limit, shape)
            params[name][:2 * H] += b_hh[:2 * H]
            params[name[:-1] + "b_hn"] = b_hh[2 * H:]
    return {k: params[k].astype(dtype) for k in cfg.param_shapes()}


class GRU:
    """A stacked, optionally bidirectional GRU over batch-first sequences, as torch.nn.GRU computes it.

    Gate order along 3H is r, z, n. `params` and `grads` are dicts of arrays keyed "l{k}.W" (in, 3H),
    "l{k}.R" (H, 3H), "l{k}.b" (3H,), "l{k}.b_hn" (H,); the reverse direction uses "l{k}_reverse.".
    The state is h alone, as in torch.nn.GRU. Arrays assigned into `params` are used by the next forward.
    """

    def __init__(self, input_size: int, hidden_size: int, *, num_layers: int = 1, bidirectional: bool = False,
                 dtype=np.float32, seed: int | None = None):
        sizes = [check_int(name, value) for name, value in
                 (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers))]
        self.dtype = check_dtype(dtype)
        self.config = GRUConfig(*sizes, bool(bidirectional))
        self.params = init_gru_params(self.config, np.random.default_rng(seed), self.dtype)
        self.grads: dict[str, np.ndarray] = {}
        self._cache, self._workspace = None, {}   # the last cache; scratch arrays reused between calls (workspace.Workspace)

    def forward(self, x: np.ndarray, state: np.ndarray | None = None, lengths=None, dropout=None):
        """x: (B, T, I); state: h_0 (L·D, B, H) or None for zeros; lengths: (B,) ints or None;
        dropout: None, or L-1 masks (B, T, D·H) for the inputs of layers 1..L-1.

        Returns y (B, T, D·H), zero at padded steps, and h_n (L·D, B, H), the state after each
        sequence's last valid step, in PyTorch's layer/direction order.
        """
        cfg = self.config
        x = check_array("x", x, (None, None, cfg.input_size), self.dtype, finite=True)
        B, T, _ = x.shape
        if B == 0 or T == 0:
            raise ValueError(f"x: expected at least one sequence of at least one step, got shape {x.shape}")
        lengths = check_lengths(lengths, B, T)
        shape = (cfg.num_layers * cfg.num_directions, B, cfg.hidden_size)
        h0 = np.zeros(shape, self.dtype) if state is None else check_array("state h_0", state, shape, self.dtype,
                                                                           finite=True)
        dropout = check_dropout(dropout, cfg.num_layers, (B, T, cfg.num_directions * cfg.hidden_size), self.dtype)
        self._check_params()
        keep = is_grad_enabled() or anomaly.is_enabled()   # the anomaly autopsy reads the cache
        y, h_n, cache = gru_stack_forward(self.params, x, h0, lengths, cfg, self._workspace, dropout, keep)
        self._cache = cache if keep else INFERENCE
        anomaly.check_gru_forward(cache, self.params, cfg, gru_forward)   # the autopsy reruns the core it is given
        self._shapes = (y.shape, h_n.shape)
        return y, h_n

    __call__ = forward

    def backward(self, dy: np.ndarray, dh_n: np.ndarray | None = None):
        """dy: (B, T, D·H); dh_n: (L·D, B, H) or None -> dx (B, T, I), dh_0 (L·D, B, H); replaces `grads`."""
        check_cache(self._cache)
        y_shape, s_shape = self._shapes
        dy = check_array("dy", dy, y_shape, self.dtype, finite=True)
        dh_n = np.zeros(s_shape, self.dtype) if dh_n is None else check_array("dh_n", dh_n, s_shape, self.dtype,
                                                                              finite=True)
        self._check_params("changed between forward() and backward(): ")
        dx, dh0, self.grads = gru_stack_backward(dy, dh_n, self._cache, self.params, self.config, self._workspace)
        anomaly.check_gru_backward(self._cache, self.params, self.config, dy, dh_n, self.grads, dx, dh0, gru_stack_backward)
        return dx, dh0

    def internals(self) -> dict[str, dict[str, np.ndarray]]:
        """Gates r, z, n and state h of the last forward, {"l0": {"r", "z", "n", "h": (B, T, H)}, "l0_reverse": ...}
        in the caller's rows and input time order (as LSTM.internals); padded steps: h = 0, meaningless gates."""
        check_cache(self._cache, "internals()")
        caches, order, _, flip, _ = self._cache
        rows = slice(None) if order is None else np.argsort(order)   # back to the caller's row order
        return {pre.rstrip("."): {name: np.array((a if d == 0 else _flip(a, flip)).transpose(1, 0, 2)[rows])
                                  for name, a in zip("rznh", (*c.gates, c.h[1:]))}   # (T, B, H) -> (B, T, H)
                for (_, d, pre), c in zip(self.config.prefixes(), caches)}

    def _check_params(self, when: str = ""):
        check_params(self.params, self.config.param_shapes(), self.dtype, when=when, layer="GRU")

    def __repr__(self):
        c = self.config
        return (f"GRU({c.input_size}, {c.hidden_size}, num_layers={c.num_layers}, "
                f"bidirectional={c.bidirectional}, dtype={self.dtype.name})")
