"""Layers and directions of an LSTM, and right-padded batches of different lengths.

The functional core behind `nplstm.LSTM`: `init_params`, `stack_forward`, `stack_backward`.
Batch-first at the boundary, (B, T, ·); time-major and sorted by length inside (see lstm.py).
The reverse direction runs the forward recurrence on each sequence reversed within its own
length, so it starts at that sequence's last valid step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .lstm import F, lstm_backward, lstm_forward
from .variants import Variant
from .workspace import Workspace

PEEPHOLES = ("diagonal", "full", None)


@dataclass(frozen=True)
class LSTMConfig:
    """The sizes and variant of an LSTM; `param_shapes()` gives the shape of every parameter array.

    input_size I, hidden_size H, num_layers L, D = 2 directions if bidirectional else 1.
    peephole: "diagonal" (p_i, p_f, p_o each (H,)), "full" (each (H, H)) or None; forget_gate=False
    is the 1997 LSTM (f ≡ 1); the other flags are Greff et al.'s variants (variants.Variant).
    """
    input_size: int            # I
    hidden_size: int           # H
    num_layers: int = 1        # L
    bidirectional: bool = False
    peephole: str | None = "diagonal"  # "diagonal": p (H,); "full": P (H, H); None: no peepholes
    forget_gate: bool = True   # False: the 1997 LSTM, f ≡ 1
    input_gate: bool = True    # False: i ≡ 1 (Greff's NIG)
    output_gate: bool = True   # False: o ≡ 1 (NOG)
    input_activation: str = "tanh"   # "identity": g = a_g (NIAF)
    output_activation: str = "tanh"  # "identity": h = o c (NOAF)
    coupled: bool = False      # True: f = 1 - i (CIFG)
    gate_recurrence: bool = False    # True: [i, f, o]_{t-1} R_gates joins a_{i,f,o} (FGR); adds R_gates (3H, 3H)

    @property
    def variant(self) -> Variant:
        """The cell's parts, as lstm_forward takes them."""
        return Variant(self.peephole, self.input_gate, self.forget_gate, self.output_gate, self.input_activation,
                       self.output_activation, self.coupled, self.gate_recurrence)

    @property
    def num_directions(self) -> int:  # D
        """D: 2 if bidirectional, else 1."""
        return 2 if self.bidirectional else 1

    @staticmethod
    def prefix(k: int, d: int) -> str:
        """The key prefix of layer k, direction d (1: reverse): "l0.", "l0_reverse.", ..."""
        return f"l{k}_reverse." if d else f"l{k}."

    def prefixes(self):
        """(layer, direction, key prefix) in PyTorch's order: l0, l0_reverse, l1, ..."""
        for k in range(self.num_layers):
            for d in range(self.num_directions):
                yield k, d, self.prefix(k, d)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Key -> shape: "l{k}.W" (I or D·H, 4H), "l{k}.R" (H, 4H), "l{k}.b" (4H,), peepholes (H,) or (H, H)."""
        H, D = self.hidden_size, self.num_directions
        shapes = {}
        for k, _, pre in self.prefixes():
            shapes[pre + "W"] = (self.input_size if k == 0 else D * H, 4 * H)
            shapes[pre + "R"] = (H, 4 * H)
            shapes[pre + "b"] = (4 * H,)
            if self.peephole is not None:
                for gate in ("p_i", "p_f", "p_o"):
                    shapes[pre + gate] = (H,) if self.peephole == "diagonal" else (H, H)
            if self.gate_recurrence:
                shapes[pre + "R_gates"] = (3 * H, 3 * H)
        return shapes


def init_params(cfg: LSTMConfig, rng: np.random.Generator, dtype=np.float32,
                forget_bias: float = 1.0) -> dict[str, np.ndarray]:
    """Fresh parameters, keyed as in LSTMConfig.param_shapes.

    W: Glorot uniform over (in, 4H); R: an orthogonal (H, H) block per gate, as Keras does;
    b: zero but the forget-gate block, forget_bias (Gers et al. 2000, Jozefowicz et al. 2015);
    peepholes: uniform in ±1/sqrt(H), the scale PyTorch uses for its recurrent weights; R_gates
    (FGR): uniform in ±1/sqrt(3H), the same scale for its 3H inputs.
    """
    H = cfg.hidden_size
    params = {}
    for name, shape in cfg.param_shapes().items():
        kind = name.rsplit(".", 1)[1]
        if kind == "W":
            limit = np.sqrt(6.0 / (shape[0] + shape[1]))
            value = rng.uniform(-limit, limit, shape)
        elif kind == "R":
            value = np.concatenate([_orthogonal(H, rng) for _ in range(4)], axis=1)
        elif kind == "b":
            value = np.zeros(shape)
            if cfg.forget_gate and not cfg.coupled:
                value[F * H:(F + 1) * H] = forget_bias
        elif kind == "R_gates":
            value = rng.uniform(-1 / np.sqrt(3 * H), 1 / np.sqrt(3 * H), shape)
        else:
            value = rng.uniform(-1 / np.sqrt(H), 1 / np.sqrt(H), shape)
        params[name] = value.astype(dtype)
    return params


def _orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))  # sign fix makes the distribution uniform (Haar)


class StackCache(NamedTuple):
    """Everything stack_backward needs; one lstm.Cache per (layer, direction)."""
    caches: list               # [Cache], in cfg.prefixes() order
    order: np.ndarray | None   # (B,) sorting permutation, longest first; None if not ragged
    lengths: np.ndarray        # (B,) lengths in sorted order
    flip: tuple | None         # index pair that reverses each sequence within its length
    dropout: list | None = None  # dropout between layers: the masks (B, T, D·H) as stack_forward was given them


def batch_sizes_of(lengths: np.ndarray, T: int) -> list[int]:
    """n_t = number of sequences longer than t, for sorted or unsorted lengths (B,)."""
    return np.count_nonzero(lengths[None, :] > np.arange(T)[:, None], axis=1).tolist()


def _flip(a, flip):
    """Reverse each sequence of a time-major (T, B, ·) array within its own length."""
    return a[::-1] if flip is None else a[flip]


def stack_forward(params, x, h0, c0, lengths, cfg: LSTMConfig, workspace: dict | None = None,
                  record: dict | None = None, dropout: list | None = None, keep: bool = True):
    """Forward through all layers and directions.

    x: (B, T, I); h0, c0: (L·D, B, H); lengths: (B,) ints in [1, T] or None (all T);
    workspace: a dict the caller keeps between calls, to reuse scratch arrays (None: fresh ones);
    record: None, or a dict that receives {prefix: {"a": (T, B, 4H)}}, each layer's and direction's
    pre-activations a_t, time-major, in the cache's row order and the direction's own time order.
    dropout: None, or L-1 masks (B, T, D·H) that multiply the inputs of layers 1..L-1 (dropout between layers).
    keep: False is inference (nplstm.no_grad): no cache kept, and the returned StackCache is None.
    Returns y (B, T, D·H) with zeros at padded steps, (h_n, c_n) each (L·D, B, H), StackCache.
    """
    B, T, _ = x.shape
    H, D = cfg.hidden_size, cfg.num_directions
    ragged = lengths is not None and bool((lengths < T).any())
    if ragged:
        order = np.argsort(-lengths, kind="stable")
        lengths = lengths[order]
        x, h0, c0 = x[order], h0[:, order], c0[:, order]
        t_idx = np.arange(T)[:, None]
        flip = (np.where(t_idx < lengths, lengths - 1 - t_idx, t_idx), np.arange(B))
    else:
        order, flip = None, None
        lengths = np.full(B, T)
    batch_sizes = batch_sizes_of(lengths, T)
    inp = x.transpose(1, 0, 2)               # (T, B, I), time-major
    rows = np.arange(B)
    masks = _masks(dropout, order)
    caches, h_n, c_n = [], [], []
    # Inference on full-length rows writes each layer's outputs straight into its batch-first array, the
    # reverse direction through a time-reversed view: no time-major buffer and no copy at the end.
    direct = not keep and not ragged
    for k in range(cfg.num_layers):
        if masks is not None and k > 0:
            inp = inp * masks[k - 1]         # dropout on the layer's input: h of the layer below, masked
        y_k = np.empty((B, T, D * H), x.dtype) if direct else None
        outs = []
        for d in range(D):
            pre = cfg.prefix(k, d)
            j = k * D + d
            a_out = None if record is None else np.zeros((T, B, 4 * H), x.dtype)
            out = _out_view(y_k, d, H) if direct else None
            h, c, cache = lstm_forward(inp if d == 0 else _flip(inp, flip), h0[j], c0[j],
                                       params[pre + "W"], params[pre + "R"], params[pre + "b"],
                                       _peepholes(params, pre, cfg), batch_sizes=batch_sizes, variant=cfg.variant,
                                       R_gates=params.get(pre + "R_gates"), ws=_ws(workspace, pre), a_out=a_out,
                                       keep=keep, out=out)
            if record is not None:
                record[pre] = {"a": a_out}
            caches.append(cache)
            hs = h[1:] if keep else h        # (T, B, H) outputs, in the direction's own time order
            outs.append(hs if d == 0 else _flip(hs, flip))
            h_n.append(hs[lengths - 1, rows])   # each row's state after its own last step
            c_n.append(c[lengths, rows] if keep else c.copy())   # inference: c is already c_n (B, H)
        if direct:
            inp = y_k.transpose(1, 0, 2)
        else:
            inp = outs[0] if D == 1 else np.concatenate(outs, axis=-1)  # (T, B, D·H)
    y = inp.transpose(1, 0, 2)               # (B, T, D·H)
    h_n, c_n = np.stack(h_n), np.stack(c_n)
    if ragged:
        unsort = np.argsort(order)
        y, h_n, c_n = y[unsort], h_n[:, unsort], c_n[:, unsort]
    elif not direct:
        y = y.copy()                         # its own memory: the workspace is reused next call
    return y, (h_n, c_n), StackCache(caches, order, lengths, flip, dropout) if keep else None


def _out_view(y, d: int, H: int) -> np.ndarray:
    """Direction d's outputs inside a batch-first y (B, T, D·H), as the (T, B, H) array the recurrence writes:
    time-major by a transposed view, and time-reversed for the reverse direction (d = 1, full-length rows)."""
    out = y.transpose(1, 0, 2)[:, :, d * H:(d + 1) * H]
    return out if d == 0 else out[::-1]


def _masks(dropout, order):
    """The dropout masks (B, T, D·H), batch-first in the caller's rows -> time-major (T, B, D·H) in sorted rows."""
    if dropout is None:
        return None
    return [(m if order is None else m[order]).transpose(1, 0, 2) for m in dropout]


