"""nplstm's cells as torch.nn.Modules: every Greff variant in torch ops, and a whole Model.

VariantLSTM computes exactly what nplstm.LSTM computes (reference.lstm_step_forward, step by step),
so autograd, torch optimizers, torch.compile and CUDA apply to every variant, peepholes included.
Its parameters keep nplstm's layout, (in, 4H) applied as x W, gate order i, f, g, o; nplstm's key
"l{k}.W" is the parameter "W_l{k}", "l{k}_reverse.p_i" is "p_i_l{k}_reverse" (torch.nn.LSTM's suffixes).
Ragged batches run every row for T steps with a per-step mask: where t >= length the state is kept
and the output is 0, which leaves no data-dependent Python branch for torch.compile to break on.
SequenceModel is nplstm.Model as one module: [embedding ->] recurrent layer -> [dropout ->] Linear head.

This file imports torch at the top; nplstm.interop.torch imports it only inside its functions.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._checks import check_int
from ..layers import variant_flags
from ..variants import Variant
from ..stack import LSTMConfig, init_params


def torch_name(key: str) -> str:
    """nplstm's key -> this module's parameter name: "l0_reverse.p_i" -> "p_i_l0_reverse"."""
    prefix, _, name = key.partition(".")
    return f"{name}_{prefix}"


def _activate(a, name: str):
    return torch.tanh(a) if name == "tanh" else a   # "identity": NIAF (g = a_g), NOAF (h = o c)


def _peek(c, p, peephole: str):
    return c * p if peephole == "diagonal" else c @ p  # c ⊙ p (p (H,)) or c P (P (H, H))


def lstm_cell(ax, h_prev, c_prev, gates_prev, p: dict, v: Variant):
    """One step of any variant. ax: (B, 4H) = x_t W + b; h_prev, c_prev: (B, H);
    gates_prev: (B, 3H) [i, f, o]_{t-1} with gate recurrence, else None; p: "R", "p_i|p_f|p_o", "R_gates".
    Returns h (B, H), c (B, H), and gates (B, 3H) [i, f, o] with gate recurrence, else None."""
    a = ax + h_prev @ p["R"]                 # (B, 4H) a = x W + h_prev R + b
    a_i, a_f, a_g, a_o = a.chunk(4, dim=-1)
    if v.gate_recurrence:                    # FGR: [a_i, a_f, a_o] += [i, f, o]_{t-1} R_gates
        r_i, r_f, r_o = (gates_prev @ p["R_gates"]).chunk(3, dim=-1)
        a_i, a_f, a_o = a_i + r_i, a_f + r_f, a_o + r_o
    if v.peephole is not None:               # i and f peek at the old cell state c_{t-1}
        a_i = a_i + _peek(c_prev, p["p_i"], v.peephole)
        a_f = a_f + _peek(c_prev, p["p_f"], v.peephole)
    i = torch.sigmoid(a_i) if v.input_gate else torch.ones_like(a_i)   # NIG: i ≡ 1
    if v.coupled:
        f = 1 - i                            # CIFG
    else:
        f = torch.sigmoid(a_f) if v.forget_gate else torch.ones_like(a_f)  # NFG: f ≡ 1
    c = f * c_prev + i * _activate(a_g, v.input_activation)  # c_t = f c_{t-1} + i g
    if v.peephole is not None:               # o peeks at the new c_t
        a_o = a_o + _peek(c, p["p_o"], v.peephole)
    o = torch.sigmoid(a_o) if v.output_gate else torch.ones_like(a_o)  # NOG: o ≡ 1
    h = o * _activate(c, v.output_activation)  # h_t = o tanh(c_t)
    return h, c, (torch.cat([i, f, o], dim=-1) if v.gate_recurrence else None)


def lstm_sequence(x, h, c, p: dict, v: Variant, valid=None):
    """One layer, one direction, all steps. x: (B, T, I); h, c: (B, H) the initial state;
    p: "W" (I, 4H), "b" (4H,) and lstm_cell's keys; valid: (B, T) bool, False at padded steps, or None.
    Returns y (B, T, H), 0 at padded steps, and h_n, c_n (B, H), each row's state after its last valid step."""
    ax = x @ p["W"] + p["b"]                 # (B, T, 4H): the input side of every step in one GEMM
    gates = x.new_zeros(x.shape[0], 3 * h.shape[1]) if v.gate_recurrence else None  # none before step 1
    ys = []
    for t in range(x.shape[1]):
        h_t, c_t, gates_t = lstm_cell(ax[:, t], h, c, gates, p, v)
        if valid is None:
            h, c, gates = h_t, c_t, gates_t
        else:                                # a finished row keeps its state and outputs 0
            m = valid[:, t, None]            # (B, 1)
            h, c = torch.where(m, h_t, h), torch.where(m, c_t, c)
            gates = None if gates is None else torch.where(m, gates_t, gates)
            h_t = torch.where(m, h_t, 0.0)
        ys.append(h_t)
    return torch.stack(ys, dim=1), h, c