def stack_backward(dy, dh_n, dc_n, cache: StackCache, params, cfg: LSTMConfig, workspace: dict | None = None,
                   record: dict | None = None):
    """Backward through all layers and directions.

    dy: (B, T, D·H); dh_n, dc_n: (L·D, B, H); workspace: as in stack_forward;
    record: None, or a dict that receives {prefix: {"da": (T, B, 4H), "dy": (T, B, H)}}: each layer's
    and direction's δa_t and the gradient arriving at its outputs h_t from above (the loss or the next
    layer), time-major, in the cache's row order and the direction's own time order.
    Returns dx (B, T, I), (dh0, dc0) each (L·D, B, H), and grads keyed like params.
    """
    caches, order, lengths, flip, dropout = cache
    H, D = cfg.hidden_size, cfg.num_directions
    masks = _masks(dropout, order)
    if order is not None:
        dy, dh_n, dc_n = dy[order], dh_n[:, order], dc_n[:, order]
    dout = dy.transpose(1, 0, 2)             # (T, B, D·H)
    grads, dh0, dc0 = {}, [None] * len(caches), [None] * len(caches)
    for k in reversed(range(cfg.num_layers)):
        dinp = 0
        for d in range(D):
            pre = cfg.prefix(k, d)
            j = k * D + d
            dout_d = dout[..., d * H:(d + 1) * H]
            dout_d = dout_d if d == 0 else _flip(dout_d, flip)
            da_out = None
            if record is not None:
                da_out = np.empty(caches[j].x1.shape[:2] + (4 * H,), caches[j].x1.dtype)
                record[pre] = {"da": da_out, "dy": np.array(dout_d)}
            dx_d, dh0[j], dc0[j], g = lstm_backward(
                dout_d, dh_n[j], dc_n[j], caches[j], params[pre + "W"], params[pre + "R"],
                _peepholes(params, pre, cfg), R_gates=params.get(pre + "R_gates"),
                ws=_ws(workspace, pre + "backward"), da_out=da_out)
            dinp = dinp + (dx_d if d == 0 else _flip(dx_d, flip))
            grads.update({pre + name: value for name, value in g.items()})
        dout = dinp if masks is None or k == 0 else dinp * masks[k - 1]   # backprop through the dropout mask
    dx = dout.transpose(1, 0, 2)
    dh0, dc0 = np.stack(dh0), np.stack(dc0)
    if order is not None:
        unsort = np.argsort(order)
        dx, dh0, dc0 = dx[unsort], dh0[:, unsort], dc0[:, unsort]
    return np.ascontiguousarray(dx), (dh0, dc0), grads


def stack_internals(cache: StackCache, cfg: LSTMConfig) -> dict[str, dict[str, np.ndarray]]:
    """The gates and states of the last forward, batch-first and in the caller's row order.

    Returns {prefix: {"i", "f", "g", "o", "c", "h": (B, T, H)}} for each layer and direction
    (prefix "l0", "l0_reverse", ...); c and h are c_t and h_t after step t, in input time order.
    Padded steps hold zeros in c and h, and meaningless values in the gates.
    """
    caches, order, _, flip, _ = cache
    unsort = None if order is None else np.argsort(order)
    out = {}
    for (k, d, pre), c in zip(cfg.prefixes(), caches):
        series = {name: c.gates[:, :, j] for j, name in enumerate("ifgo")}
        series.update(c=c.c[1:], h=c.h[1:])
        for name, a in series.items():
            a = a if d == 0 else _flip(a, flip)              # back to input time order
            a = a.transpose(1, 0, 2)                          # (B, T, H)
            series[name] = a.copy() if unsort is None else a[unsort]
        out[pre.rstrip(".")] = series
    return out


def _ws(workspace: dict | None, key: str) -> Workspace | None:
    """The Workspace for one layer, direction and pass (forward arrays live on in the cache)."""
    return None if workspace is None else workspace.setdefault(key, Workspace())


def _peepholes(params, pre, cfg):
    if cfg.peephole is None:
        return None
    return params[pre + "p_i"], params[pre + "p_f"], params[pre + "p_o"]