def _reversal(lengths, T: int):
    """(B, T) index that reverses each row within its own length (padded steps stay put); None: all T."""
    if lengths is None:
        return None
    t = torch.arange(T, device=lengths.device)[None, :]
    L = lengths[:, None]
    return torch.where(t < L, L - 1 - t, t)


def _reverse(a, rev):
    """a: (B, T, F) -> each row reversed in time within its length (rev from _reversal)."""
    return a.flip(1) if rev is None else a.gather(1, rev[..., None].expand_as(a))


def _lengths_of(lengths, B: int, T: int, device):
    """lengths: None, a (B,) tensor or a sequence of ints in [1, T] -> a (B,) int64 tensor on device, or None."""
    if lengths is None:
        return None
    lengths = torch.as_tensor(lengths, device=device)
    if tuple(lengths.shape) != (B,) or lengths.dtype.is_floating_point:
        raise ValueError(f"lengths: expected {B} ints of shape ({B},), got {lengths.dtype} of shape "
                         f"{tuple(lengths.shape)}")
    if not torch.compiler.is_compiling() and bool(((lengths < 1) | (lengths > T)).any()):
        raise ValueError(f"lengths: expected ints in [1, {T}], got {lengths.tolist()}")
    return lengths.long()


class VariantLSTM(nn.Module):
    """nplstm.LSTM as a torch.nn.Module: any of Greff's variants, stacked, optionally bidirectional.

    input_size I, hidden_size H, num_layers L, D = 2 if bidirectional else 1; the flags are
    nplstm.LSTM's (variant= a name of nplstm.variants.VARIANTS, then any flag on top). dropout: applied to
    the input of every layer but the first while training, as in torch.nn.LSTM. Parameters are
    named torch_name(nplstm key), of nplstm's shapes (LSTMConfig.param_shapes); seed: None draws from
    torch's generator. Batch-first: forward(x (B, T, I), state=None, lengths=None).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False, *,
                 variant: str | None = None, dropout: float = 0.0, dtype=None, device=None, seed: int | None = None,
                 forget_bias: float = 1.0, **flags):
        super().__init__()
        unknown = set(flags) - set(Variant._fields)
        if unknown:
            raise ValueError(f"VariantLSTM: expected flags among {', '.join(Variant._fields)}, got {sorted(unknown)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        given = {k: value for k, value in flags.items() if value is not None or k == "peephole"}
        flags = variant_flags(None, **{**variant_flags(variant), **given})  # the variant, then the flags given
        sizes = [check_int(name, value) for name, value in
                 (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers))]
        self.config = LSTMConfig(*sizes, bool(bidirectional), **flags)
        self.variant, self.dropout = self.config.variant, float(dropout)
        self.nplstm_keys = {torch_name(k): k for k in self.config.param_shapes()}  # parameter name -> nplstm key
        dtype = torch.get_default_dtype() if dtype is None else dtype
        for name, key in self.nplstm_keys.items():
            shape = self.config.param_shapes()[key]
            self.register_parameter(name, nn.Parameter(torch.empty(shape, dtype=dtype, device=device)))
        self.reset_parameters(seed, forget_bias)

    def reset_parameters(self, seed: int | None = None, forget_bias: float = 1.0) -> None:
        """nplstm's initialisation (stack.init_params): Glorot W, orthogonal R, forget bias, small peepholes."""
        if seed is None:
            seed = int(torch.randint(0, 2 ** 62, ()))
        fresh = init_params(self.config, np.random.default_rng(seed), np.float64, forget_bias)
        self.load_nplstm_params(fresh)

    def load_nplstm_params(self, params: dict[str, np.ndarray]) -> None:
        """Copy arrays keyed like nplstm.LSTM.params into the parameters (exactly, when the dtypes agree)."""
        with torch.no_grad():
            for name, key in self.nplstm_keys.items():
                value = getattr(self, name)
                if key not in params or tuple(np.shape(params[key])) != tuple(value.shape):
                    got = "nothing" if key not in params else f"shape {tuple(np.shape(params[key]))}"
                    raise ValueError(f"params[{key!r}]: expected shape {tuple(value.shape)}, got {got}")
                value.copy_(torch.as_tensor(np.asarray(params[key])))

    def nplstm_params(self) -> dict[str, np.ndarray]:
        """The parameters as NumPy arrays keyed like nplstm.LSTM.params (copies, on the CPU)."""
        return {key: getattr(self, name).detach().cpu().numpy().copy() for name, key in self.nplstm_keys.items()}

    def forward(self, x, state=None, lengths=None):
        """x: (B, T, I); state: (h_0, c_0) each (L·D, B, H) or None for zeros; lengths: (B,) ints in [1, T] or None.

        Returns y (B, T, D·H), 0 at padded steps, and (h_n, c_n) each (L·D, B, H): the states after
        each sequence's last valid step, in torch.nn.LSTM's layer/direction order.
        """
        cfg = self.config
        H, D = cfg.hidden_size, cfg.num_directions
        if x.dim() != 3 or x.shape[2] != cfg.input_size:
            raise ValueError(f"x: expected shape (B, T, {cfg.input_size}), got {tuple(x.shape)}")
        B, T, _ = x.shape
        if state is None:
            h0 = c0 = x.new_zeros(cfg.num_layers * D, B, H)
        else:
            h0, c0 = state
            for name, s in (("h_0", h0), ("c_0", c0)):
                if tuple(s.shape) != (cfg.num_layers * D, B, H):
                    raise ValueError(f"state {name}: expected shape {(cfg.num_layers * D, B, H)}, got {tuple(s.shape)}")
        lengths = _lengths_of(lengths, B, T, x.device)
        valid = None if lengths is None else torch.arange(T, device=x.device)[None, :] < lengths[:, None]  # (B, T)
        rev = _reversal(lengths, T)
        inp, h_n, c_n = x, [], []
        for k in range(cfg.num_layers):
            if k and self.dropout and self.training:
                inp = nn.functional.dropout(inp, self.dropout, training=True)
            outs = []
            for d in range(D):
                pre = cfg.prefix(k, d)
                p = {key[len(pre):]: getattr(self, name) for name, key in self.nplstm_keys.items()
                     if key.startswith(pre)}  # "W", "R", "b", ... of this layer and direction
                y, h, c = lstm_sequence(inp if d == 0 else _reverse(inp, rev), h0[k * D + d], c0[k * D + d], p,
                                        self.variant, valid)
                outs.append(y if d == 0 else _reverse(y, rev))
                h_n.append(h)
                c_n.append(c)
            inp = outs[0] if D == 1 else torch.cat(outs, dim=-1)  # (B, T, D·H)
        return inp, (torch.stack(h_n), torch.stack(c_n))

    def extra_repr(self) -> str:
        c = self.config
        flags = "".join(f", {k}={v!r}" for k, v in c.variant._asdict().items())
        return f"{c.input_size}, {c.hidden_size}, num_layers={c.num_layers}, bidirectional={c.bidirectional}{flags}"


def rnn_sizes(rnn) -> tuple[int, int]:
    """(H, D) of a VariantLSTM, torch.nn.LSTM or torch.nn.GRU."""
    if isinstance(rnn, VariantLSTM):
        return rnn.config.hidden_size, rnn.config.num_directions
    return rnn.hidden_size, 2 if rnn.bidirectional else 1


class SequenceModel(nn.Module):
    """nplstm.Model as one module: [embedding ->] rnn -> [dropout ->] head.

    rnn: a VariantLSTM, torch.nn.LSTM or torch.nn.GRU with batch_first=True; head: torch.nn.Linear
    (D·H -> O); embedding: torch.nn.Embedding or None (then x holds int tokens (B, T));
    dropout: p of dropout on the head's input while training, as Model.dropout (identity in eval()).
    forward(x, lengths=None): many_to_one -> (B, O), the head on the top layer's final hidden state of
    each sequence at its own length (both directions concatenated); else (B, T, O), the head at every step.
    """

    def __init__(self, rnn: nn.Module, head: nn.Linear, *, many_to_one: bool = False,
                 embedding: nn.Embedding | None = None, dropout: float = 0.0):
        super().__init__()
        if not isinstance(rnn, (VariantLSTM, nn.LSTM, nn.GRU)):
            raise ValueError(f"rnn: expected a VariantLSTM, torch.nn.LSTM or torch.nn.GRU, got {type(rnn).__name__}")
        if isinstance(rnn, (nn.LSTM, nn.GRU)) and (not rnn.batch_first or getattr(rnn, "proj_size", 0)):
            raise ValueError(f"rnn: expected batch_first=True and no proj_size, got {rnn}")
        H, D = rnn_sizes(rnn)
        width = D * H
        if head.in_features != width:
            raise ValueError(f"head: expected in_features = {width} (the rnn's D·H), got {head.in_features}")
        self.embedding, self.rnn, self.head = embedding, rnn, head
        self.dropout = nn.Dropout(dropout) if dropout else None
        self.many_to_one, self.num_directions = bool(many_to_one), D

    def forward(self, x, lengths=None):
        """x: (B, T, I) floats, or (B, T) int tokens with an embedding; lengths: (B,) or None -> (B, [T,] O)."""
        if self.embedding is not None:
            x = self.embedding(x)            # (B, T) -> (B, T, E)
        if isinstance(self.rnn, VariantLSTM):
            y, state_n = self.rnn(x, lengths=lengths)
        elif lengths is None:
            y, state_n = self.rnn(x)
        else:                                # torch.nn.LSTM / GRU: packed, so each row stops at its length
            packed = nn.utils.rnn.pack_padded_sequence(x, torch.as_tensor(lengths).cpu(), batch_first=True,
                                                       enforce_sorted=False)
            out, state_n = self.rnn(packed)
            y, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        if self.many_to_one:
            h_n = state_n[0] if isinstance(state_n, tuple) else state_n  # LSTM (h_n, c_n); GRU h_n
            D = self.num_directions
            y = h_n[-D:].transpose(0, 1).reshape(x.shape[0], -1)  # (B, D·H): top layer, both directions
        return self.head(y if self.dropout is None else self.dropout(y))
